"""The `[train]` section every trainable task's preset carries.

Every number has a range: a value outside it (or inf/nan, which `StrictModel` refuses everywhere) is a `BadInput`
naming the key at validation, before anything is built or trained.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from voxtool.presets import StrictModel

MAX_STEPS = 10_000_000
Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimizerConfig(StrictModel):
    """`[train.optimizers.NAME]`: what one optimiser of a multi-optimiser task does differently.

    Every field left out inherits the `[train]` value of the same name, so a GAN preset states the shared
    settings once and only the differences per optimiser (e.g. the discriminator's lr or clip value).
    """

    optimizer: Literal["adamw", "adam", "sgd", "schedulefree"] | None = None
    lr: float | None = Field(None, gt=0, le=10)
    betas: tuple[Beta, Beta] | None = None
    eps: float | None = Field(None, gt=0, le=1)
    weight_decay: float | None = Field(None, ge=0, le=10)
    momentum: float | None = Field(None, ge=0, lt=1)
    schedule: Literal["constant", "cosine", "step"] | None = None
    warmup_steps: int | None = Field(None, ge=0, le=MAX_STEPS)
    decay_steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    decay_rate: float | None = Field(None, gt=0, le=1)
    min_lr_ratio: float | None = Field(None, ge=0, le=1)
    grad_clip: float | None = Field(None, ge=0, le=1e6)
    lr_scale: dict[str, Annotated[float, Field(gt=0, le=1e3)]] = Field(
        default_factory=dict,
        description="parameter-name prefix -> lr multiplier (e.g. a pretrained encoder at 0.1x a new head); "
                    "names are '<module>.<parameter>', the longest matching prefix wins")


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
    optimizers: dict[str, OptimizerConfig] = Field(
        default_factory=dict, description="per-optimiser differences from [train], by optimiser name")
    freeze: dict[str, Annotated[int, Field(ge=-1, le=MAX_STEPS)]] = Field(
        default_factory=dict,
        description="parameter-name prefix -> step at which it starts training (-1: frozen for the whole run)")
    find_unused_parameters: bool = Field(False, description="DDP: allow parameters without a gradient in a step "
                                                            "(switched on by itself when `freeze` is used)")
    prefetch: bool = Field(True, description="build the next step's batch in a background thread")

    @model_validator(mode="after")
    def _schedule_free_has_no_schedule(self) -> TrainConfig:
        # schedule-free optimisers replace the schedule (only warmup_steps applies); refuse one that would be ignored
        for name in ["", *self.optimizers]:
            own = self.for_optimizer(name) if name else self
            if own.optimizer == "schedulefree" and own.schedule != "constant":
                where = f"optimizers.{name}." if name else ""
                raise ValueError(f"{where}schedule = '{own.schedule}' is ignored by the schedule-free optimiser; "
                                 "use schedule = 'constant' (warmup_steps still applies)")
        return self

    def for_optimizer(self, name: str) -> TrainConfig:
        """This config with `[train.optimizers.NAME]` applied: what optimiser `name` trains with."""
        over = self.optimizers.get(name)
        if over is None:
            return self
        return self.model_copy(update={k: v for k, v in over.model_dump(exclude={"lr_scale"}).items() if v is not None})
