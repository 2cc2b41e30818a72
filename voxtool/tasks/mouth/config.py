"""Typed preset sections of the mouth task (presets/mouth.toml, mouth-tiny, mouth-ssl, mouth-ssl-tiny).

Imports no torch: `voxtool presets show` and the CLI read it cheaply. `MouthConfig` is `voxtool train mouth`'s
whole config, `MouthSSLConfig` adds the `[ssl]` section of `voxtool ssl mouth`.

`[mel]` is the original's front-end (`default_mel`, spelled out in presets/mouth.toml): 16 kHz, n_fft = win 1024,
hop 320 = 50 frames/s, 80 Slaney mels 0-8 kHz, magnitude, reflect pad 352 then a centred STFT, natural log
clamped at 1e-5 (the original's inference floor; its prep used 1e-9, which made training and inference features
differ in silence, so one floor serves both here). `prep lipsync` and `prep unlabeled` write these settings into
`dataset.json`, training refuses a dataset prepared with others, and a model file carries them for inference.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from voxtool.audio.mel_config import MelConfig
from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig

VARIANTS = ("huber", "mse", "r-drop")


def default_mel() -> MelConfig:
    """The original's front-end (see the module docstring)."""
    return MelConfig(
        sample_rate=16000, n_fft=1024, hop_length=320, n_mels=80, f_min=0.0, f_max=None, mel_scale="slaney",
        norm="slaney", power=1.0, center=True, pad_mode="reflect", pad=352, log_floor=1e-5,
    )  # fmt: skip


# Chunked inference (`runtime.predict_mel_chunks`, `voxtool infer mouth`), 50 fps frames: windows of 20 s cores
# with 2 s of context per side (the original trains on 2.56 s crops), 8 per forward pass: with bf16, 0.42x the time of
# one whole-file fp32 pass over 120 s (a trained full-size model, 1 thread), at most 0.0004 from it
# (benchmarks/compare.py measures it against the original's path).
DEFAULT_CHUNK_FRAMES = 1000
DEFAULT_CONTEXT_FRAMES = 100
DEFAULT_BATCH_SIZE = 8

class ModelSection(StrictModel):
    """The BiLSTM estimator; the defaults are the original's sizes (10.24 M parameters)."""

    n_mels: int = Field(80, ge=1, le=1024)
    conv_dims: int = Field(256, ge=1, le=8192)
    hidden_dims: int = Field(512, ge=1, le=8192)
    n_layers: int = Field(2, ge=1, le=16)
    n_groups: int = Field(4, ge=1, le=8192)
    conv_dropout: float = Field(0.2, ge=0, lt=1)
    speaker_gain: bool = Field(False, description="learn one gain per training singer (the original's k_filter)")
    num_speakers: int = Field(0, ge=0, le=1_000_000, description="gains to learn; 0 = the dataset's singer count")
    # normalisation range of the target; None = taken from the dataset at training time
    vmin: float | None = Field(None, ge=-1e6, le=1e6)
    vmax: float | None = Field(None, ge=-1e6, le=1e6)

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> ModelSection:
        if self.conv_dims % self.n_groups:
            raise ValueError(f"conv_dims ({self.conv_dims}) must be divisible by n_groups ({self.n_groups})")
        return self


class DataSection(StrictModel):
    crop_frames: int = Field(128, ge=8, le=100_000)
    volume_p: float = Field(0.5, ge=0, le=1, description="probability of a random gain per crop")
    volume_shift: float = Field(3.0, ge=0, le=20, description="max |gain| in natural-log units (3 ~ 26 dB)")
    mel_floor: float = Field(-12.0, ge=-100, le=10, description="log-mel floor after augmentation")
    valid_max_frames: int = Field(0, ge=0, le=10_000_000,
                                  description="cap frames per validation file (0 = whole file)")
    # the original's HEAD time_frequency_noise_block (FCPE's), with its time and frequency axes the right way round
    noise_block_p: float = Field(0.0, ge=0, le=1, description="probability of noise blocks per crop (0 = off)")
    noise_block_count: int = Field(5, ge=1, le=100, description="rectangles per augmented crop")
    noise_block_std: float = Field(0.1, ge=0, le=100, description="|N(0, std)| added in the linear-mel domain")
    noise_block_time: float = Field(0.3, gt=0, le=1, description="max block width, fraction of the crop's frames")
    noise_block_freq: float = Field(0.05, gt=0, le=1, description="max block height, fraction of the mel bins")


class LossSection(StrictModel):
    variant: Literal["huber", "mse", "r-drop"] = "huber"
    huber_delta: float = Field(1.0, gt=0, le=1000, description="Huber delta of every Huber term (targets in 0..1)")
    r_drop_weight: float = Field(0.5, ge=0, le=1000)


class SSLSection(StrictModel):
    unlabeled: str | None = Field(None, description="prepared unlabeled dataset (set by --unlabeled)")
    unlabeled_batch_size: int = Field(16, ge=1, le=65536, description="unlabeled crops per step and rank")
    consistency_weight: float = Field(0.12, ge=0, le=1000, description="w_max of the ramp-up")
    rampup_steps: int = Field(3000, ge=0, le=10_000_000, description="steps until the consistency weight reaches w_max")
    # student views of an unlabeled crop
    view_volume_p: float = Field(0.5, ge=0, le=1)
    view_volume_shift: float = Field(3.0, ge=0, le=20)
    view_noise_p: float = Field(0.2, ge=0, le=1, description="probability of background noise per view")
    view_noise_level: float = Field(0.002, ge=0, le=100, description="max noise magnitude in the linear-mel domain")
    view_mask_p: float = Field(0.2, ge=0, le=1, description="probability of one time and one frequency mask")
    view_time_mask: int = Field(8, ge=0, le=100_000, description="max masked frames")
    view_freq_mask: int = Field(6, ge=0, le=1024, description="max masked mel bins")
    view_freq_warp: float = Field(
        0.1, ge=0, lt=0.5, description="max formant-scale warp of a view, e.g. 0.1 = x0.9..x1.1 (0 = off)"
    )


class MouthConfig(StrictModel):
    mel: MelConfig = Field(default_factory=default_mel)
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    loss: LossSection = LossSection()
    train: TrainConfig = TrainConfig(
        batch_size=16, lr=5e-4, optimizer="schedulefree", grad_clip=1.0, best_metric="valid/pearson", best_mode="max"
    )

    @model_validator(mode="after")
    def _agree(self) -> MouthConfig:
        if self.model.n_mels != self.mel.n_mels:
            raise ValueError(f"model.n_mels {self.model.n_mels} differs from mel.n_mels {self.mel.n_mels}")
        return self


class MouthSSLConfig(MouthConfig):
    ssl: SSLSection = SSLSection()
