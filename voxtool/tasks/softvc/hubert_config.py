"""Typed preset of `voxtool train hubert-soft` (presets/hubert-soft.toml, hubert-tiny.toml); imports no torch.

Defaults are bshall/hubert's fine-tuning recipe (hub:train.py): AdamW lr 2e-5, betas (0.9, 0.98), eps 1e-6,
weight decay 1e-2, clip 10, batch 32, 25k steps, validation every 1000; masked spans (mask_prob 0.8, span 10,
at least 2 spans), loss on masked frames only (alpha 1); the conv feature extractor frozen
(`train.freeze = {"model.feature_extractor" = -1}`, as fairseq's HuBERT fine-tuning).

Targets (`[targets] kind`):
- "mfcc": k-means (`clusters`) on 39-d MFCCs (13 + deltas + delta-deltas) at 50 Hz, HuBERT's first iteration, so
  the whole chain trains offline without published weights;
- "layer:N": k-means on transformer layer N of the `--init` model (HuBERT's later iterations cluster the previous
  iteration's model; bshall's discrete units are layer 7 of HuBERT-Base with 100 clusters);
- "pitch" / "dynamics": hubert-pitdyn's streams, the bins of `voxtool.tasks.softvc.bins` from dataset.json's
  stats (`clusters` is then ignored: the label count is the number of bins).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from voxtool.encoders.hubert_settings import HubertArch
from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig

PRESETS = ("hubert-soft", "hubert-tiny")
TARGET_KINDS = ("mfcc", "layer:N", "pitch", "dynamics")
_KIND = re.compile(r"^(mfcc|pitch|dynamics|layer:([1-9][0-9]?))$")


def parse_kind(kind: str) -> tuple[str, int | None]:
    """"layer:7" -> ("layer", 7); "mfcc" -> ("mfcc", None). ValueError for anything else."""
    m = _KIND.match(kind)
    if not m:
        raise ValueError(f"targets kind {kind!r}: choose mfcc, layer:N (N = 1..99), pitch or dynamics")
    return ("layer", int(m.group(2))) if m.group(2) else (m.group(1), None)


class TargetsSection(StrictModel):
    kind: str = Field("mfcc", description="mfcc | layer:N | pitch | dynamics")
    clusters: int = Field(100, ge=2, le=10_000, description="k-means clusters (mfcc, layer:N)")
    fit_frames: int = Field(200_000, ge=100, le=100_000_000, description="frames sampled to fit k-means")
    mask: bool = Field(True, description="masked-span training (HuBERT / bshall --mask)")
    mask_prob: float = Field(0.8, gt=0, le=1, description="span starts drawn per crop: mask_prob * frames / mask_length")
    mask_length: int = Field(10, ge=1, le=1000, description="frames per masked span")
    min_masks: int = Field(2, ge=0, le=1000, description="at least this many spans per crop")
    masked_weight: float = Field(1.0, ge=0, le=1, description="alpha: alpha*CE(masked) + (1-alpha)*CE(unmasked)")
    file: str = Field("", description="where the computed targets are kept (the CLI sets RUN/targets.npz); "
                                      "empty: recomputed at every start")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        parse_kind(v)
        return v


class DataSection(StrictModel):
    crop_seconds: float = Field(2.0, gt=0, le=600, description="training crop (bshall: up to 250000 samples)")
    valid_items: int = Field(0, ge=0, le=10_000_000, description="validation items scored; 0 = all")
    valid_max_seconds: float = Field(0.0, ge=0, le=86_400, description="crop each validation item; 0 = whole")


def _default_train() -> TrainConfig:
    return TrainConfig(steps=25_000, batch_size=32, lr=2e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-2,
                       grad_clip=10.0, valid_every=1000, save_every=5000, best_metric="valid/ce", best_mode="min",
                       freeze={"model.feature_extractor": -1})


class HubertSoftConfig(StrictModel):
    arch: HubertArch = HubertArch()
    targets: TargetsSection = TargetsSection()
    data: DataSection = DataSection()
    # a published HuBERT checkpoint or a voxtool hubert-soft model to start from (its architecture wins)
    init: str = ""
    train: TrainConfig = Field(default_factory=_default_train)

    @field_validator("train", mode="before")
    @classmethod
    def _train_defaults(cls, v: Any) -> Any:
        """A partial `[train]` table keeps this task's defaults (not TrainConfig's) for the keys it leaves out."""
        if isinstance(v, dict):
            return {**_default_train().model_dump(), **v}
        return v

    @property
    def crop_frames(self) -> int:
        return max(1, int(round(self.data.crop_seconds * 50)))
