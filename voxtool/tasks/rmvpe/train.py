"""Training task: random 128-frame crops with accompaniment/noise/pitch-shift/volume augmentation, Gaussian
targets (sigma 1.25 bins) with BCE, validation with mir_eval melody metrics (best by `train.best_metric`:
valid/rpa in the presets and the config's defaults)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool import console
from voxtool.errors import BadInput
from voxtool.tasks.rmvpe.config import RmvpeConfig
from voxtool.tasks.rmvpe.data import CropSettings, PitchDataset, training_crop
from voxtool.tasks.rmvpe.decode import gaussian_targets
from voxtool.tasks.rmvpe.frontend import FrameMel
from voxtool.tasks.rmvpe.model import E2E0, load_state_dict_any
from voxtool.training.task import RunEnv, StepContext, TrainTask

__all__ = ["RmvpeConfig", "RmvpeTrainTask", "crop_settings", "init_from_checkpoint"]


def crop_settings(config: RmvpeConfig, augment: bool = True) -> CropSettings:
    d = config.data
    return CropSettings(
        frames=d.crop_frames,
        hop=config.mel.hop_length,
        n_fft=config.mel.n_fft,
        accompaniment_gain=d.accompaniment_gain,
        noise_prob=d.noise_prob,
        noise_exponent=d.noise_exponent,
        noise_log10_amp=d.noise_log10_amp,
        pitch_shift_prob=d.pitch_shift_prob,
        pitch_shift_semitones=d.pitch_shift_semitones,
        volume_log10=d.volume_log10,
        augment=augment,
    )


def init_from_checkpoint(model: E2E0, path: Path) -> str:
    """Fine-tuning start: load a published checkpoint / model file into ``model`` (sizes must match)."""
    from voxtool.fileio import load_torch

    obj = load_torch(path)
    try:
        loaded, layout = load_state_dict_any(obj, model.arch)
    except ValueError as exc:
        raise BadInput(path, str(exc)) from None
    except Exception as exc:  # odd objects inside a readable file
        raise BadInput(path, f"not an RMVPE checkpoint ({type(exc).__name__})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in loaded.state_dict()]
    state = {k: v for k, v in loaded.state_dict().items() if k in own}
    for k in missing:  # the checkpoint lacks the unused tf filter: keep its fresh weights
        state[k] = own[k]
    model.load_state_dict(state)
    return layout


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
        self.crop = crop_settings(config)
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = E2E0(config.model.arch()).to(env.device)
        if config.model.output_bias_init is not None:
            # Start near the base rate of a positive bin (about 3 of 360 are 'on'): no slow descent from 0.5.
            torch.nn.init.constant_(self.model.fc[-3].bias, config.model.output_bias_init)
        if config.model.init:
            layout = init_from_checkpoint(self.model, Path(config.model.init))
            console.log(f"initialised from {config.model.init} ({layout})")
        if config.model.with_tf:
            # E2E0 never applies the tf filter; frozen so DDP does not wait for gradients it never gets.
            for p in self.model.unet.tf.parameters():
                p.requires_grad_(False)
        self.frontend = FrameMel(config.mel).to(env.device)

    def sample_batch(self, step: int, rng: np.random.Generator):
        picks = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        waves, f0s = zip(*(training_crop(self.train_set[int(i)], self.crop, rng) for i in picks))
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
        from voxtool.tasks.rmvpe.evaluate import evaluate_dataset
        from voxtool.tasks.rmvpe.infer import TorchPitchModel

        if not len(self.valid_set):
            return {}
        pitch_model = TorchPitchModel(model, self.config.mel, self.env.device, "32", self.config.decode.threshold)
        infer = self.config.infer
        means, _ = evaluate_dataset(
            self.valid_set,
            pitch_model,
            max_items=self.config.data.valid_items,
            max_seconds=self.config.data.valid_max_seconds,
            chunk_frames=infer.chunk_frames,
            context_frames=infer.context_frames,
            batch_size=infer.batch_size,
        )
        return {f"valid/{k}": v for k, v in means.items()}

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": self.config.mel.sample_rate, "hop_length": self.config.mel.hop_length}
