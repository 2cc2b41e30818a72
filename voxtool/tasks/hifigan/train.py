"""Training task: random aligned segments (wav + its mel frames), both HiFi-GAN optimisers through the Trainer's
multi-optimiser path, validation by mel L1 on held-out items (best by valid/mel_l1, mode min).

Per step (as jik876/hifi-gan `train.py`):
1. discriminators (MPD + MSD): LSGAN on real vs detached generated audio, `ctx.optimize(loss_d, "discriminator")`;
2. generator: adversarial + 2 x feature matching + 45 x L1 between the full-band loss mels of real and generated
   audio (`MelSettings.for_loss()`, jik876's fmax_for_loss = None), `ctx.optimize(loss_g, "generator")`.
`model.pt` deploys only the generator (weight-normed; inference removes the norm), with the generator and mel
settings in its config and meta.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool import console
from voxtool.errors import BadInput
from voxtool.tasks.hifigan.config import HifiganConfig
from voxtool.tasks.hifigan.data import VocoderDataset, random_segment, read_meta
from voxtool.tasks.hifigan.metrics import mel_l1
from voxtool.tasks.hifigan.model import (
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    VocoderLogMel,
    load_generator_state,
)
from voxtool.training.task import RunEnv, StepContext, TrainTask
from voxtool.vocoders.losses import discriminator_step_loss, generator_step_loss
from voxtool.vocoders.mel import check_mel_settings

__all__ = ["HifiganConfig", "HifiganTrainTask", "mel_l1"]


class HifiganTrainTask(TrainTask):
    name = "hifigan"
    manual_optimization = True

    def __init__(self, config: HifiganConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        if data is None:
            raise BadInput(None, "no dataset given")
        self.mel = config.mel
        self.gen_cfg = config.generator
        meta = read_meta(data)
        try:
            check_mel_settings(self.mel, meta["mel"], where=Path(data) / "dataset.json")
        except (ValueError, TypeError) as exc:  # garbled settings in dataset.json
            raise BadInput(Path(data) / "dataset.json", f"invalid mel settings ({str(exc).splitlines()[0]})") from None
        self.train_set = VocoderDataset(data, "train", self.mel.n_mels, self.mel.hop_length)
        if not len(self.train_set):
            raise BadInput(Path(data) / "train.txt", "lists no items")
        self.valid_set = VocoderDataset(data, "valid", self.mel.n_mels, self.mel.hop_length)
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = Generator(self.gen_cfg)
        width = config.discriminator.width
        self.mpd = MultiPeriodDiscriminator(width=width)
        self.msd = MultiScaleDiscriminator(width=width)
        if config.init:
            loaded = load_generator_state(Path(config.init), self.gen_cfg)
            self.model.load_state_dict(loaded.state_dict, strict=True)
            console.log(f"generator initialised from {config.init}; discriminators start fresh")
        for m in (self.model, self.mpd, self.msd):
            m.to(env.device)
        self.loss_mel = VocoderLogMel(self.mel.for_loss()).to(env.device)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model, "mpd": self.mpd, "msd": self.msd}

    def optimizer_modules(self) -> dict[str, list[str]]:
        return {"generator": ["model"], "discriminator": ["mpd", "msd"]}

    def sample_batch(self, step: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mel (B, n_mels, F), wav (B, 1, F * hop)), F = data.segment_samples / hop."""
        frames, hop = self.config.segment_frames, self.mel.hop_length
        picks = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        mels, wavs = zip(*(random_segment(*self.train_set[int(i)], frames, hop, self.mel.log_floor, rng)
                           for i in picks))
        return torch.from_numpy(np.stack(mels)), torch.from_numpy(np.stack(wavs))[:, None]

    def training_step(self, batch, ctx: StepContext) -> dict:
        mel, real = (t.to(self.env.device) for t in batch)
        generator, discs = ctx.modules["model"], [ctx.modules["mpd"], ctx.modules["msd"]]
        fake = generator(mel).float()  # (B, 1, N)
        loss_d = discriminator_step_loss(discs, real, fake.detach()).float()
        ctx.optimize(loss_d, "discriminator")
        with torch.autocast(device_type=self.env.device.type, enabled=False):  # the log-mels stay fp32
            real_mel, fake_mel = self.loss_mel(real[:, 0]), self.loss_mel(fake[:, 0])
        parts = generator_step_loss(discs, real, fake, real_mel, fake_mel)
        w = self.config.loss
        loss_g = (w.adversarial * parts.adversarial + w.feature_matching * parts.feature_matching
                  + w.mel * parts.mel).float()
        ctx.optimize(loss_g, "generator")
        return {"loss": loss_g, "loss_d": loss_d, "adv": parts.adversarial, "fm": parts.feature_matching,
                "mel_l1": parts.mel}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        if not len(self.valid_set):
            return {}
        d = self.config.data
        max_frames = int(d.valid_max_seconds * self.mel.sample_rate) // self.mel.hop_length
        return {"valid/mel_l1": mel_l1(model, self.valid_set, self.loss_mel, self.env.device, d.valid_items,
                                       max_frames)}

    def validation_audio(self, model: torch.nn.Module) -> dict[str, tuple[np.ndarray, int]]:
        """The first held-out item resynthesised (and its original once), to listen to in TensorBoard."""
        if not len(self.valid_set):
            return {}
        wav, mel = self.valid_set[0]
        frames = int(self.config.data.valid_max_seconds * self.mel.sample_rate) // self.mel.hop_length
        mel = torch.from_numpy(mel[:, :frames]).unsqueeze(0).to(self.env.device)
        fake = model(mel)[0, 0].float().clamp(-1, 1).cpu().numpy()
        return {"valid/vocoded_0": (fake, self.mel.sample_rate),
                "valid/original_0": (wav[: frames * self.mel.hop_length], self.mel.sample_rate)}

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": self.mel.sample_rate, "hop_length": self.mel.hop_length, "n_mels": self.mel.n_mels,
                "generator": self.gen_cfg.model_dump(mode="json"), "mel": self.mel.model_dump(mode="json")}
