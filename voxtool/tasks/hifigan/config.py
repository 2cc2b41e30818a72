"""Typed preset sections of the hifigan task (presets/hifigan-16k.toml, hifigan-22k.toml, hifigan-tiny.toml).

Imports no torch: `voxtool presets show` and the CLI read it cheaply. The `[generator]` and `[mel]` sections are
the library's own `GeneratorConfig` and `MelSettings` (from the torch-free `voxtool.vocoders.settings`), so
`config.generator` / `config.mel` go straight to `Generator` / `VocoderLogMel`. Keys a section leaves out are
taken from bshall's 16 kHz vocoder (`HIFIGAN_16K`, `MEL_16K_BSHALL`), as before the sections were shared.

Loudness normalisation (`data.normalize`, applied once by `prep hifigan` to the stored wav, and so to the mel):
- "peak" (default, as jik876/hifi-gan: `librosa.util.normalize(wav) * 0.95`): scale so max |x| = `peak_level`;
- "rms": scale to `rms_dbfs` dB RMS, then lower the gain if needed so the peak stays <= `peak_level`;
- "none": keep the recording's level.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig
from voxtool.vocoders.settings import HIFIGAN_16K, MEL_16K_BSHALL, GeneratorConfig, MelSettings

PRESETS = ("hifigan-16k", "hifigan-22k", "hifigan-tiny")


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
    generator: GeneratorConfig = HIFIGAN_16K
    mel: MelSettings = MEL_16K_BSHALL
    data: DataSection = DataSection()
    discriminator: DiscriminatorSection = DiscriminatorSection()
    loss: LossSection = LossSection()
    # a generator checkpoint (bshall/jik876/voxtool layout) to fine-tune from; the discriminators start fresh
    init: str = ""
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        lr=2e-4, betas=(0.8, 0.99), optimizer="adamw", schedule="step", decay_rate=0.999, decay_steps=1000,
        best_metric="valid/mel_l1", best_mode="min"))

    @model_validator(mode="before")
    @classmethod
    def _fill_sections(cls, data: Any) -> Any:
        """A partial `[generator]` / `[mel]` table keeps bshall's 16 kHz values for the keys it leaves out."""
        if isinstance(data, dict):
            data = dict(data)
            for key, default in (("generator", HIFIGAN_16K), ("mel", MEL_16K_BSHALL)):
                if isinstance(data.get(key), dict):
                    data[key] = {**default.model_dump(), **data[key]}
        return data

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

    @property
    def segment_frames(self) -> int:
        return self.data.segment_samples // self.mel.hop_length
