"""Typed preset sections of the rmvpe task (presets/rmvpe.toml, presets/rmvpe-tiny.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voxtool.audio.mel import MelConfig
from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig


class ModelSection(StrictModel):
    """Network size; the defaults are the published E2E0(4, 1, (2, 2))."""

    name: Literal["E2E0"] = "E2E0"  # the original script's --model-name (only E2E0 was ever trainable)
    n_mels: int = Field(128, gt=0)
    n_blocks: int = Field(4, ge=1)
    n_levels: int = Field(5, ge=1, le=8)
    n_inter: int = Field(4, ge=1)
    base_channels: int = Field(16, ge=1)
    n_gru: int = Field(1, ge=0)
    gru_hidden: int = Field(256, ge=1)
    with_tf: bool = False
    output_bias_init: float | None = None  # None = PyTorch default init (as published); e.g. -4 = start at p~0.02
    init: str = ""  # checkpoint to start from (fine-tuning): published rmvpe.pt/model.pt or a voxtool model

    def arch(self):
        from voxtool.tasks.rmvpe.model import RmvpeArch

        return RmvpeArch.from_dict(self.model_dump())


class DataSection(StrictModel):
    crop_frames: int = Field(128, ge=32)  # 1.28 s random crops, as yxlllc/Teco
    accompaniment_gain: tuple[float, float] = (-1.0, 1.0)  # U(a, b) x accompaniment (vocal-only .. full mix)
    noise_prob: float = Field(1.0, ge=0, le=1)  # mono items: coloured noise with this probability
    noise_exponent: tuple[float, float] = (0.0, 2.0)  # 1/f^beta noise, beta ~ U
    noise_log10_amp: tuple[float, float] = (-6.0, -1.0)  # amplitude 10^U
    pitch_shift_prob: float = Field(0.5, ge=0, le=1)
    pitch_shift_semitones: tuple[float, float] = (0.0, 5.0)  # resample-based shift, labels follow
    volume_log10: tuple[float, float] = (-1.0, 1.0)  # gain 10^U, capped so the peak stays <= 1
    valid_items: int = Field(0, ge=0)  # 0 = every validation item
    valid_max_seconds: float = Field(0.0, ge=0)  # 0 = whole files


class DecodeSection(StrictModel):
    threshold: float = Field(0.03, ge=0, le=1)
    sigma_bins: float = Field(1.25, gt=0)  # Gaussian target width (training)


class InferSection(StrictModel):
    chunk_frames: int = Field(2048, ge=0)  # core frames per chunk; 0 = whole file in one pass
    context_frames: int = Field(256, ge=0)  # extra frames each side of a chunk (dropped after the forward)
    batch_size: int = Field(4, ge=1)


def default_mel() -> MelConfig:
    from voxtool.tasks.rmvpe.frontend import published_mel_config

    return published_mel_config()


class RmvpeConfig(StrictModel):
    model: ModelSection = ModelSection()
    mel: MelConfig = Field(default_factory=default_mel)
    data: DataSection = DataSection()
    decode: DecodeSection = DecodeSection()
    infer: InferSection = InferSection()
    train: TrainConfig = Field(default_factory=TrainConfig)
