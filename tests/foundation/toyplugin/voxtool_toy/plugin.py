"""Entry point object: adds `train toy` and `infer toy` (a new task on existing verbs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import TrainOptions, train_command
from voxtool.plugins import TaskPlugin

PRESET = Path(__file__).with_name("toy.toml")
GAN_PRESET = Path(__file__).with_name("toygan.toml")


@train_command
def train(data: Annotated[Path, typer.Argument(help="ignored: the toy task makes its own data")] = Path("."),
          *, opts: TrainOptions) -> None:
    """Train the toy regression task."""
    from voxtool.training.run import train_from_options
    from voxtool_toy.task import ToyConfig, ToyTask

    train_from_options(ToyTask, ToyConfig, data, opts, default_preset=str(PRESET))


@train_command
def train_gan(data: Annotated[Path, typer.Argument(help="ignored: the toy GAN makes its own data")] = Path("."),
              *, opts: TrainOptions) -> None:
    """Train the toy GAN (two optimisers, manual optimisation)."""
    from voxtool.training.run import train_from_options
    from voxtool_toy.gan import GanConfig, ToyGanTask

    train_from_options(ToyGanTask, GanConfig, data, opts, default_preset=str(GAN_PRESET))


def infer(model: Annotated[Path, typer.Option("--model")], json_out: Annotated[bool, typer.Option("--json")] = False):
    """Print the toy model's validation loss."""
    import torch

    from voxtool.console import emit_json
    from voxtool.training.modelfile import load_model_file
    from voxtool_toy.task import ToyNet, heldout

    mf = load_model_file(model, task="toy")
    net = ToyNet()
    net.load_state_dict(mf.state_dict)
    net.eval()
    x, y = heldout()
    with torch.no_grad():
        loss = float(torch.mean((net(x) - y) ** 2))
    emit_json({"valid_loss": loss}) if json_out else print(loss)


plugin = TaskPlugin(name="toy", summary="Toy regression (tests)", commands={"train": {"toy": train, "toygan": train_gan}, "infer": {"toy": infer}},
                    config="voxtool_toy.task:ToyConfig")
