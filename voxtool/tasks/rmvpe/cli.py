"""rmvpe plugin: prep mir1k/pitch, train/infer/eval/export rmvpe. Thin: the logic lives in the task modules.

No torch/numpy imports at module level (``voxtool --help`` stays fast). No ``from __future__ import annotations``:
the option wrappers of voxtool.options resolve annotations in their own module, so they must be real objects.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import (
    MAX_BATCH,
    MAX_SEED,
    MAX_STEPS,
    Backend,
    FailFast,
    InferPrecision,
    Threads,
    TrainOptions,
    common_flags,
    train_command,
)
from voxtool.plugins import TaskPlugin

ORIGINAL = "Original training-script options (mapped onto the preset)"

# ------------------------------------------------------------------------------------------------- prep

def _run_prep(kind: str, root: Path, out: Path, test_list: Path | None, test_fraction: float, seed: int,
              label_hop_ms: float | None, json_out: bool) -> None:
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, log, print_table
    from voxtool.errors import BadInput
    from voxtool.fileio import check_output_dir
    from voxtool.inputs import check_dataset_out
    from voxtool.tasks.rmvpe import data

    check_dataset_out(out, [root, test_list])
    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise BadInput(out, "output folder exists and is not an rmvpe dataset; choose an empty folder")
    sources = data.mir1k_sources(root) if kind == "mir1k" else data.pitch_sources(root)
    names = None
    if test_list is not None:
        if not test_list.is_file():
            raise BadInput(test_list, "test list not found")
        names = {Path(line.strip()).stem for line in test_list.read_text().splitlines() if line.strip()}
        names |= {Path(line.strip()).name for line in test_list.read_text().splitlines() if line.strip()}
    data.split_sources(sources, names, test_fraction, seed)
    then = "run it again into an empty folder" if not (out / "dataset.json").is_file() else "run it again"
    with prep_progress(len(sources), f"prep {kind}", out=out, unit="items",
                       then=f"{out} is unfinished (no new dataset.json): {then}") as advance:
        report = data.write_dataset(sources, out, label_hop_ms / 1000 if label_hop_ms else None, kind, advance)
    if json_out:
        emit_json({"out": str(out), "items": report.written,
                   "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
                   "skipped": [{"input": p, "reason": r} for p, r in report.skipped]})
        return
    for path, reason in report.skipped:
        log(f"skipped {path}: {reason}")
    print_table(f"prep {kind} -> {out}", ["split", "items", "minutes"], report.rows())
    if report.skipped:
        print_table("skipped", ["reasons", "items"], _reason_counts(report.skipped))

def _reason_counts(skipped: list[tuple[str, str]]) -> list[list]:
    counts: dict[str, int] = {}
    for _, reason in skipped:
        key = reason.split("(")[0].strip()
        counts[key] = counts.get(key, 0) + 1
    return [[k, v] for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]

SplitList = Annotated[Path | None, typer.Option("--test-list", help="File of clip names for the test split.")]
SplitFraction = Annotated[float, typer.Option("--test-fraction", min=0.0, max=0.9,
                                              help="Seeded test fraction (grouped by singer) without --test-list.")]
Seed = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the split.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]

@common_flags
def prep_mir1k(
    root: Annotated[Path, typer.Argument(help="MIR-1K folder (Wavfile/, PitchLabel/).")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    test_list: SplitList = None,
    test_fraction: SplitFraction = 0.1,
    seed: Seed = 0,
    label_hop_ms: Annotated[float, typer.Option("--label-hop-ms", min=0.1, max=1000.0,
                                                help="Hop of the .pv labels.")] = 20.0,
    json_out: JsonOut = False,
) -> None:
    """MIR-1K -> prepared pitch dataset (voice and accompaniment kept apart, f0 in Hz at 10 ms)."""
    _run_prep("mir1k", root, out, test_list, test_fraction, seed, label_hop_ms, json_out)

@common_flags
def prep_pitch(
    root: Annotated[Path, typer.Argument(help="Folder of audio + labels ({train,test}/ or any tree).")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    test_list: SplitList = None,
    test_fraction: SplitFraction = 0.1,
    seed: Seed = 0,
    label_hop_ms: Annotated[float | None, typer.Option(
        "--label-hop-ms", min=0.1, max=1000.0, help="Hop of value-only labels (.pv/.f0/.npy); default: 10 or 20 ms from the audio length.")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Generic pitch data (Hybrid wav+pv, wav+csv time,f0, .f0, .npy) -> prepared pitch dataset."""
    _run_prep("pitch", root, out, test_list, test_fraction, seed, label_hop_ms, json_out)

