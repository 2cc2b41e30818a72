"""Mouth-opening curves from audio (`voxtool infer mouth`, `voxtool eval mouth`).

Layers: `load_model(path)` -> `predict(audio, sr, model)` -> `predict_from_file(path, model)` ->
`predict_from_files_to_files(jobs, model)` (many inputs to many outputs, one model load). Predictions are at the
model's frame rate (50 fps); `curve_on_grid` resamples, smooths and clips them. `load_model` accepts a `model.pt`,
a run folder or an exported `.onnx` (`export.OnnxMouthModel`), and every layer takes either.
`evaluate.evaluate_dataset(model, data, split)` scores a prepared dataset split (`voxtool.evaluation.EvalResult`).

Mels are (n_mels, T) throughout. Long audio is processed in chunks so memory stays flat with duration:
0. `predict_from_file` reads the file in blocks, resampled block by block (`voxtool.audio.io.iter_audio_blocks`),
   and reads it twice when it is longer than one chunk (for 2. and 3.), instead of holding the whole waveform;
1. the log-mel is computed chunk by chunk from the padded waveform (`voxtool.audio.framing`: identical to the
   whole-file front-end);
2. GroupNorm statistics of the first conv layer are gathered over the whole file in a first pass, so the
   convolutional front is exactly the whole-file one;
3. the BiLSTM runs on equal windows, cores of `chunk_frames` with `context_frames` of extra log-mel on both sides,
   `batch_size` windows per forward pass (`runtime.predict_mel_chunks`), and only each core is kept, so seams see
   the same past and future context as whole-file inference would, up to the LSTM's (short) memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxtool.audio.mel_config import MelConfig
from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import ModelSection
from voxtool.tasks.mouth.formats import FORMATS, write_curve  # noqa: F401  (write_curve: re-exported)
from voxtool.tasks.mouth.model import BiLSTMCurveEstimator, migrate_state_dict
from voxtool.tasks.mouth.runtime import (  # noqa: F401  (MouthModel, predict_mel: re-exported)
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_CONTEXT_FRAMES,
    MouthModel,
    predict_mel,
    predict_mel_chunks,
)

if TYPE_CHECKING:
    from voxtool.tasks.mouth.export import OnnxMouthModel

def load_model(
    path: str | Path, device: str = "cpu", precision: str = "32", backend: str = "torch", threads: int = 0
) -> MouthModel | OnnxMouthModel:
    """A `model.pt` or run folder -> MouthModel on `device` (auto|cpu|cuda...); R^3-MOE's own bare state dict
    (with its `config.yaml` beside it, `original.load_original`) too; an `.onnx` (exported by voxtool, or the
    original's `waveform` -> `curve` graph) -> `export.OnnxMouthModel` (onnxruntime on the CPU).

    `precision` 32 | bf16 | 16 | auto (bf16 on a CPU with native bf16); `backend` torch | onnx (the network
    exported in memory, run by onnxruntime with `threads` intra-op threads); see `runtime.MouthModel`."""
    from voxtool.devices import resolve_device
    from voxtool.training.modelfile import load_model_file, load_weights

    runtime = {"precision": precision, "backend": backend, "threads": threads}
    if str(path).lower().endswith(".onnx"):
        from voxtool.tasks.mouth.export import OnnxMouthModel

        return OnnxMouthModel(Path(path))
    try:
        mf = load_model_file(path, task="mouth")
    except BadInput as e:
        if not e.problem.startswith("not a voxtool model file"):
            raise
        from voxtool.fileio import load_torch
        from voxtool.tasks.mouth.original import load_original, unwrap_state_dict

        where = e.where
        state = unwrap_state_dict(load_torch(where))
        if state is None:
            raise BadInput(e.where, "neither a voxtool model file nor an R^3-MOE state dict (with config.yaml "
                                    "beside it)") from None  # fmt: skip
        return _with_path(where, lambda: load_original(Path(where), state, device, **runtime))
    try:
        model_cfg = ModelSection.model_validate(mf.config.get("model", {}))
        mel_cfg = MelConfig.model_validate(mf.meta["mel"])
        vmin, vmax = (float(v) for v in mf.meta["value_range"])
        model = BiLSTMCurveEstimator(model_cfg, vmin, vmax)
    except Exception as e:  # pydantic.ValidationError, KeyError, a garbled value_range, impossible sizes
        raise BadInput(mf.path, f"model file lacks valid mouth settings ({first_line(e)})") from None
    dev = resolve_device(device).torch
    state = migrate_state_dict({k.removeprefix("module."): v for k, v in mf.state_dict.items()})
    # gains of a model trained without model.speaker_gain (an imported original's) are not part of it
    load_weights(model, state, mf.path, ignore_unexpected=() if model.k_filter is not None else ("k_filter",))
    model.to(dev).eval()
    return _with_path(mf.path, lambda: MouthModel(model, mel_cfg, dev, dict(mf.meta), **runtime))


def _with_path(path, make):
    """`make()`, its BadInput naming `path` when it names no file itself."""
    try:
        return make()
    except BadInput as e:
        raise BadInput(path if e.where is None else e.where, e.problem) from None


def first_line(e: BaseException) -> str:
    """`Type: first line of the message` (short), for one-line error reports."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:120]}" if text else type(e).__name__


@dataclass
class Prediction:
    """Native-rate output: frame_times (T,) s (true frame centres), curve (T,), mel (n_mels, T) (None from
    `predict_from_file` unless asked for), duration s."""

    frame_times: np.ndarray
    curve: np.ndarray
    mel: np.ndarray | None
    duration: float


def predict(
    audio: np.ndarray,
    sr: int,
    model: MouthModel | OnnxMouthModel,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Prediction:
    """Mono audio (N,) (or (N, channels), averaged) at `sr` -> curve and log-mel at the model's frame rate."""
    from voxtool.audio.framing import log_mel
    from voxtool.audio.io import resample

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if not isinstance(model, MouthModel):  # an ONNX graph: the whole file at the graph's rate
        from voxtool.tasks.mouth.export import predict_onnx

        return predict_onnx(resample(audio, sr, model.sample_rate), model, keep_mel=True)
    target_sr = model.mel_cfg.sample_rate
    audio = resample(audio, sr, target_sr)
    mel = log_mel(audio, model.mel_cfg, chunk_frames)
    curve = predict_mel(model, mel, chunk_frames, context_frames, batch_size)
    return Prediction(model.mel_cfg.frame_times(len(curve)), curve, mel, len(audio) / target_sr)


def predict_from_file(
    path: str | Path,
    model: MouthModel | OnnxMouthModel,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    keep_mel: bool = False,
    block_seconds: float = 10.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Prediction:
    """An audio file -> curve at the model's frame rate, equal to `predict(load_audio(path), ...)` but reading the
    file in blocks (resampled block by block), so memory does not grow with its duration. A file longer than one
    chunk is read twice (see `predict_mel_chunks`). `keep_mel` also returns the whole log-mel (for --plot).
    An ONNX model reads the whole file (its graph is not chunked)."""
    from voxtool.audio.framing import iter_log_mel_chunks
    from voxtool.audio.io import iter_audio_blocks, load_audio

    try:
        if not isinstance(model, MouthModel):
            from voxtool.tasks.mouth.export import predict_onnx

            return predict_onnx(load_audio(path, sr=model.sample_rate), model, keep_mel=keep_mel)
        sr = model.mel_cfg.sample_rate
        info: dict[str, int] = {}

        def chunks():
            return iter_log_mel_chunks(iter_audio_blocks(path, sr, block_seconds), model.mel_cfg, chunk_frames, info)

        curve, mel = predict_mel_chunks(model, chunks, chunk_frames, context_frames, keep_mel, batch_size)
    except BadInput as e:
        raise BadInput(path if e.where is None else e.where, e.problem) from None
    return Prediction(model.mel_cfg.frame_times(len(curve)), curve, mel, info["samples"] / sr)


def smooth_half_sine(values: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """Convolve with a normalised half-sine window `seconds` wide, edges replicated (the original's baker UI)."""
    k = int(round(seconds * fps))
    if k < 2:
        return values
    kernel = np.sin(np.pi * (np.arange(k) + 0.5) / k)
    kernel /= kernel.sum()
    left, right = k // 2, k - 1 - k // 2
    padded = np.concatenate([np.full(left, values[0]), values, np.full(right, values[-1])])
    return np.convolve(padded, kernel, mode="valid").astype(np.float32)


def curve_on_grid(
    p: Prediction, fps: float | None = None, smooth: float = 0.0, clip: bool = False, native_fps: float = 50.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample a prediction onto t_j = j / fps for j = 0..floor(duration * fps) -> (times, values, fps)."""
    fps = float(fps or native_fps)
    values = smooth_half_sine(p.curve, native_fps, smooth) if smooth > 0 else p.curve
    n = int(np.floor(p.duration * fps + 1e-9)) + 1
    times = np.arange(n) / fps
    out = np.interp(times, p.frame_times, values).astype(np.float32)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return times, out, fps


# --------------------------------------------------------------------------------------------- outputs


def plot_curve(
    path: Path,
    p: Prediction,
    times: np.ndarray,
    values: np.ndarray,
    title: str = "",
    overlays: dict[str, np.ndarray] | None = None,
) -> None:
    """PNG: the log-mel spectrogram above the curve, sharing the time axis; `overlays` are extra curves on `times`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from voxtool.fileio import atomic_path

    fig, (ax_mel, ax_curve) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[3, 2])
    extent = (float(p.frame_times[0]), float(p.frame_times[-1]), 0, p.mel.shape[0])
    ax_mel.imshow(p.mel, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax_mel.set_ylabel("mel bin")
    ax_mel.set_title(title)
    for (label, extra), color in zip((overlays or {}).items(), ("black", "tab:orange", "tab:green")):
        ax_curve.plot(times, extra, color=color, lw=1.0, alpha=0.8, label=label)
    ax_curve.plot(times, values, color="tab:blue", lw=1.2, label="mouth opening (model)")
    if overlays:
        ax_curve.legend(loc="upper right", fontsize=8)
    ax_curve.set_xlabel("time (s)")
    ax_curve.set_ylabel("opening")
    ax_curve.set_xlim(0, p.duration)
    ax_curve.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_paths(plot: Path, jobs: list, out: Path | None, protect: Iterable[Path] = ()) -> dict[Path, Path]:
    """`--plot` -> {input: PNG path}: with one input a `.png` file, else a folder mirroring the outputs' layout;
    checked against the inputs, outputs and `protect` before any work."""
    from voxtool.inputs import check_outputs

    one_png = len(jobs) == 1 and plot.suffix.lower() == ".png"
    if not one_png and plot.exists() and not plot.is_dir():
        raise BadInput(plot, "--plot must be a folder (or, with one input, a .png file)")
    plots = {}
    for job in jobs:
        if one_png:
            plots[job.src] = plot
        elif out is not None and out in job.dst.parents:
            plots[job.src] = plot / job.dst.relative_to(out).with_suffix(".png")
        else:
            plots[job.src] = plot / f"{job.dst.stem}.png"
    check_outputs(list(plots.values()), [j.src for j in jobs] + [j.dst for j in jobs], list(protect), option="--plot")
    return plots


def predict_from_files_to_files(
    jobs: list,
    model: MouthModel | OnnxMouthModel,
    fmt: str = "csv",
    *,
    fps: float | None = None,
    smooth: float = 0.0,
    clip: bool = False,
    plots: dict[Path, Path] | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    advance: Callable[..., None] | None = None,
    fail_fast: bool = True,
    out: Path | None = None,
):
    """Every `Job(src audio, dst curve)` (from `voxtool.outputs.plan_outputs`) with one loaded model: the curve
    on the `fps` grid (default the model's), smoothed and clipped as asked, written as `fmt` (`formats`: csv, npy,
    json, arkit, lipssync), and a PNG where
    `plots` (from `plot_paths`) names one. Returns `voxtool.batch.BatchResults`: `fail_fast=False` goes on past a
    failing input (reported on stderr, an entry with "error"); `out` only names the destination when the batch is
    interrupted."""
    from voxtool.batch import run_jobs

    if fps is not None and fps <= 0:
        raise BadInput(None, "--fps must be positive")
    if smooth < 0:
        raise BadInput(None, "--smooth must be >= 0 seconds")
    fmt = FORMATS.check(fmt)
    plots = plots or {}

    from voxtool.tasks.mouth.formats import NEEDS_MEL, brightness_on_grid, spectral_centroid

    target = model.meta.get("target") if isinstance(model, MouthModel) else model.target

    def work(job) -> dict[str, Any]:
        plotted = plots.get(job.src)
        p = predict_from_file(job.src, model, chunk_frames, context_frames, keep_mel=plotted is not None or fmt in NEEDS_MEL,
                              batch_size=batch_size)
        times, values, out_fps = curve_on_grid(p, fps, smooth, clip, model.fps)
        bright = None
        if fmt in NEEDS_MEL:
            bright = brightness_on_grid(spectral_centroid(p.mel, model.mel_cfg), p.frame_times, model.fps, times)
        write_curve(job.dst, times, values, out_fps, fmt, brightness=bright, target=target)
        if plotted is not None:
            plot_curve(plotted, p, times, values, title=job.src.name)
        return {
            "input": str(job.src),
            "output": str(job.dst),
            "frames": len(values),
            "fps": out_fps,
            "seconds": round(p.duration, 4),
            "plot": None if plotted is None else str(plotted),
        }

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)
