"""Training task: random 128-frame crops with accompaniment/noise/pitch-shift/volume augmentation, Gaussian
targets (sigma 1.25 bins) with BCE, validation with mir_eval melody metrics (best by `train.best_metric`:
valid/rpa in the presets and the config's defaults)."""

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
        target = gaussian_targets(f0, self.config.decode.sigma_bins)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        return {"loss": loss}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        from voxtool.pitch.runtime import TorchPitchModel
        from voxtool.tasks.rmvpe.infer import evaluate_dataset

        if not len(self.valid_set):
            return {}
        pitch_model = TorchPitchModel(model, self.config.mel, self.env.device, "32", self.config.decode.threshold)
        infer = self.config.infer
        means, _ = evaluate_dataset(
            pitch_model,
            self.data,
            "valid",
            limit=self.config.data.valid_items,
            max_seconds=self.config.data.valid_max_seconds,
            chunk_frames=infer.chunk_frames,
            context_frames=infer.context_frames,
            batch_size=infer.batch_size,
        )
        return {f"valid/{k}": v for k, v in means.items()}

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": self.config.mel.sample_rate, "hop_length": self.config.mel.hop_length}
