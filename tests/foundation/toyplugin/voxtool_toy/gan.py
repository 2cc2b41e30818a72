"""Toy GAN: a generator learns N(2, 0.5²) from 4-D noise against a discriminator (LSGAN losses, as HiFi-GAN).

Exercises the multi-optimiser path of the Trainer: two optimisers with their own lr, clip and schedule
(`[train.optimizers.*]`), manual optimisation, a frozen input projection (`train.freeze`) and a part that
starts training late.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig
from voxtool.training.task import StepContext, TrainTask

NOISE = 4
TARGET_MEAN, TARGET_STD = 2.0, 0.5


class GanModelConfig(StrictModel):
    hidden: int = Field(32, ge=1)


class GanConfig(StrictModel):
    model: GanModelConfig = GanModelConfig()
    train: TrainConfig = TrainConfig()


class Generator(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.project = torch.nn.Linear(NOISE, NOISE)  # frozen in the preset: must never change
        self.body = torch.nn.Sequential(torch.nn.Linear(NOISE, hidden), torch.nn.LeakyReLU(0.1),
                                        torch.nn.Linear(hidden, hidden), torch.nn.LeakyReLU(0.1))
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, NOISE) -> (B, 1)"""
        return self.head(self.body(self.project(z)))


class Discriminator(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(1, hidden), torch.nn.LeakyReLU(0.1),
                                       torch.nn.Linear(hidden, hidden), torch.nn.LeakyReLU(0.1),
                                       torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> float:
    """W1 distance between two equal-sized 1-D samples (mean gap of the sorted values)."""
    return float((a.flatten().sort().values - b.flatten().sort().values).abs().mean())


def fixed_eval(n: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(7)
    z = torch.from_numpy(rng.normal(size=(n, NOISE)).astype(np.float32))
    real = torch.from_numpy(rng.normal(TARGET_MEAN, TARGET_STD, size=(n, 1)).astype(np.float32))
    return z, real


class ToyGanTask(TrainTask):
    name = "toygan"
    manual_optimization = True

    def __init__(self, config: GanConfig, data: Path, env):
        super().__init__(config, data, env)
        torch.manual_seed(env.seed)  # identical initial weights on every rank
        self.model = Generator(config.model.hidden)
        self.disc = Discriminator(config.model.hidden)
        self.autocast_seen: list[bool] = []

    def modules(self):
        return {"model": self.model, "disc": self.disc}

    def optimizer_modules(self):
        return {"generator": ["model"], "discriminator": ["disc"]}

    def sample_batch(self, step, rng):
        n = self.config.train.batch_size
        z = rng.normal(size=(n, NOISE)).astype(np.float32)
        real = rng.normal(TARGET_MEAN, TARGET_STD, size=(n, 1)).astype(np.float32)
        return torch.from_numpy(z), torch.from_numpy(real)

    def training_step(self, batch, ctx: StepContext):
        z, real = batch
        self.autocast_seen.append(torch.is_autocast_enabled(z.device.type))
        gen, disc = ctx.modules["model"], ctx.modules["disc"]
        fake = gen(z)
        scores = disc(torch.cat([real, fake.detach()])).float()  # one forward for both halves (DDP-friendly)
        d_real, d_fake = scores[: len(real)], scores[len(real):]
        loss_d = torch.mean((d_real - 1) ** 2) + torch.mean(d_fake ** 2)
        ctx.optimize(loss_d, "discriminator")
        loss_g = torch.mean((disc(fake).float() - 1) ** 2)  # leaves gradients on disc: zeroed before its next step
        ctx.optimize(loss_g, "generator")
        return {"loss": loss_g, "loss_d": loss_d}

    @torch.no_grad()
    def validate(self, model):
        z, real = fixed_eval()
        return {"valid/w1": wasserstein_1d(model(z), real)}

    def after_optimizer_step(self, ctx):
        dump = os.environ.get("VOXTOOL_TOY_DUMP")
        if dump and ctx.step + 1 == self.config.train.steps:
            state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            state.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
            torch.save(state, Path(dump) / f"rank{self.env.rank}.pt")