# ------------------------------------------------------------------------------------------------- train

def original_overrides(
    hop_length: int | None, learning_rate: float | None, batch_size: int | None, validation_interval: int | None,
    clip_grad_norm: float | None, decay_steps: int | None, decay_rate: float | None, model_name: str | None,
    init: Path | None,
) -> list[str]:
    """The original train.py options as ``--set`` overrides of the preset."""
    out = []
    if hop_length is not None:
        out.append(f"mel.hop_length={hop_length}")
    if learning_rate is not None:
        out.append(f"train.lr={learning_rate}")
    if batch_size is not None:
        out.append(f"train.batch_size={batch_size}")
    if validation_interval is not None:
        out.append(f"train.valid_every={validation_interval}")
    if clip_grad_norm is not None:
        out.append(f"train.grad_clip={clip_grad_norm}")
    if decay_steps is not None:
        out += ["train.schedule=step", f"train.decay_steps={decay_steps}"]
    if decay_rate is not None:
        out += ["train.schedule=step", f"train.decay_rate={decay_rate}"]
    if model_name is not None:
        out.append(f'model.name="{model_name}"')
    if init is not None:
        out.append(f'model.init="{init.resolve().as_posix()}"')
    return out

def _opt(*names: str, help: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel=ORIGINAL, **kw)

@train_command
def train(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep mir1k/pitch).")],
    logdir: Annotated[Path | None, _opt("--logdir", help="Run folder (= --runs-dir PARENT --exp NAME).")] = None,
    hop_length: Annotated[int | None, _opt("--hop-length", help="Mel hop in samples (160).", min=1,
                                                                max=8192)] = None,
    learning_rate: Annotated[float | None, _opt("--learning-rate", help="Adam lr (5e-4).", min=0.0,
                                                                        max=10.0)] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", help="Crops per rank (32).", min=1,
                                                               max=MAX_BATCH)] = None,
    validation_interval: Annotated[int | None, _opt("--validation-interval", help="Steps between validations.",
                                                       min=1, max=MAX_STEPS)] = None,
    clip_grad_norm: Annotated[float | None, _opt("--clip-grad-norm", help="Max grad norm (3).", min=0.0,
                                                                        max=1e6)] = None,
    iterations: Annotated[int | None, _opt("--iterations", help="Alias of --steps.", min=1,
                                                              max=MAX_STEPS)] = None,
    decay_steps: Annotated[int | None, _opt("--learning-rate-decay-steps", help="StepLR period (2000).",
                                               min=1, max=MAX_STEPS)] = None,
    decay_rate: Annotated[float | None, _opt("--learning-rate-decay-rate", help="StepLR factor (0.98).",
                                                                       min=0.0, max=1.0)] = None,
    resume_iteration: Annotated[int | None, _opt("--resume-iteration",
                                                    help="Resume the run (from its last.pt, which restores "
                                                         "optimiser and schedule).", min=0,
                                                    max=MAX_STEPS)] = None,
    model_name: Annotated[str | None, _opt("--model-name", help="E2E0 (the only published model).")] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune from a checkpoint (rmvpe.pt, model.pt).")
                    ] = None,
    *,
    opts: TrainOptions,
) -> None:
    """Train RMVPE (E2E0) on a prepared pitch dataset."""
    from voxtool.console import log
    from voxtool.errors import BadInput
    from voxtool.tasks.rmvpe.train import RmvpeConfig, RmvpeTrainTask
    from voxtool.training.run import train_from_options

    if iterations is not None:
        if opts.steps is not None and opts.steps != iterations:
            raise BadInput(None, "--iterations is an alias of --steps; give one of them")
        opts.steps = iterations
    if logdir is not None:
        if opts.exp is not None:
            raise BadInput(None, "--logdir and --exp both name the run folder; give one of them")
        opts.runs_dir, opts.exp = logdir.parent, logdir.name
    if init is not None and not init.is_file():
        raise BadInput(init, "checkpoint for --init not found")
    if resume_iteration:
        opts.resume = True
        log(f"--resume-iteration {resume_iteration}: resuming from the run's last.pt "
            "(model, optimiser, schedule and step are restored)")
    overrides = original_overrides(hop_length, learning_rate, batch_size, validation_interval, clip_grad_norm,
                                   decay_steps, decay_rate, model_name, init)
    train_from_options(RmvpeTrainTask, RmvpeConfig, data, opts, default_preset="rmvpe", overrides=overrides)

