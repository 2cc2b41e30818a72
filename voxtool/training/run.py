"""From CLI options to a finished run: config, device, launch, run folder, Trainer."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from voxtool import console, distributed
from voxtool.devices import grad_scaler, normalise_precision, resolve_device, set_current
from voxtool.errors import BadInput
from voxtool.fileio import write_text_atomic
from voxtool.options import TrainOptions
from voxtool.presets import dump_toml, load_config
from voxtool.training.task import RunEnv, TrainTask


def run_name(task: str, opts: TrainOptions) -> str:
    """--exp, or a new timestamped name not yet taken in --runs-dir.

    Worker ranks get their launcher's name as `--exp`; nothing is kept in the process environment, so a
    second run in the same process gets a name of its own.
    """
    if opts.exp:
        if "/" in opts.exp or os.sep in opts.exp or opts.exp in (".", ".."):
            raise BadInput(None, f"--exp {opts.exp!r}: a run name, not a path")
        return opts.exp
    base = name = f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while (opts.runs_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def prepare_config(config_cls, task: str, opts: TrainOptions, default_preset: str, run_dir: Path,
                   overrides: list[str]):
    overrides = list(overrides) + list(opts.set)
    if opts.steps is not None:
        overrides.append(f"train.steps={opts.steps}")
    if opts.seed is not None:
        overrides.append(f"train.seed={opts.seed}")
    preset: str | Path = opts.preset or default_preset
    if opts.resume and opts.preset is None and (run_dir / "config.toml").is_file():
        preset = run_dir / "config.toml"  # a resumed run keeps its own config unless told otherwise
    return load_config(config_cls, preset, overrides, task=task)


def train_from_options(task_cls: type[TrainTask], config_cls, data: Path | None, opts: TrainOptions,
                       default_preset: str, overrides: list[str] | None = None) -> dict[str, Any] | None:
    """Validate everything, launch ranks if asked, build the task and fit it. Returns the Trainer's summary."""
    from voxtool.training.trainer import Trainer

    console.set_quiet(opts.quiet)
    console.set_debug(opts.debug)
    name = run_name(task_cls.name, opts)
    if opts.runs_dir.exists() and not opts.runs_dir.is_dir():
        raise BadInput(opts.runs_dir, "--runs-dir is a file, not a folder")
    run_dir = opts.runs_dir / name
    if run_dir.exists() and not run_dir.is_dir():
        raise BadInput(run_dir, "run folder is a file")
    config = prepare_config(config_cls, task_cls.name, opts, default_preset, run_dir, overrides or [])
    precision = normalise_precision(opts.precision)
    device = resolve_device(opts.device, distributed.local_rank() if distributed.under_launcher() else None)
    grad_scaler(device, precision)  # fp16 on a device without a loss scaler: refused before any work
    if not opts.resume and (run_dir / "last.pt").exists():
        raise BadInput(run_dir, "run folder already holds a run; pass --resume to continue it or choose another --exp")
    if opts.resume and not (run_dir / "last.pt").exists():
        raise BadInput(run_dir / "last.pt", "cannot resume: no checkpoint")

    if opts.nproc_per_node > 1 and not distributed.under_launcher():
        console.log(f"launching {opts.nproc_per_node} ranks on {device.type} ({device.ddp_backend})")
        argv = None if opts.exp else [*sys.argv[1:], "--exp", name]  # every rank writes the same run folder
        distributed.relaunch(opts.nproc_per_node, argv)
        return None

    distributed.init(device.ddp_backend)
    try:
        set_current(device)
        env = RunEnv(device=device.torch, device_spec=device, rank=distributed.rank(),
                     world_size=distributed.world_size(), seed=config.train.seed, precision=precision)
        console.log(f"run {run_dir} | device {device} | precision {precision} | ranks {env.world_size}")
        task = task_cls(config, data, env)
        trainer = Trainer(task, config.train, env, run_dir, config.model_dump(mode="json"))
        if opts.resume:
            trainer.resume()  # validated (task, shapes, config) before anything in the run folder changes
        if env.is_rank0:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / "config.toml", dump_toml(config, task=task_cls.name))
        distributed.barrier()
        summary = trainer.fit()
        best = summary["best"]
        if best["value"] is not None:
            console.log(f"done: step {summary['step']}, best {best['metric']} {best['value']:.4g} at step "
                        f"{best['step']}; model: {run_dir / 'model.pt'}")
        else:
            console.log(f"done: step {summary['step']}; model: {run_dir / 'model.pt'}")
        return summary
    finally:
        distributed.shutdown()
