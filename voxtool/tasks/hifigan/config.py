"""Typed preset sections of the hifigan task (presets/hifigan-16k.toml, hifigan-22k.toml, hifigan-tiny.toml).

Imports no torch: `voxtool presets show` and the CLI read it cheaply. The generator and mel sections mirror
`voxtool.vocoders.hifigan.GeneratorConfig` and `voxtool.vocoders.mel.MelSettings` field for field (those live in
modules that import torch); `generator_config()` / `mel_settings()` turn them into the library's objects, and a
test checks that the fields stay the same.

Loudness normalisation (`data.normalize`, applied once by `prep hifigan` to the stored wav, and so to the mel):
- "peak" (default, as jik876/hifi-gan: `librosa.util.normalize(wav) * 0.95`): scale so max |x| = `peak_level`;
- "rms": scale to `rms_dbfs` dB RMS, then lower the gain if needed so the peak stays <= `peak_level`;
- "none": keep the recording's level.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig

if TYPE_CHECKING:
    from voxtool.vocoders.hifigan import GeneratorConfig
    from voxtool.vocoders.mel import MelSettings

PRESETS = ("hifigan-16k", "hifigan-22k", "hifigan-tiny")
Rate = Annotated[int, Field(ge=1, le=64)]
Kernel = Annotated[int, Field(ge=1, le=256)]
Dilation = Annotated[int, Field(ge=1, le=1024)]


class GeneratorSection(StrictModel):
    """`GeneratorConfig`'s fields; defaults are bshall's 16 kHz generator (hop = product of upsample_rates)."""

    n_mels: int = Field(128, gt=0, le=1024)
    upsample_rates: tuple[Rate, ...] = Field((10, 4, 2, 2), min_length=1, max_length=8)
    upsample_kernel_sizes: tuple[Kernel, ...] = Field((20, 8, 4, 4), min_length=1, max_length=8)
    upsample_initial_channel: int = Field(512, gt=0, le=4096)
    resblock: Literal["1", "2"] = "1"
    resblock_kernel_sizes: tuple[Kernel, ...] = Field((3, 7, 11), min_length=1, max_length=8)
    resblock_dilation_sizes: tuple[tuple[Dilation, ...], ...] = Field(((1, 3, 5),) * 3, min_length=1, max_length=8)

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)


class MelSection(StrictModel):
    """`MelSettings`' fields; defaults are bshall's 16 kHz mel (`MEL_16K_BSHALL`)."""

    sample_rate: int = Field(16000, gt=0, le=768_000)
    n_fft: int = Field(1024, gt=0, le=65536)
    win_length: int = Field(1024, gt=0, le=65536)
    hop_length: int = Field(160, gt=0, le=65536)
    n_mels: int = Field(128, gt=0, le=1024)
    f_min: float = Field(0.0, ge=0, le=384_000)
    f_max: float | None = Field(8000.0, gt=0, le=384_000)
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    center: bool = False
    pad: int = Field(432, ge=0, le=65536)
    magnitude_eps: float = Field(0.0, ge=0, le=1)
    log_floor: float = Field(1e-5, gt=0, le=1)


class DataSection(StrictModel):
    # training segment in samples (a multiple of the hop): bshall 8320 (52 frames), jik876 8192 (32 frames)
    segment_samples: int = Field(8320, ge=1, le=10_000_000)
    normalize: Literal["peak", "rms", "none"] = "peak"
    peak_level: float = Field(0.95, gt=0, le=1)
    rms_dbfs: float = Field(-20.0, ge=-80, le=0)
    min_seconds: float = Field(0.1, ge=0, le=3600)  # prep skips shorter clips
    valid_items: int = Field(0, ge=0, le=10_000_000)  # validation items scored; 0 = all
    valid_max_seconds: float = Field(0.0, ge=0, le=86_400)  # crop each validation item; 0 = whole items


class DiscriminatorSection(StrictModel):
    width: float = Field(1.0, gt=0, le=4)  # channel scale of MPD and MSD (1 = published, 1/16 for tiny runs)


class LossSection(StrictModel):
    mel: float = Field(45.0, ge=0, le=1e4)  # weight of L1 between full-band log-mels (jik876 fmax_for_loss = None)
    feature_matching: float = Field(2.0, ge=0, le=1e4)
    adversarial: float = Field(1.0, ge=0, le=1e4)


class HifiganConfig(StrictModel):
    generator: GeneratorSection = GeneratorSection()
    mel: MelSection = MelSection()
    data: DataSection = DataSection()
    discriminator: DiscriminatorSection = DiscriminatorSection()
    loss: LossSection = LossSection()
    # a generator checkpoint (bshall/jik876/voxtool layout) to fine-tune from; the discriminators start fresh
    init: str = ""
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        lr=2e-4, betas=(0.8, 0.99), optimizer="adamw", schedule="step", decay_rate=0.999, decay_steps=1000,
        best_metric="valid/mel_l1", best_mode="min"))

    @model_validator(mode="after")
    def _agree(self) -> HifiganConfig:
        g, m = self.generator, self.mel
        if g.n_mels != m.n_mels:
            raise ValueError(f"generator.n_mels {g.n_mels} differs from mel.n_mels {m.n_mels}")
        if g.hop_length != m.hop_length:
            raise ValueError(f"the generator's hop (product of upsample_rates, {g.hop_length}) differs from "
                             f"mel.hop_length {m.hop_length}")
        if self.data.segment_samples % m.hop_length:
            raise ValueError(f"data.segment_samples {self.data.segment_samples} is not a multiple of the hop "
                             f"{m.hop_length}")
        return self

    def generator_config(self) -> GeneratorConfig:
        from voxtool.vocoders.hifigan import GeneratorConfig

        return GeneratorConfig.model_validate(self.generator.model_dump())

    def mel_settings(self) -> MelSettings:
        from voxtool.vocoders.mel import MelSettings

        return MelSettings.model_validate(self.mel.model_dump())

    @property
    def segment_frames(self) -> int:
        return self.data.segment_samples // self.mel.hop_length
