"""Typed preset sections of the diffvc task: `DiffvcConfig` (decoder training, `train diffvc`; presets diffvc.toml,
diffvc-tiny.toml) and `DiffvcEncoderConfig` (average-voice encoder training, `train diffvc-encoder`; presets
diffvc-encoder.toml, diffvc-encoder-tiny.toml).

Imports no torch: `voxtool presets show` and the CLI read it cheaply. `[encoder]` / `[decoder]` are the network
sections of `model_config.py` (published sizes by default); `[mel]` is the library's `MelSettings`, HiFi-GAN
22.05 kHz (`MEL_22K_JIK876`) as DiffVC and its vocoder use. The `[train]` defaults are the original recipes
(huawei-noah/Speech-Backbones DiffVC `train_enc.py` / `train_dec.py`): Adam, grad-clip 1.0, seed 37,
128-frame crops; encoder lr 5e-4 batch 128, decoder lr 1e-4 batch 32. The original counts epochs (300 / 110 over
LibriTTS); voxtool counts optimiser steps, so `train.steps` is that many epochs' worth of LibriTTS batches.
The decoder trains beside the frozen encoder through the Trainer's `train.freeze` (`model.encoder` = -1).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from voxtool.presets import StrictModel
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection, check_sizes
from voxtool.training.config import TrainConfig
from voxtool.vocoders.settings import MEL_22K_JIK876, MelSettings

PRESETS = ("diffvc", "diffvc-tiny", "diffvc-encoder", "diffvc-encoder-tiny")
DATASET_FORMAT = "voxtool-diffvc-dataset"
FROZEN_ENCODER = "model.encoder"  # parameter-name prefix of the encoder inside the trained DiffVC module


class DataSection(StrictModel):
    # random training crop in mel frames (128 = 1.49 s at 22.05 kHz / hop 256); shorter items are zero-padded
    # and masked, as the original collates
    crop_frames: int = Field(128, ge=8, le=100_000)
    valid_items: int = Field(16, ge=0, le=10_000_000)  # held-out items scored each validation; 0 = all
    valid_max_frames: int = Field(512, ge=8, le=1_000_000)  # each validation item is cut to this many frames


def _fill_mel(data: Any) -> Any:
    """A partial `[mel]` table keeps the HiFi-GAN 22.05 kHz values for the keys it leaves out."""
    if isinstance(data, dict) and isinstance(data.get("mel"), dict):
        data = {**data, "mel": {**MEL_22K_JIK876.model_dump(), **data["mel"]}}
    return data


def _check_mel(encoder: EncoderSection, mel: MelSettings) -> None:
    n_feats = getattr(encoder, "n_feats", mel.n_mels)
    if n_feats != mel.n_mels:
        raise ValueError(f"encoder.n_feats {n_feats} differs from mel.n_mels {mel.n_mels}")


class DiffvcEncoderConfig(StrictModel):
    """`train diffvc-encoder`: the average-voice encoder (FwdDiffusion) alone, masked MSE to the dataset's avg_mel."""

    encoder: EncoderSection = EncoderSection()
    mel: MelSettings = MEL_22K_JIK876
    data: DataSection = DataSection()
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        lr=5e-4, optimizer="adam", batch_size=128, grad_clip=1.0, seed=37, steps=350_000, valid_every=2000,
        log_every=50, best_metric="valid/loss", best_mode="min"))

    @model_validator(mode="before")
    @classmethod
    def _fill_sections(cls, data: Any) -> Any:
        return _fill_mel(data)

    @model_validator(mode="after")
    def _agree(self) -> DiffvcEncoderConfig:
        _check_mel(self.encoder, self.mel)
        return self


class DiffvcConfig(StrictModel):
    """`train diffvc`: the diffusion decoder beside a frozen, pre-trained encoder (`--encoder`, kept in `encoder_init`).

    `[encoder]` must be the sizes of that encoder; a voxtool encoder model.pt brings its own, which replace these.
    """

    encoder: EncoderSection = EncoderSection()
    decoder: DecoderSection = DecoderSection()
    mel: MelSettings = MEL_22K_JIK876
    data: DataSection = DataSection()
    # the pre-trained encoder (a `train diffvc-encoder` model.pt / run folder, the published enc.pt, or a vc_*.pt
    # whose encoder is taken); `--encoder` fills it. Empty: the encoder starts random (only for tests).
    encoder_init: str = ""
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        lr=1e-4, optimizer="adam", batch_size=32, grad_clip=1.0, seed=37, steps=500_000, valid_every=2000,
        log_every=50, best_metric="valid/loss", best_mode="min", freeze={FROZEN_ENCODER: -1}))

    @model_validator(mode="before")
    @classmethod
    def _fill_sections(cls, data: Any) -> Any:
        return _fill_mel(data)

    @model_validator(mode="after")
    def _agree(self) -> DiffvcConfig:
        _check_mel(self.encoder, self.mel)
        check_sizes(self.encoder, self.decoder)
        return self
