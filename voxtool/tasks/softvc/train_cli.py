"""The `voxtool train softvc` command function (mounted by the softvc plugin in cli.py).

Thin: the work is in train.py, imported inside the command so `voxtool --help` stays fast. No
`from __future__ import annotations`: the option wrappers of voxtool.options read the annotations.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import TrainOptions, train_command

ConditioningOpt = Annotated[str | None, typer.Option(
    "--conditioning", help="none (units only, bshall) | pitdyn (units + pitch + dynamics soft units, "
                           "hubert-pitdyn) | explicit (units + log-f0, voicing, loudness; allows --key). "
                           "Default: the preset's (none).")]
InitOpt = Annotated[Path | None, typer.Option(
    "--init", help="Start from acoustic weights: a softvc model.pt / run folder, or a published "
                   "{'acoustic-model': ...} checkpoint (same conditioning and sizes).")]
RefineOpt = Annotated[bool, typer.Option(
    "--refine", help="With --init: hubert-pitdyn's refine step on a small bank (lr refine.lr = 1e-5, fresh "
                     "optimiser, steps counted from 0).")]


@train_command
def train_softvc(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep softvc ... --content HUBERT).")],
    conditioning: ConditioningOpt = None,
    init: InitOpt = None,
    refine: RefineOpt = False,
    *,
    opts: TrainOptions,
) -> None:
    """Train the Soft-VC acoustic model (units -> 16 kHz vocoder mels) on a prepared dataset."""
    from voxtool.errors import BadInput
    from voxtool.tasks.softvc.config import CONDITIONINGS
    from voxtool.tasks.softvc.train import SoftvcConfig, SoftvcTask
    from voxtool.training.modelfile import resolve_model_path
    from voxtool.training.run import train_from_options

    overrides = []
    if conditioning is not None:
        if conditioning not in CONDITIONINGS:
            raise BadInput(None, f"--conditioning {conditioning!r}: choose {' | '.join(CONDITIONINGS)}")
        overrides.append(f'model.conditioning="{conditioning}"')
    if refine and init is None:
        raise BadInput(None, "--refine needs --init (the pretrained acoustic model to refine)")
    if init is not None:
        overrides.append(f'init="{resolve_model_path(init).resolve().as_posix()}"')
    if refine:
        overrides.append("refine.enabled=true")
    train_from_options(SoftvcTask, SoftvcConfig, data, opts, default_preset="softvc", overrides=overrides)
