"""The `[train]` section every trainable task's preset carries.

Every number has a range: a value outside it (or inf/nan, which `StrictModel` refuses everywhere) is a `BadInput`
naming the key at validation, before anything is built or trained.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from voxtool.presets import StrictModel

MAX_STEPS = 10_000_000
Beta = Annotated[float, Field(ge=0, lt=1)]


class TrainConfig(StrictModel):
    steps: int = Field(1000, ge=1, le=MAX_STEPS, description="total optimiser steps")
    batch_size: int = Field(16, ge=1, le=65536, description="per rank")
    lr: float = Field(5e-4, gt=0, le=10)
    optimizer: Literal["adamw", "adam", "sgd", "schedulefree"] = "adamw"
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS)
    decay_steps: int = Field(2000, ge=1, le=MAX_STEPS,
                             description="step schedule: multiply lr by decay_rate every decay_steps")
    decay_rate: float = Field(0.98, gt=0, le=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float = Field(0.0, ge=0, le=1e6, description="max grad norm; 0 = off")
    grad_accum: int = Field(1, ge=1, le=4096)
    ema_decay: float = Field(0.0, ge=0, lt=1, description="0 = no EMA copy")
    valid_every: int = Field(500, ge=1, le=MAX_STEPS)
    save_every: int = Field(0, ge=0, le=MAX_STEPS, description="keep step_N.pt every N steps; 0 = off")
    log_every: int = Field(10, ge=1, le=MAX_STEPS)
    best_metric: str = Field("valid/loss", min_length=1)
    best_mode: Literal["max", "min"] = "min"
    seed: int = Field(1234, ge=0, le=2**32 - 1, description="numpy's SeedSequence needs a non-negative seed")
