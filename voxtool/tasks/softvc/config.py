"""Typed preset sections of the softvc acoustic model (presets/softvc.toml, softvc-tiny.toml).

Imports no torch: `voxtool presets show` and the CLI read it cheaply. Defaults are bshall/acoustic-model's
(am:train.py): AdamW lr 4e-4, betas (0.8, 0.99), weight decay 1e-5, batch 32, 80k steps, validation every 1000.

Conditioning (`[model] conditioning`) sets the acoustic model's input width (`AcousticSection.in_dim`):
- "none": the 256-d HuBERT-Soft units only (bshall);
- "pitdyn": units ‖ pitch soft units ‖ dynamics soft units, 3 x 256 = 768-d (Kahsolt/hubert-pitdyn; its encoder
  prenet is 768 -> 384 -> 384, so `prenet_width = 0` picks 384 there and bshall's 256 otherwise);
- "explicit": units ‖ (normalised log-f0, voiced flag, normalised loudness) = 256 + 3 (the so-vits-svc route: it
  follows the source melody and allows a key shift). The model also expands the log-f0 into a 64-bin pitch code and
  adds a linear map of it (`encoder.side`) to the encoder output, past the prenet dropout and the instance norms, and
  (`harmonic_prior`) adds a linear map of the f0's harmonic comb to each output mel frame (`decoder.harmonic`).

Refinement (hubert-pitdyn's step 3, `train softvc --init base.pt --refine`): the weights of `init` are loaded, the
optimiser starts fresh at `refine.lr` (1e-5; it replaces `train.lr`, so config.toml shows the rate really used)
and the run counts its steps from 0.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig
from voxtool.vocoders.settings import MEL_16K_BSHALL, MelSettings

PRESETS = ("softvc", "softvc-tiny")
Conditioning = Literal["none", "pitdyn", "explicit"]
CONDITIONINGS: tuple[str, ...] = ("none", "pitdyn", "explicit")
EXPLICIT_FEATURES = 3  # normalised log-f0, voiced flag, normalised loudness (per 50 Hz frame)
# the model expands the log-f0 into a pitch code of this many log-spaced bins over the dataset's f0 range (model.py)
PITCH_CODE_BINS = 64
Hz = Annotated[float, Field(gt=0, le=48_000)]


class AcousticSection(StrictModel):
    """bshall's acoustic model: prenet -> conv encoder (2x upsampling) -> 3 residual LSTMs -> linear to mels."""

    conditioning: Conditioning = "none"
    unit_dim: int = Field(256, ge=1, le=4096)  # width of the content units (HuBERT-Soft: 256)
    pitdyn_dim: int = Field(256, ge=1, le=4096)  # width of each of the pitch / dynamics soft-unit streams
    prenet_width: int = Field(0, ge=0, le=8192)  # 0 = as published: 384 for pitdyn (pd), 256 otherwise (bshall)
    encoder_width: int = Field(512, ge=1, le=8192)
    decoder_prenet_width: int = Field(256, ge=1, le=8192)
    lstm_width: int = Field(768, ge=1, le=8192)
    dropout: float = Field(0.5, ge=0, lt=1)  # both prenets (Tacotron-style; off in eval mode)
    # pitdyn only: also add a linear map of the pitch/dynamics streams to the encoder output (`encoder.side`, past the
    # instance norms that remove a held pitch), as explicit always does. Published pitdyn files have no side layer:
    # the loader sets this false for them, so they still load strictly.
    side_path: bool = True
    # explicit only: add a learned linear map of the f0's harmonic comb (seen through the mel filter bank) to every
    # output frame (`decoder.harmonic`), so the harmonics sit where the f0 (and the key) puts them
    harmonic_prior: bool = True
    # the dataset's f0 range (Hz) that the explicit log-f0 feature is normalised over; train fills it from dataset.json
    f0_range_hz: tuple[Hz, Hz] | None = None

    @model_validator(mode="after")
    def _f0_range_ascends(self) -> AcousticSection:
        if self.f0_range_hz is not None and not self.f0_range_hz[0] < self.f0_range_hz[1]:
            raise ValueError(f"f0_range_hz must be (low, high) with low < high, got {self.f0_range_hz}")
        return self

    @property
    def in_dim(self) -> int:
        """Width of one input frame for this conditioning."""
        if self.conditioning == "pitdyn":
            return self.unit_dim + 2 * self.pitdyn_dim
        if self.conditioning == "explicit":
            return self.unit_dim + EXPLICIT_FEATURES
        return self.unit_dim

    @property
    def encoder_prenet_width(self) -> int:
        if self.prenet_width:
            return self.prenet_width
        return 384 if self.conditioning == "pitdyn" else 256


