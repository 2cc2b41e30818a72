"""The `[train]` section every trainable task's preset carries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from voxtool.presets import StrictModel


class TrainConfig(StrictModel):
    steps: int = Field(1000, ge=1, description="total optimiser steps")
    batch_size: int = Field(16, ge=1, description="per rank")
    lr: float = Field(5e-4, gt=0)
    optimizer: Literal["adamw", "adam", "sgd", "schedulefree"] = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_steps: int = Field(2000, ge=1, description="step schedule: multiply lr by decay_rate every decay_steps")
    decay_rate: float = Field(0.98, gt=0, le=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float = Field(0.0, ge=0, description="max grad norm; 0 = off")
    grad_accum: int = Field(1, ge=1)
    ema_decay: float = Field(0.0, ge=0, lt=1, description="0 = no EMA copy")
    valid_every: int = Field(500, ge=1)
    save_every: int = Field(0, ge=0, description="keep step_N.pt every N steps; 0 = off")
    log_every: int = Field(10, ge=1)
    best_metric: str = "valid/loss"
    best_mode: Literal["max", "min"] = "min"
    seed: int = 1234
