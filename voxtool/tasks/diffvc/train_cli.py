"""`voxtool train diffvc-encoder DATA` and `voxtool train diffvc DATA --encoder ENC` (mounted by cli.py).

No `from __future__ import annotations`: the option wrappers of voxtool.options resolve annotations here.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import TrainOptions, train_command


@train_command
def train_diffvc_encoder(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep diffvc).")],
    *,
    opts: TrainOptions,
) -> None:
    """Train DiffVC's average-voice encoder (masked MSE to the dataset's avg_mel); model.pt is its FwdDiffusion,
    the layout of the published enc.pt. Presets: diffvc-encoder (published sizes), diffvc-encoder-tiny."""
    from voxtool.tasks.diffvc.config import DiffvcEncoderConfig
    from voxtool.tasks.diffvc.train import DiffvcEncoderTask
    from voxtool.training.run import train_from_options

    train_from_options(DiffvcEncoderTask, DiffvcEncoderConfig, data, opts, default_preset="diffvc-encoder")


@train_command
def train_diffvc(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep diffvc).")],
    encoder: Annotated[Path, typer.Option("--encoder", help="The trained average-voice encoder: a `train "
                                                            "diffvc-encoder` model.pt or run folder, the published "
                                                            "enc.pt, or a vc_*.pt (its encoder).")],
    *,
    opts: TrainOptions,
) -> None:
    """Train DiffVC's diffusion decoder beside the frozen encoder (two crops of one utterance as target and
    reference, its d-vector); model.pt is the whole DiffVC in the published vc_*_wodyn.pt layout.
    Presets: diffvc (published sizes), diffvc-tiny."""
    from voxtool.errors import BadInput
    from voxtool.tasks.diffvc.config import DiffvcConfig
    from voxtool.tasks.diffvc.train import DiffvcTask
    from voxtool.training.run import train_from_options

    if not encoder.exists():
        raise BadInput(encoder, "encoder for --encoder not found")
    train_from_options(DiffvcTask, DiffvcConfig, data, opts, default_preset="diffvc",
                       overrides=[f'encoder_init="{encoder.resolve().as_posix()}"'])