class DataSection(StrictModel):
    crop_units: int = Field(100, ge=2, le=100_000)  # training crop in 50 Hz unit frames (2 mel frames each)
    valid_items: int = Field(0, ge=0, le=10_000_000)  # held-out items scored by free-running generation; 0 = all
    valid_max_units: int = Field(500, ge=0, le=1_000_000)  # crop each validation item (10 s); 0 = whole items
    cache_mb: int = Field(2048, ge=0, le=1_000_000)  # keep training items in memory up to this size


class RefineSection(StrictModel):
    enabled: bool = False  # set by `train softvc --init M --refine`
    lr: float = Field(1e-5, gt=0, le=10)  # hubert-pitdyn's refine rate; replaces train.lr when enabled


def _default_train() -> TrainConfig:
    return TrainConfig(steps=80_000, batch_size=32, lr=4e-4, betas=(0.8, 0.99), weight_decay=1e-5,
                       optimizer="adamw", schedule="constant", valid_every=1000, best_metric="valid/mel_l1",
                       best_mode="min")


class SoftvcConfig(StrictModel):
    model: AcousticSection = AcousticSection()
    data: DataSection = DataSection()
    mel: MelSettings = MEL_16K_BSHALL
    # acoustic weights to start from: a voxtool softvc model.pt / run folder or a published {"acoustic-model": ...}
    init: str = ""
    refine: RefineSection = RefineSection()
    train: TrainConfig = Field(default_factory=_default_train)

    @model_validator(mode="before")
    @classmethod
    def _fill_sections(cls, data: Any) -> Any:
        """A partial `[mel]` keeps bshall's values; `refine.enabled` puts `refine.lr` into `train.lr`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("mel"), dict):
            data["mel"] = {**MEL_16K_BSHALL.model_dump(), **data["mel"]}
        if isinstance(data.get("train"), dict):  # a partial [train] keeps bshall's rates, not TrainConfig's
            data["train"] = {**_default_train().model_dump(exclude_unset=True), **data["train"]}
        refine = data.get("refine")
        if isinstance(refine, dict) and refine.get("enabled") in (True, "true"):
            train = data.get("train", _default_train())
            train = train.model_dump(exclude_unset=True) if isinstance(train, TrainConfig) else dict(train)
            train["lr"] = refine.get("lr", RefineSection().lr)
            data["train"] = train
        return data

    @model_validator(mode="after")
    def _agree(self) -> SoftvcConfig:
        if self.refine.enabled and not self.init:
            raise ValueError("refine.enabled needs init (the pretrained acoustic model to refine)")
        if self.mel.sample_rate != 16000 or self.mel.hop_length != 160:
            raise ValueError(f"the acoustic model makes 2 mel frames per 50 Hz unit: mel must be 16 kHz with hop 160 "
                             f"(got {self.mel.sample_rate} Hz, hop {self.mel.hop_length})")
        return self


# `voxtool train hubert-soft`'s config (helper module hubert_config.py), so the plugin's configs live in one place.
from voxtool.tasks.softvc.hubert_config import HubertSoftConfig  # noqa: E402

__all__ = ["AcousticSection", "DataSection", "HubertSoftConfig", "RefineSection", "SoftvcConfig"]
