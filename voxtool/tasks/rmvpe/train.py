"""Training task: random 128-frame crops with accompaniment/noise/pitch-shift/volume augmentation (and optional
voice-dropped spans), Gaussian targets (sigma 1.25 bins) with BCE (optionally weighting unvoiced frames),
validation with mir_eval melody metrics (best by `train.best_metric`: valid/rpa in the presets and the config's
defaults) and a voicing-threshold sweep whose best-OA threshold model.pt keeps as its default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool import console
from voxtool.audio.framing import frame_config
from voxtool.audio.mel import LogMel
from voxtool.errors import BadInput
from voxtool.pitch.decode import gaussian_targets
from voxtool.tasks.rmvpe.config import RmvpeConfig
from voxtool.tasks.rmvpe.data import PitchDataset, training_crop
from voxtool.tasks.rmvpe.metrics import VOICING_METRICS
from voxtool.tasks.rmvpe.model import build_model
from voxtool.training.task import RunEnv, StepContext, TrainTask

__all__ = ["RmvpeConfig", "RmvpeTrainTask"]


class RmvpeTrainTask(TrainTask):
    name = "rmvpe"

    def __init__(self, config: RmvpeConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        multiple = 2**config.model.n_levels
        if config.data.crop_frames % multiple:
            raise BadInput(None, f"data.crop_frames={config.data.crop_frames} must be a multiple of {multiple}")
        if config.model.n_mels != config.mel.n_mels:
            raise BadInput(None, f"model.n_mels={config.model.n_mels} differs from mel.n_mels={config.mel.n_mels}")
        self.train_set = PitchDataset(data, "train", config.mel.hop_length)
        if not len(self.train_set):
            raise BadInput(data, "train.txt lists no items")
        self.valid_set = PitchDataset(data, "valid", config.mel.hop_length)
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = build_model(config.model, log=console.log).to(env.device)
        # crops are pre-padded (data.training_crop): the front-end pads nothing itself
        self.frontend = LogMel(frame_config(config.mel)).to(env.device)
        self.calibrated_threshold: float | None = None  # set by validate() when decode.calibrate

    def sample_batch(self, step: int, rng: np.random.Generator):
        picks = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        data, mel = self.config.data, self.config.mel
        waves, f0s = zip(*(training_crop(self.train_set[int(i)], data, rng, mel) for i in picks))
        return torch.from_numpy(np.stack(waves)), torch.from_numpy(np.stack(f0s))

    def training_step(self, batch, ctx: StepContext) -> dict:
        wave, f0 = (t.to(self.env.device) for t in batch)
        with torch.autocast(device_type=self.env.device.type, enabled=False):
            mel = self.frontend(wave.float())  # [B, n_mels, F]; the log-mel stays fp32
        logits = ctx.model(mel, logits=True)  # [B, F, 360]
        target = gaussian_targets(f0, self.config.decode.sigma_bins)  # [B, F, 360]; unvoiced rows all zero
        weight = None
        if self.config.loss.unvoiced_weight != 1.0:
            # an unvoiced frame's false peak costs ~p/360 of the mean BCE: too little to learn from without a weight
            row = torch.where(f0 > 0, 1.0, self.config.loss.unvoiced_weight).to(target.dtype)  # [B, F]
            weight = row.unsqueeze(-1).expand_as(target)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target, weight=weight)
        return {"loss": loss}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """mir_eval scores of the validation split at `decode.threshold` (valid/rpa, ..., valid/vfa) and, with
        `decode.calibrate`, the threshold of the best OA over `metrics.THRESHOLD_GRID` (valid/threshold) with
        its valid/{oa,vr,vfa}_calibrated; model.pt saved after this validation carries that threshold."""
        from voxtool.pitch.runtime import TorchPitchModel
        from voxtool.tasks.rmvpe.infer import score_split

        if not len(self.valid_set):
            return {}
        decode = self.config.decode
        pitch_model = TorchPitchModel(model, self.config.mel, self.env.device, "32", decode.threshold)
        infer = self.config.infer
        sweep = score_split(
            pitch_model,
            self.data,
            "valid",
            limit=self.config.data.valid_items,
            max_seconds=self.config.data.valid_max_seconds,
            chunk_frames=infer.chunk_frames,
            context_frames=infer.context_frames,
            batch_size=infer.batch_size,
        )
        metrics = {f"valid/{k}": v for k, v in sweep.means(decode.threshold).items()}
        if decode.calibrate:
            best, scores = sweep.best()
            self.calibrated_threshold = best
            metrics["valid/threshold"] = best
            metrics.update({f"valid/{k}_calibrated": scores[k] for k in VOICING_METRICS})
        return metrics

    def deployable(self, model: torch.nn.Module) -> dict:
        meta = {"sample_rate": self.config.mel.sample_rate, "hop_length": self.config.mel.hop_length}
        if self.calibrated_threshold is not None:  # from the validation just before this save
            meta["voicing_threshold"] = self.calibrated_threshold
        return meta
