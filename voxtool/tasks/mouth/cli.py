"""`mouth` task commands: prep lipsync, prep unlabeled, train mouth, ssl mouth, infer mouth, eval mouth, export
mouth, and the `voxtool demo` of the plugin (demo.py).

Thin wrappers: the work is in data.py, unlabeled.py, train.py, ssl.py, infer.py and export.py. No heavy imports
at module level.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import (
    MAX_WORKERS,
    Backend,
    FailFast,
    InferPrecision,
    Threads,
    TrainOptions,
    common_flags,
    train_command,
)
from voxtool.plugins import TaskPlugin
from voxtool.tasks.mouth.config import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_FRAMES, DEFAULT_CONTEXT_FRAMES

DEFAULT_CHUNK_SECONDS = DEFAULT_CHUNK_FRAMES / 50  # the published models' 50 fps
DEFAULT_CONTEXT_SECONDS = DEFAULT_CONTEXT_FRAMES / 50


@common_flags
def prep_lipsync(
    src: Annotated[Path, typer.Argument(help="Folder of LipsSync takes (<speaker>/<take>/ or <take>/).")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    target: Annotated[
        str, typer.Option(help="jaw-minus-close | jaw | close | jaw-times-open | lips-distance")
    ] = "jaw-minus-close",
    unseen: Annotated[
        Path | None, typer.Option(help="List of audio paths (relative to SRC) of unseen singers.")
    ] = None,
    valid: Annotated[Path | None, typer.Option(help="Validation list (default: SRC/valid.txt if present).")] = None,
    speaker_map: Annotated[
        Path | None, typer.Option(help="JSON {take folder or wav (relative to SRC): singer} (default: the folder).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Takes processed in parallel.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Rebuild takes already prepared.")] = False,
    strict: Annotated[bool, typer.Option(help="A bad take is an error instead of being skipped.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """LipsSync takes (audio.wav + mouth_data.csv) -> a prepared mouth dataset."""
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, log, print_table
    from voxtool.inputs import check_dataset_out
    from voxtool.tasks.mouth.data import find_takes, prepare_lipsync

    check_dataset_out(out, [src, unseen, valid, speaker_map])
    total = len(find_takes(src)[0]) if src.is_dir() else None  # a quick scan, so the bar knows its length
    with prep_progress(total, "prep lipsync", out=out, unit="takes",
                       then="run the same command again to finish (prepared takes are reused)") as advance:
        summary = prepare_lipsync(
            src, out, target=target, unseen_list=unseen, valid_list=valid, speaker_map=speaker_map, workers=workers,
            overwrite=overwrite, strict=strict, log=log, advance=advance,
        )  # fmt: skip
    if json_out:
        emit_json({
            "out": str(summary.out), "takes": summary.takes, "hours": summary.seconds / 3600,
            "speakers": summary.speakers, "frames": summary.frames, "splits": summary.splits,
            "reused": summary.reused, "layout": summary.layout,
            "skipped": [{"path": p, "reason": r} for p, r in summary.skipped],
        })  # fmt: skip
        return
    rows = [
        ["takes", summary.takes], ["hours", round(summary.seconds / 3600, 4)], ["speakers", summary.speakers],
        ["frames", summary.frames], *[[f"{k} takes", v] for k, v in summary.splits.items()],
        ["already prepared (reused)", summary.reused], ["skipped", len(summary.skipped)],
    ]  # fmt: skip
    print_table(f"prep lipsync -> {summary.out}", ["", "value"], rows)
    if summary.skipped:
        print_table("skipped takes", ["path", "reason"], [[p, r] for p, r in summary.skipped])


@train_command
def train(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (from `voxtool prep lipsync`).")],
    variant: Annotated[str | None, typer.Option(help="Loss: huber (default) | mse | r-drop.")] = None,
    *,
    opts: TrainOptions,
) -> None:
    """Train the mouth-opening model (R^3-MOE BiLSTM) on a prepared dataset."""
    from voxtool.errors import BadInput
    from voxtool.tasks.mouth.config import VARIANTS, MouthConfig
    from voxtool.tasks.mouth.train import MouthTrainTask
    from voxtool.training.run import train_from_options

    overrides = []
    if variant is not None:
        if variant not in VARIANTS:
            raise BadInput(None, f"--variant {variant!r}: choose from {', '.join(VARIANTS)}")
        overrides.append(f'loss.variant="{variant}"')
    train_from_options(MouthTrainTask, MouthConfig, data, opts, default_preset="mouth", overrides=overrides)


@common_flags
def infer(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders (mirrored) or globs.")],
    model: Annotated[str, typer.Option("--model", "-m", help="model.pt, a run folder, an .onnx, or R^3-MOE's "
                                                              "ema_model_N.pt (config.yaml beside it).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (one input) or folder.")] = None,
    fps: Annotated[float | None, typer.Option(min=1.0, max=1000.0,
                                              help="Output frame rate (default: the model's 50).")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv | npy | json | arkit | lipssync (default: from --out, else "
                                                  "csv).")
    ] = None,
    speaker: Annotated[
        str | None, typer.Option(help="A training singer whose learned gain to apply (models with speaker_gain).")
    ] = None,
    average_gain: Annotated[
        bool, typer.Option("--average-gain", help="Apply the training singers' mean gain (models with speaker_gain).")
    ] = False,
    smooth: Annotated[float, typer.Option(min=0.0, max=10.0,
                                          help="Half-sine smoothing width in seconds (0 = off).")] = 0.0,
    clip: Annotated[bool, typer.Option("--clip", help="Clip the curve to [0, 1].")] = False,
    plot: Annotated[Path | None, typer.Option(help="PNG of mel + curve (a folder with several inputs).")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")] = "cpu",
    chunk_seconds: Annotated[float, typer.Option(min=2.0, max=3600.0,
                                                 help="Audio kept per window (memory bound).")] = DEFAULT_CHUNK_SECONDS,
    context_seconds: Annotated[float, typer.Option(min=0.0, max=60.0,
                                                   help="Audio of context on each side of a window.")
                               ] = DEFAULT_CONTEXT_SECONDS,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=256, help="Windows per forward pass.")
                          ] = DEFAULT_BATCH_SIZE,
    precision: InferPrecision = "auto",
    backend: Backend = "torch",
    threads: Threads = 0,
    skip_existing: Annotated[bool, typer.Option(help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Audio -> mouth-opening curve (time,mouth_opening) with a trained model."""
    from voxtool.console import emit_json, log, progress
    from voxtool.errors import BadInput
    from voxtool.inputs import protected_paths
    from voxtool.outputs import plan_outputs
    from voxtool.tasks.mouth.infer import FORMATS, MouthModel, load_model, plot_paths, predict_from_files_to_files

    model_files = protected_paths(model)
    fmt, jobs = plan_outputs(inputs, out, FORMATS, fmt, skip_existing=skip_existing, protect=model_files)
    plots = plot_paths(plot, jobs, out, model_files) if plot is not None else {}
    if not jobs:
        log("nothing to do (every output exists)")
        if json_out:
            emit_json([])
        return
    from voxtool.inference_backends import set_threads

    set_threads(threads)
    mouth_model = load_model(model, device, precision, backend, threads)  # once for the batch
    if speaker is not None or average_gain:
        if speaker is not None and average_gain:
            raise BadInput(None, "--speaker and --average-gain exclude each other")
        if not isinstance(mouth_model, MouthModel):
            raise BadInput(model, "--speaker/--average-gain need a .pt model: ONNX graphs carry no per-singer gains")
        if speaker is not None:
            mouth_model.use_speaker(speaker)
        else:
            mouth_model.use_average_gain()
    with progress(len(jobs), "infer mouth") as advance:
        results = predict_from_files_to_files(
            jobs, mouth_model, fmt, fps=fps, smooth=smooth, clip=clip, plots=plots,
            chunk_frames=max(100, int(chunk_seconds * mouth_model.fps)),
            context_frames=int(round(context_seconds * mouth_model.fps)), batch_size=batch_size,
            advance=advance, fail_fast=fail_fast, out=out,
        )  # fmt: skip
    if json_out:
        emit_json(results)
    else:
        for r in results.ok:
            log(f"{r['input']} -> {r['output']} ({r['frames']} frames at {r['fps']:g} fps)")
    results.raise_if_failed()