# ------------------------------------------------------------------------------------------------- infer

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model.pt, run folder, rmvpe.pt/model.pt, or .onnx")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")]
Threshold = Annotated[float | None, typer.Option("--threshold", min=0.0, max=1.0,
                                                    help="Voicing threshold on the peak salience [the model's "
                                                         "calibrated one, else 0.03].")]

@common_flags
def infer(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, directories or globs.")],
    model: ModelOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (one input) or folder.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | npy | json")] = "csv",
    hop_ms: Annotated[float | None, typer.Option("--hop-ms", min=0.1, max=1000.0,
                                                    help="Resample the track to this hop (log-f0, voiced spans).")
                      ] = None,
    confidence: Annotated[bool, typer.Option("--confidence", help="Add the peak salience column.")] = False,
    threshold: Threshold = None,
    decoder: Annotated[str, typer.Option("--decoder", help="local (9-bin average around the argmax) | viterbi "
                                                            "(around a smooth path; torch models)")] = "local",
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, max=256,
                                                   help="Chunks per forward pass [model's preset, else 2].")] = None,
    chunk_frames: Annotated[int | None, typer.Option(
        "--chunk-frames", min=0, max=360_000, help="Frames per chunk (10 ms each); 0 = whole file [model's preset, else 2048].")
    ] = None,
    context_frames: Annotated[int | None, typer.Option(
        "--context-frames", min=0, max=10_000, help="Overlap frames on each side of a chunk [model's preset, else 256].")
    ] = None,
    device: Device = "auto",
    precision: InferPrecision = "auto",
    backend: Backend = "torch",
    threads: Threads = 0,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Vocal pitch (f0) of audio files: time,f0 at 10 ms (0 = unvoiced)."""
    from voxtool.console import emit_json, log, print_table, progress
    from voxtool.inputs import protected_paths
    from voxtool.outputs import plan_outputs
    from voxtool.tasks.rmvpe.infer import FORMATS, load_model, predict_from_files_to_files

    # the explicit --format (default csv) decides, as before; plan_outputs checks it and refuses bad outputs
    fmt, jobs = plan_outputs(inputs, out, FORMATS, fmt, skip_existing=skip_existing, protect=protected_paths(model))
    if not jobs:
        log("nothing to do (every output exists)")
        return
    from voxtool.inference_backends import set_threads

    set_threads(threads)
    pitch_model = load_model(model, device=device, precision=precision, backend=backend, threads=threads)
    log(f"model: {model} ({pitch_model.description})")
    with progress(len(jobs), "infer rmvpe") as advance:
        summary = predict_from_files_to_files(  # which also sets the process's mmap threshold (flat memory)
            jobs, pitch_model, fmt=fmt, hop_ms=hop_ms, with_confidence=confidence, advance=advance,
            threshold=threshold, chunk_frames=chunk_frames, context_frames=context_frames, batch_size=batch_size,
            decoder=decoder, fail_fast=fail_fast, out=out,
        )
    if json_out:
        emit_json(summary)
    elif summary.ok:
        print_table("infer rmvpe", ["output", "frames", "voiced", "median f0"],
                    [[s["output"], s["frames"], s["voiced"], s["median_f0"]] for s in summary.ok])
    summary.raise_if_failed()

# ------------------------------------------------------------------------------------------------- eval

@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset.")],
    model: ModelOpt,
    split: Annotated[str, typer.Option("--split", help="Split list to score (valid | train).")] = "valid",
    per_file: Annotated[bool, typer.Option("--per-file", help="Also print every file's scores.")] = False,
    threshold: Threshold = None,
    device: Device = "auto",
    json_out: JsonOut = False,
) -> None:
    """RPA, RCA, OA, VR, VFA (mir_eval, 50 cents) of a model on a prepared dataset, and OA, VR, VFA at the
    published default threshold (0.03), at the model's calibrated one and at the best one for this split."""
    from voxtool.console import emit_json, print_table
    from voxtool.tasks.rmvpe.infer import load_model, score_split
    from voxtool.tasks.rmvpe.metrics import METRICS, mean_metrics

    pitch_model = load_model(model, device=device)
    sweep = score_split(pitch_model, data, split)  # one pass; every threshold is scored from it
    used = pitch_model.threshold if threshold is None else threshold
    rows = sweep.rows(used)
    means = mean_metrics(rows)
    voicing = _voicing_rows(sweep, pitch_model)
    if json_out:
        emit_json({"files": len(rows), **means, "threshold": used, "voicing": voicing,
                   **({"per_file": rows} if per_file else {})})
        return
    if per_file:
        print_table("per file", ["file", *[m.upper() for m in METRICS]],
                    [[r["name"], *[round(r[m], 4) for m in METRICS]] for r in rows])
    print_table(f"eval rmvpe ({len(rows)} files, {split}, threshold {used:g})", [m.upper() for m in METRICS],
                [[round(means[m], 4) for m in METRICS]])
    print_table("voicing threshold", ["threshold", "source", "OA", "VR", "VFA"],
                [[v["threshold"], v["source"], *[round(v[k], 4) for k in ("oa", "vr", "vfa")]] for v in voicing])

