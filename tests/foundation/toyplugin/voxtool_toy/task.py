"""Toy task: regress y = x·w + noise with a two-layer MLP with dropout (random in every step)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig
from voxtool.training.task import StepContext, TrainTask

IN = 8
TRUE_W = np.random.default_rng(0).normal(size=(IN, 1)).astype(np.float32)


class ToyModelConfig(StrictModel):
    hidden: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class ToyConfig(StrictModel):
    model: ToyModelConfig = ToyModelConfig()
    train: TrainConfig = TrainConfig()


class ToyNet(torch.nn.Module):
    def __init__(self, hidden: int = 16, dropout: float = 0.1):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(IN, hidden), torch.nn.Tanh(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)


def heldout(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.random.default_rng(99).normal(size=(n, IN)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(x @ TRUE_W)


class ToyTask(TrainTask):
    name = "toy"

    def __init__(self, config: ToyConfig, data: Path, env):
        super().__init__(config, data, env)
        torch.manual_seed(env.seed)  # identical initial weights on every rank
        self.model = ToyNet(config.model.hidden, config.model.dropout)

    def sample_batch(self, step, rng):
        x = rng.normal(size=(self.config.train.batch_size, IN)).astype(np.float32)
        y = x @ TRUE_W + 0.01 * rng.normal(size=(len(x), 1)).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(y)

    def training_step(self, batch, ctx: StepContext):
        x, y = batch
        loss = torch.mean((ctx.model(x) - y) ** 2)
        return {"loss": loss}

    def validate(self, model):
        x, y = heldout()
        with torch.no_grad():
            return {"valid/loss": float(torch.mean((model(x) - y) ** 2))}

    def deployable(self, model):
        return {"note": "toy"}

    def after_optimizer_step(self, ctx):
        # test hooks, driven by the environment of the test that runs this plugin
        if os.environ.get("VOXTOOL_TOY_SIGINT_AT") == str(ctx.step + 1):
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        dump = os.environ.get("VOXTOOL_TOY_DUMP")
        if dump and ctx.step + 1 == self.config.train.steps:
            torch.save(self.model.state_dict(), Path(dump) / f"rank{self.env.rank}.pt")