@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset.")],
    model: Annotated[str, typer.Option("--model", "-m", help="model.pt or a run folder.")],
    split: Annotated[str, typer.Option(help="valid | unseen | train")] = "valid",
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N]|...")] = "cpu",
    json_out: Annotated[bool, typer.Option("--json", help="Metrics as JSON on stdout.")] = False,
) -> None:
    """Metrics (MSE, MAE, R2, Pearson r) of a model on a dataset split."""
    from voxtool.console import emit_json, print_table, progress
    from voxtool.tasks.mouth.evaluate import evaluate_dataset

    with progress(None, "eval mouth") as advance:
        result = evaluate_dataset(model, data, split, device=device, advance=advance)
    metrics = {**result.metrics, "files": len(result.items), "frames": sum(r["frames"] for r in result.items)}
    if json_out:
        emit_json({"split": split, **metrics})
    else:
        print_table(f"mouth eval ({split})", ["metric", "value"], [[k, v] for k, v in metrics.items()])


@common_flags
def prep_unlabeled(
    src: Annotated[Path, typer.Argument(help="Folder of vocal recordings (any format libsndfile reads).")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    like: Annotated[Path | None, typer.Option(help="Labeled dataset whose mel settings to copy (recommended).")] = None,
    min_frames: Annotated[int, typer.Option(min=1, max=100_000,
                                            help="Shortest usable file, in frames (one training crop).")] = 128,
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Files processed in parallel.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Rebuild files already prepared.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Unlabeled vocals -> log-mel dataset for `voxtool ssl mouth`."""
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, print_table
    from voxtool.inputs import check_dataset_out
    from voxtool.tasks.mouth.unlabeled import find_audio, prepare_unlabeled

    check_dataset_out(out, [src, like])
    total = len(find_audio(src)) if src.is_dir() else None
    with prep_progress(total, "prep unlabeled", out=out, unit="files",
                       then="run the same command again to finish (prepared files are reused)") as advance:
        summary = prepare_unlabeled(src, out, like=like, min_frames=min_frames, workers=workers,
                                    overwrite=overwrite, advance=advance)  # fmt: skip
    if json_out:
        emit_json({"out": str(summary.out), "files": summary.files, "hours": summary.seconds / 3600,
                   "frames": summary.frames, "reused": summary.reused,
                   "skipped": [{"path": p, "reason": r} for p, r in summary.skipped]})  # fmt: skip
        return
    rows = [["files", summary.files], ["hours", round(summary.seconds / 3600, 4)], ["frames", summary.frames],
            ["already prepared (reused)", summary.reused], ["skipped", len(summary.skipped)]]  # fmt: skip
    print_table(f"prep unlabeled -> {summary.out}", ["", "value"], rows)
    if summary.skipped:
        print_table("skipped files", ["path", "reason"], [[p, r] for p, r in summary.skipped])


@train_command
def ssl(
    data: Annotated[Path, typer.Argument(help="Prepared labeled dataset (from `voxtool prep lipsync`).")],
    unlabeled: Annotated[
        Path | None, typer.Option(help="Prepared unlabeled dataset (from `voxtool prep unlabeled`).")
    ] = None,
    *,
    opts: TrainOptions,
) -> None:
    """Semi-supervised training (Mean Teacher + R-Drop) on labeled takes and unlabeled vocals."""
    from voxtool.errors import BadInput
    from voxtool.tasks.mouth.config import MouthSSLConfig
    from voxtool.tasks.mouth.ssl import MouthSSLTask, unlabeled_override
    from voxtool.training.run import train_from_options

    overrides = []
    if unlabeled is not None:
        if not unlabeled.is_dir():
            raise BadInput(unlabeled, "unlabeled dataset folder not found")
        overrides.append(unlabeled_override(unlabeled))
    elif not opts.resume:
        raise BadInput(None, "--unlabeled is required (a folder from `voxtool prep unlabeled`)")
    train_from_options(MouthSSLTask, MouthSSLConfig, data, opts, default_preset="mouth-ssl", overrides=overrides)


@common_flags
def export(
    model: Annotated[str, typer.Option("--model", "-m", help="model.pt, a run folder or R^3-MOE's ema_model_N.pt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .onnx file.")],
    sample_rate: Annotated[
        int | None, typer.Option(min=8000, max=192_000,
                                 help="Input rate baked into the graph (default 16000; 44100 with --like-original).")
    ] = None,
    like_original: Annotated[
        bool, typer.Option("--like-original", help="R^3-MOE export_onnx.py's graph: 44.1 kHz, its resampler and "
                                                   "axis names.")
    ] = False,
    check: Annotated[bool, typer.Option(help="Compare onnxruntime with torch on a test signal.")] = True,
) -> None:
    """Export a mouth model to ONNX: waveform (B, N) float32 -> curve (B, T)."""
    from voxtool.console import log
    from voxtool.inputs import check_outputs, protected_paths
    from voxtool.tasks.mouth.export import export_onnx, verify_onnx

    check_outputs([out], protect=protected_paths(model))
    export_onnx(model, out, sample_rate, like_original)
    msg = f"wrote {out}"
    if check:
        diff = verify_onnx(model, out)
        msg += f" (onnxruntime vs torch: max abs difference {diff:.2e})"
    log(msg)


plugin = TaskPlugin(
    name="mouth",
    summary="R^3-MOE mouth-opening curves from singing (LipsSync data, BiLSTM regression)",
    commands={
        "prep": {"lipsync": prep_lipsync, "unlabeled": prep_unlabeled},
        "train": {"mouth": train},
        "ssl": {"mouth": ssl},
        "infer": {"mouth": infer},
        "eval": {"mouth": evaluate},
        "export": {"mouth": export},
    },
    config="voxtool.tasks.mouth.config:MouthSSLConfig",  # a superset: shows the supervised and the ssl presets
    demo="voxtool.tasks.mouth.demo:main",
)