def _voicing_rows(sweep, pitch_model) -> list[dict]:
    """OA/VR/VFA at the published default, at the model's calibrated threshold (when it has one) and at the
    best threshold for the scored split itself (an upper bound: chosen on the data it is scored on)."""
    from voxtool.pitch.decode import DEFAULT_THRESHOLD

    rows = [(DEFAULT_THRESHOLD, "default (published)")]
    calibrated = getattr(pitch_model, "calibrated_threshold", None)
    if calibrated is not None:
        rows.append((calibrated, "calibrated (validation)"))
    best, _ = sweep.best()
    rows.append((best, "best on this split"))
    out = []
    for thr, source in rows:
        m = sweep.means(thr)
        out.append({"threshold": thr, "source": source, **{k: m[k] for k in ("oa", "vr", "vfa")}})
    return out

# ------------------------------------------------------------------------------------------------- export

@common_flags
def export(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .onnx file.")],
    opset: Annotated[int, typer.Option("--opset", min=13, max=20, help="ONNX opset (13-20).")] = 17,
    threshold: Threshold = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare onnxruntime with torch.")] = True,
) -> None:
    """ONNX graph: waveform [B, N] (16 kHz) + threshold -> f0, confidence, voiced [B, frames] (STFT inside)."""
    from voxtool.console import log
    from voxtool.inputs import check_outputs, protected_paths
    from voxtool.tasks.rmvpe.export import export_onnx, parity_check
    from voxtool.tasks.rmvpe.infer import load_model

    check_outputs([out], protect=protected_paths(model))
    pitch_model = load_model(model, device="cpu")
    if not hasattr(pitch_model, "net"):
        from voxtool.errors import BadInput

        raise BadInput(model, "already an ONNX graph")
    export_onnx(pitch_model, out, opset=opset, threshold=threshold)
    log(f"wrote {out}")
    if check:
        worst = parity_check(pitch_model, out)
        log(f"onnxruntime vs torch: max {worst['max_cents']:.3f} cents on voiced frames, "
            f"voicing agreement {worst['voicing_agreement']:.4f}")

plugin = TaskPlugin(
    name="rmvpe",
    summary="RMVPE vocal pitch: published checkpoints, MIR-1K training, chunked inference, ONNX",
    commands={
        "prep": {"mir1k": prep_mir1k, "pitch": prep_pitch},
        "train": {"rmvpe": train},
        "infer": {"rmvpe": infer},
        "eval": {"rmvpe": evaluate},
        "export": {"rmvpe": export},
    },
    config="voxtool.tasks.rmvpe.config:RmvpeConfig",
)
