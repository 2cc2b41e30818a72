"""The `voxtool train hubert-soft` command function (mounted by the softvc plugin in cli.py).

Thin: the work is in hubert_train.py, imported inside the command so `voxtool --help` stays fast. No
`from __future__ import annotations`: the option wrappers of voxtool.options read the annotations.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import TrainOptions, train_command

TargetsOpt = Annotated[str | None, typer.Option(
    "--targets", help="Discrete targets: mfcc (k-means on MFCCs, HuBERT's first iteration) | layer:N (k-means on "
                      "layer N of the --init model) | pitch | dynamics (hubert-pitdyn's bins from dataset.json's "
                      "stats). Default: the preset's (mfcc).")]
ClustersOpt = Annotated[int | None, typer.Option(
    "--clusters", min=2, max=10_000, help="k-means clusters for mfcc / layer:N (ignored for pitch and dynamics: "
                                          "the label count is the number of bins). Default: the preset's (100).")]
InitOpt = Annotated[Path | None, typer.Option(
    "--init", help="Start from a HuBERT: a published bshall checkpoint (v0.1 bare or v0.2 {'hubert': ...}) or a "
                   "voxtool hubert-soft model.pt / run folder. Its architecture is used; a label embedding of "
                   "another size starts fresh.")]


@train_command
def train_hubert_soft(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep softvc; audio, f0 and rms suffice).")],
    targets: TargetsOpt = None,
    clusters: ClustersOpt = None,
    init: InitOpt = None,
    *,
    opts: TrainOptions,
) -> None:
    """Train (or fine-tune) a HuBERT-Soft content encoder's soft head against discrete targets."""
    from voxtool import distributed
    from voxtool.encoders.hubert_checkpoint import TASK
    from voxtool.errors import BadInput
    from voxtool.tasks.softvc.hubert_config import parse_kind
    from voxtool.tasks.softvc.hubert_train import HubertSoftConfig, HubertSoftTask
    from voxtool.training.modelfile import resolve_model_path
    from voxtool.training.run import run_name, train_from_options

    overrides = []
    if targets is not None:
        try:
            parse_kind(targets)
        except ValueError as e:
            raise BadInput(None, f"--targets: {e}") from None
        overrides.append(f'targets.kind="{targets}"')
    if clusters is not None:
        if targets in ("pitch", "dynamics"):
            from voxtool import console

            console.log(f"--clusters {clusters} is ignored with --targets {targets}: the labels are the bins")
        overrides.append(f"targets.clusters={clusters}")
    if init is not None:
        overrides.append(f'init="{resolve_model_path(init).resolve().as_posix()}"')
    # The targets are kept in the run folder (exact resume). A launcher of several ranks names the run itself
    # and hands the name to its workers as --exp, so the name is fixed here only outside that launcher.
    if opts.exp is None and not (opts.nproc_per_node > 1 and not distributed.under_launcher()):
        opts.exp = run_name(TASK, opts)
    if opts.exp is not None:
        run_dir = opts.runs_dir / run_name(TASK, opts)
        overrides.append(f'targets.file="{(run_dir / "targets.npz").resolve().as_posix()}"')
    train_from_options(HubertSoftTask, HubertSoftConfig, data, opts, default_preset="hubert-soft",
                       overrides=overrides)
