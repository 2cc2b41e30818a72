"""The whole config of the rmvpe task: its sections and `RmvpeConfig` (presets/rmvpe.toml, rmvpe-tiny.toml).

Imports no network code: the network size is the pitch layer's torch-free `RmvpeArch`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from voxtool.audio.mel_config import MelConfig
from voxtool.pitch.settings import RmvpeArch, published_mel_config
from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig


def ordered_pair(low: float, high: float):
    """A `(a, b)` range drawn as U(a, b), both ends within [low, high] and a <= b."""

    def check(pair: tuple[float, float]) -> tuple[float, float]:
        if pair[0] > pair[1]:
            raise ValueError(f"the range ({pair[0]:g}, {pair[1]:g}) must be written low first")
        return pair

    end = Annotated[float, Field(ge=low, le=high)]
    return Annotated[tuple[end, end], AfterValidator(check)]


class ModelSection(RmvpeArch):
    """Network size (the fields of `voxtool.pitch.settings.RmvpeArch`; the defaults are the published
    E2E0(4, 1, (2, 2))) plus how training starts. `arch()` is the bare network size."""

    name: Literal["E2E0"] = "E2E0"  # the original script's --model-name (only E2E0 was ever trainable)
    # None = PyTorch default init (as published); e.g. -4 = start at p~0.02
    output_bias_init: float | None = Field(None, ge=-50, le=50)
    init: str = ""  # checkpoint to start from (fine-tuning): published rmvpe.pt/model.pt or a voxtool model


class DataSection(StrictModel):
    """Training crops and their augmentation (`data.training_crop` reads this section), validation size."""

    crop_frames: int = Field(128, ge=32, le=100_000)  # 1.28 s random crops, as yxlllc/Teco
    # U(a, b) x accompaniment (vocal-only .. full mix)
    accompaniment_gain: ordered_pair(-10, 10) = (-1.0, 1.0)
    noise_prob: float = Field(1.0, ge=0, le=1)  # mono items: coloured noise with this probability
    noise_exponent: ordered_pair(-4, 4) = (0.0, 2.0)  # 1/f^beta noise, beta ~ U
    noise_log10_amp: ordered_pair(-20, 0) = (-6.0, -1.0)  # amplitude 10^U
    pitch_shift_prob: float = Field(0.5, ge=0, le=1)
    pitch_shift_semitones: ordered_pair(-24, 24) = (0.0, 5.0)  # resample-based shift, labels follow
    volume_log10: ordered_pair(-5, 5) = (-1.0, 1.0)  # gain 10^U, capped so the peak stays <= 1
    # with this probability a crop loses its voice over a span (labels 0 there): accompaniment-only (stereo
    # items) or noise-only (mono items) stretches, the frames a tracker must learn to leave unvoiced
    voice_drop_prob: float = Field(0.0, ge=0, le=1)
    voice_drop_fraction: ordered_pair(0, 1) = (0.25, 1.0)  # span length, U(a, b) x the crop
    valid_items: int = Field(0, ge=0, le=10_000_000)  # 0 = every validation item
    valid_max_seconds: float = Field(0.0, ge=0, le=86_400)  # 0 = whole files


class DecodeSection(StrictModel):
    # voicing threshold on the peak salience: validation's valid/{rpa,...,vfa}, and inference's default unless
    # `calibrate` stores a calibrated one in model.pt
    threshold: float = Field(0.03, ge=0, le=1)
    # each validation sweeps the threshold (metrics.THRESHOLD_GRID) and model.pt keeps the one with the best OA
    # as the model's default --threshold (meta 'voicing_threshold'); an explicit --threshold still wins
    calibrate: bool = True
    sigma_bins: float = Field(1.25, gt=0, le=360)  # Gaussian target width (training)


class LossSection(StrictModel):
    """BCE over the 360 bins of every frame (mean over batch x frames x bins)."""

    # weight of the (all-zero target) rows of unvoiced frames; 1 = plain BCE as published
    unvoiced_weight: float = Field(1.0, ge=0, le=1000)


class InferSection(StrictModel):
    chunk_frames: int = Field(2048, ge=0, le=10_000_000)  # core frames per chunk; 0 = whole file in one pass
    # extra frames each side of a chunk (dropped after the forward)
    context_frames: int = Field(256, ge=0, le=1_000_000)
    batch_size: int = Field(4, ge=1, le=65536)


def default_mel() -> MelConfig:
    return published_mel_config()


class RmvpeConfig(StrictModel):
    model: ModelSection = ModelSection()
    mel: MelConfig = Field(default_factory=default_mel)
    data: DataSection = DataSection()
    decode: DecodeSection = DecodeSection()
    loss: LossSection = LossSection()
    infer: InferSection = InferSection()
    # best by raw pitch accuracy (what `validate` reports as valid/rpa); the presets say the same
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(best_metric="valid/rpa", best_mode="max"))
