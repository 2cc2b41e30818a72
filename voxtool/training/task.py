"""What a task gives the Trainer: its modules, one batch per step, one training step, validation."""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.devices import Device


@dataclass
class RunEnv:
    """Where and how a run executes (the same object on every rank, with its own rank)."""

    device: torch.device
    device_spec: Device = field(default_factory=lambda: Device("cpu"))
    rank: int = 0
    world_size: int = 1
    seed: int = 1234
    precision: str = "32"

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0


@dataclass
class StepContext:
    """Handed to `TrainTask.training_step` for one optimiser step."""

    step: int
    model: torch.nn.Module  # the main model, DDP-wrapped when distributed
    modules: dict[str, torch.nn.Module]  # every trainable module, wrapped
    ema: torch.nn.Module | None  # the EMA copy of the main model (Mean Teacher), or None
    env: RunEnv
    _trainer: Any = None

    def autocast(self) -> contextlib.AbstractContextManager:
        from voxtool.devices import autocast

        return autocast(self.env.device_spec, self.env.precision)

    def optimize(self, loss: torch.Tensor, name: str = "model") -> None:
        """Manual optimisation (GANs and friends): one update of optimiser `name` from `loss`.

        Zeroes that optimiser's gradients first (a generator loss back-propagated through a discriminator
        leaves gradients on it that must not leak into the next discriminator step), checks that the loss is
        finite, back-propagates outside autocast, unscales, clips with that optimiser's `grad_clip` and steps.
        Call it at most once per optimiser per training step; the loss scaler is updated once per step.
        """
        self._trainer.optimize(loss, name)


class TrainTask(abc.ABC):
    """Subclass per task; see docs/architecture.md."""

    name: str = "task"
    manual_optimization: bool = False  # True: training_step calls ctx.optimize(loss, name) per optimiser
    model: torch.nn.Module

    def __init__(self, config: Any, data: Path, env: RunEnv):
        self.config = config
        self.data = data
        self.env = env

    def modules(self) -> dict[str, torch.nn.Module]:
        """Every trainable module by name; 'model' is the main one (saved in model.pt, EMA-averaged)."""
        return {"model": self.model}

    def optimizer_modules(self) -> dict[str, list[str]]:
        """Optimiser name -> the modules (names from `modules()`) it trains.

        Default: one optimiser, 'model', over every module. A GAN returns e.g.
        {'generator': ['model'], 'discriminator': ['mpd', 'msd']} and sets `manual_optimization`.
        """
        return {"model": list(self.modules())}

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per `optimizer_modules()` entry, each with its `[train.optimizers.NAME]` settings."""
        from voxtool.training.schedules import optimizer_for

        modules = self.modules()
        return {name: optimizer_for({m: modules[m] for m in names}, self.config.train, name)
                for name, names in self.optimizer_modules().items()}

    @abc.abstractmethod
    def sample_batch(self, step: int, rng: np.random.Generator) -> Any:
        """The batch of optimiser step `step` on this rank (rng is seeded from seed, step, micro-step and rank)."""

    @abc.abstractmethod
    def training_step(self, batch: Any, ctx: StepContext) -> dict[str, Any]:
        """Forward + loss; return {'loss': tensor, other scalars to log}."""

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics on held-out data (rank 0, eval mode, no grad); keys like 'valid/loss'."""
        return {}

    def validation_audio(self, model: torch.nn.Module) -> dict[str, tuple[Any, int]]:
        """Audio to listen to in TensorBoard after each validation: {tag: (waveform (N,) float in [-1, 1],
        sample rate)} (rank 0, eval mode, no grad; e.g. a vocoder's held-out resynthesis). Default: none."""
        return {}

    def best_metric(self) -> tuple[str, str]:
        return self.config.train.best_metric, self.config.train.best_mode

    def deployable(self, model: torch.nn.Module) -> dict[str, Any]:
        """Extra entries for model.pt's `meta` (e.g. target range, token inventory)."""
        return {}

    def deploy_components(self, model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        """Further named parts model.pt carries beside the main model, each with the config it needs.

        `model` is what the main entry holds (the EMA copy where there is one). A vocoder deploys only its
        generator (the default: nothing more); DiffVC adds {'encoder': (encoder, encoder_config)}.
        """
        return {}

    def after_optimizer_step(self, ctx: StepContext) -> None:
        """Hook after each optimiser step (and after the EMA update)."""
