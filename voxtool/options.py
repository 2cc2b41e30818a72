"""Option sets shared by commands of every task.

`@train_command` appends the core training options of DESIGN.md to a command's signature and hands them to
the function as one `opts: TrainOptions` argument, so every `train`/`ssl` command accepts the same flags.

Every numeric option has a sane range (typer `min=`/`max=`), checked while the command line is parsed, before
any work: an absurd value is `error: --OPTION: must be ...` (exit 2), never an allocation the kernel kills.
The limits shared by several commands live here (the preset fields have the same bounds in TrainConfig).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from voxtool import console

PANEL = "Training options"

MAX_STEPS = 10_000_000  # optimiser steps, intervals, iterations
MAX_SEED = 2**32 - 1  # numpy's SeedSequence takes non-negative seeds
MAX_NPROC = 256  # --nproc-per-node
MAX_WORKERS = 256  # prep --workers
MAX_BATCH = 4096  # batch sizes
MAX_COUNT = 1_000_000_000  # --limit N items (0 = all)

InferPrecision = Annotated[str, typer.Option(
    "--precision", help="auto (bf16 on a CPU with native bf16, else 32) | 32 | bf16 | 16.")]
Backend = Annotated[str, typer.Option("--backend", help="torch | onnx (onnxruntime, CPU, 32-bit).")]
Threads = Annotated[int, typer.Option(
    "--threads", min=0, max=256, help="CPU threads for the network (0: one per core; capped at the core count).")]
FailFast = Annotated[bool, typer.Option(
    "--fail-fast", help="Stop at the first input that fails (default: report it, go on, exit 2 at the end).")]


@dataclass
class TrainOptions:
    exp: str | None = None
    runs_dir: Path = Path("runs")
    preset: str | None = None
    set: list[str] = field(default_factory=list)
    device: str = "auto"
    precision: str = "32"
    nproc_per_node: int = 1
    steps: int | None = None
    seed: int | None = None
    resume: bool = False
    quiet: bool = False
    debug: bool = False


def _train_parameters() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    opt = functools.partial(typer.Option, rich_help_panel=PANEL)
    spec = [
        ("exp", Annotated[str | None, opt("--exp", help="Run name: writes RUNS_DIR/NAME/.")], None),
        ("runs_dir", Annotated[Path, opt("--runs-dir", help="Folder of run folders.")], Path("runs")),
        ("preset", Annotated[str | None, opt("--preset", help="Preset name or TOML path.")], None),
        ("set_", Annotated[list[str], opt("--set", help="Override a preset field: key.path=value (repeatable).")], []),
        ("device", Annotated[str, opt("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")], "auto"),
        ("precision", Annotated[str, opt("--precision", help="32 | 16 | bf16 (autocast).")], "32"),
        ("nproc_per_node", Annotated[int, opt("--nproc-per-node", min=1, max=MAX_NPROC, help="Ranks on this machine (DDP).")], 1),
        ("steps", Annotated[int | None, opt("--steps", min=1, max=MAX_STEPS, help="Total optimisation steps.")], None),
        ("seed", Annotated[int | None, opt("--seed", min=0, max=MAX_SEED, help="Random seed (runs are repeatable).")], None),
        ("resume", Annotated[bool, opt("--resume", help="Continue the run in RUNS_DIR/EXP from last.pt.")], False),
        ("quiet", Annotated[bool, opt("--quiet", "-q", help="No progress or log lines.")], False),
        ("debug", Annotated[bool, opt("--debug", help="Show tracebacks.")], False),
    ]
    return [inspect.Parameter(f"_vt_{name}", kw, annotation=ann, default=default) for name, ann, default in spec]


def train_command(fn):
    """Decorate `fn(..., *, opts: TrainOptions)` so Typer sees the common training options."""
    sig = inspect.signature(fn, eval_str=True)  # plugins may use `from __future__ import annotations`
    params = [p for p in sig.parameters.values() if p.name != "opts"]
    extra = _train_parameters()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        values = {p.name[4:]: kwargs.pop(p.name) for p in extra}
        values["set"] = list(values.pop("set_") or [])
        opts = TrainOptions(**values)
        console.set_quiet(opts.quiet)
        console.set_debug(opts.debug)
        return fn(*args, opts=opts, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params + extra)
    return wrapper


def common_flags(fn):
    """Add `--quiet/-q` and `--debug` to any command (they set the process-wide console state)."""
    sig = inspect.signature(fn, eval_str=True)  # plugins may use `from __future__ import annotations`
    kw = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter("_vt_quiet", kw, annotation=Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines.")], default=False),
        inspect.Parameter("_vt_debug", kw, annotation=Annotated[bool, typer.Option("--debug", help="Show tracebacks.")], default=False),
    ]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        console.set_quiet(kwargs.pop("_vt_quiet"))
        console.set_debug(kwargs.pop("_vt_debug"))
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=list(sig.parameters.values()) + extra)
    return wrapper
