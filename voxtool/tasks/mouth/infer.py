"""Mouth-opening curves from audio (`voxtool infer mouth`, `voxtool eval mouth`).

Layers: `load_predictor(path)` -> `predict(audio, sr, predictor)` / `predict_file(path, predictor)` (native
50 fps frames) -> `curve_on_grid` (resampled, smoothed, clipped) -> `infer_files` (many inputs to many outputs,
one model load).

Long audio is processed in chunks so memory stays flat with duration:
0. `predict_file` reads the file in blocks, resampled block by block (`voxtool.audio.io.iter_audio_blocks`), and
   reads it twice when it is longer than one chunk (for 2. and 3.), instead of holding the whole waveform;
1. the log-mel is computed chunk by chunk from the padded waveform (identical to the whole-file front-end);
2. GroupNorm statistics of the first conv layer are gathered over the whole file in a first pass, so the
   convolutional front is exactly the whole-file one;
3. the BiLSTM runs on chunks of `chunk_frames` with `context_frames` of extra audio on both sides, and only each
   chunk's core is kept, so seams see the same past and future context as whole-file inference would, up to the
   LSTM's (short) memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.mouth.model import BiLSTMCurveEstimator, MouthModelConfig

DEFAULT_CHUNK_FRAMES = 3000  # 60 s
DEFAULT_CONTEXT_FRAMES = 250  # 5 s either side
FORMATS = ("csv", "npy", "json")


@dataclass
class MouthPredictor:
    """A loaded model with the feature settings it was trained on."""

    model: BiLSTMCurveEstimator
    mel_cfg: Any  # voxtool.audio.mel.MelConfig
    device: torch.device
    meta: dict[str, Any]

    @property
    def fps(self) -> float:
        return self.mel_cfg.sample_rate / self.mel_cfg.hop_length


def load_predictor(path: str | Path, device: str = "cpu") -> MouthPredictor:
    """A `model.pt` or run folder -> MouthPredictor on `device` (auto|cpu|cuda...)."""
    from voxtool.audio.mel import MelConfig
    from voxtool.devices import resolve_device
    from voxtool.training.modelfile import load_model_file, load_weights

    mf = load_model_file(path, task="mouth")
    try:
        model_cfg = MouthModelConfig.model_validate(mf.config.get("model", {}))
        mel_cfg = MelConfig.model_validate(mf.meta["mel"])
        vmin, vmax = (float(v) for v in mf.meta["value_range"])
        model = BiLSTMCurveEstimator(model_cfg, vmin, vmax)
    except Exception as e:  # pydantic.ValidationError, KeyError, a garbled value_range, impossible sizes
        raise BadInput(mf.path, f"model file lacks valid mouth settings ({first_line(e)})") from None
    dev = resolve_device(device).torch
    state = {k.removeprefix("module."): v for k, v in mf.state_dict.items()}
    load_weights(model, state, mf.path, ignore_unexpected=("k_filter",))  # the original's speaker gains are unused
    model.to(dev).eval()
    return MouthPredictor(model, mel_cfg, dev, dict(mf.meta))


def first_line(e: BaseException) -> str:
    """`Type: first line of the message` (short), for one-line error reports."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:120]}" if text else type(e).__name__


# --------------------------------------------------------------------------------------------- features


def _frame_config(mel_cfg):
    """The same front-end reading pre-padded frames (no padding of its own), for chunked computation."""
    return mel_cfg.model_copy(update={"center": False, "pad": 0})


def compute_mel(audio: np.ndarray, mel_cfg, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
    """(N,) float32 at mel_cfg.sample_rate -> (T, n_mels) float32, chunk by chunk, equal to LogMel(whole)."""
    from voxtool.audio.mel import LogMel

    n_fft, hop = mel_cfg.n_fft, mel_cfg.hop_length
    need = _pad_width(mel_cfg) + 1
    if len(audio) < need:
        raise BadInput(None, f"audio too short ({len(audio)} samples; at least {need} needed)")
    padded = _pad_edges(audio, mel_cfg)
    n_frames = mel_cfg.n_frames(len(audio))
    front = LogMel(_frame_config(mel_cfg))
    out = np.empty((n_frames, mel_cfg.n_mels), dtype=np.float32)
    with torch.no_grad():
        for a in range(0, n_frames, chunk_frames):
            b = min(n_frames, a + chunk_frames)
            seg = torch.from_numpy(padded[a * hop : (b - 1) * hop + n_fft])
            out[a:b] = front(seg).T.numpy()
    return out


def _pad_width(mel_cfg) -> int:
    """Samples the front-end pads on each side: `pad`, plus n_fft/2 when centred."""
    return mel_cfg.pad + (mel_cfg.n_fft // 2 if mel_cfg.center else 0)


def _pad_edges(audio: np.ndarray, mel_cfg) -> np.ndarray:
    """The front-end's padding of a whole signal: reflect by `pad`, then n_fft/2 more when centred."""
    padded = np.asarray(audio, dtype=np.float32)
    if mel_cfg.pad:
        padded = np.pad(padded, mel_cfg.pad, mode="reflect")
    if mel_cfg.center:
        half = mel_cfg.n_fft // 2
        padded = np.pad(padded, half, mode="reflect" if mel_cfg.pad_mode == "reflect" else "constant")
    return padded


def iter_mel_chunks(
    blocks: Iterable[np.ndarray], mel_cfg, chunk_frames: int = DEFAULT_CHUNK_FRAMES, info: dict | None = None
) -> Iterator[np.ndarray]:
    """Mono float32 audio blocks at mel_cfg.sample_rate -> its log-mel in (<= chunk_frames, n_mels) chunks, equal to
    `compute_mel` of the whole signal cut at the same frames, holding about one chunk of audio at a time.
    `info["samples"]` is the signal's length once the blocks are exhausted."""
    from voxtool.audio.io import PaddedStream
    from voxtool.audio.mel import LogMel

    n_fft, hop = mel_cfg.n_fft, mel_cfg.hop_length
    width = _pad_width(mel_cfg)
    stream = PaddedStream(blocks, width, lambda x: _pad_edges(x, mel_cfg))
    front = LogMel(_frame_config(mel_cfg))
    a = 0
    while True:
        stream.fill((a + chunk_frames - 1) * hop + n_fft)
        if stream.too_short:
            raise BadInput(None, f"audio too short ({stream.n} samples; at least {width + 1} needed)")
        if stream.done:
            if info is not None:
                info["samples"] = stream.n
            total = mel_cfg.n_frames(stream.n)
            if a >= total:
                return
            b = min(total, a + chunk_frames)
        else:
            b = a + chunk_frames
        with torch.no_grad():
            mel = front(torch.from_numpy(stream.get(a * hop, (b - 1) * hop + n_fft))).T.numpy()
        yield mel
        stream.drop(b * hop)
        a = b


# --------------------------------------------------------------------------------------------- model


class _FrameWindow:
    """Frames [start, end) of a stream of (t, n_mels) chunks in memory; `fill` reads on, `drop` forgets."""

    def __init__(self, chunks: Iterable[np.ndarray]):
        self._chunks = iter(chunks)
        self._buf: np.ndarray | None = None
        self.start = 0
        self.done = False

    @property
    def end(self) -> int:
        return self.start + (0 if self._buf is None else len(self._buf))

    def fill(self, stop: int) -> None:
        while not self.done and self.end < stop:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.done = True
            else:
                self._buf = chunk if self._buf is None else np.concatenate([self._buf, chunk])

    def get(self, lo: int, hi: int) -> np.ndarray:
        if self._buf is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._buf[lo - self.start : hi - self.start]

    def drop(self, lo: int) -> None:
        if self._buf is not None and lo > self.start:
            self._buf = self._buf[lo - self.start :].copy()
            self.start = lo


@torch.no_grad()
def predict_mel_chunks(
    pred: MouthPredictor,
    chunks: Callable[[], Iterable[np.ndarray]],
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    keep_mel: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A log-mel given as a stream of chunks -> ((T,) curve in target units, the (T, n_mels) log-mel or None).

    `chunks()` starts the stream afresh; it is read twice when T > chunk_frames (the GroupNorm statistics of the
    whole file first, then the BiLSTM chunks with context), and only a window of chunk + 2 x context frames is in
    memory at a time (plus the whole log-mel with `keep_mel`)."""
    model, dev = pred.model, pred.device
    win = _FrameWindow(chunks())
    win.fill(chunk_frames + 1)
    if win.done and win.end <= chunk_frames:
        mel = np.ascontiguousarray(win.get(0, win.end))
        curve = model.infer(torch.from_numpy(mel).to(dev)[None])[0].float().cpu().numpy()
        return curve, (mel if keep_mel else None)
    # pass 1: GroupNorm statistics of the first conv layer over the whole file (1-frame halo for the k3 conv)
    stats = None
    a = 0
    while True:
        win.fill(a + chunk_frames + 1)
        t = win.end
        if a >= t:
            break
        b = min(t, a + chunk_frames)
        lo, hi = max(0, a - 1), min(t, b + 1)
        h = model.front(torch.from_numpy(win.get(lo, hi)).to(dev)[None])[..., a - lo : a - lo + (b - a)]
        s = model.group_stats(h)
        stats = s if stats is None else stats + s
        win.drop(b - 1)
        a = b
    total = a
    # pass 2: chunks with context on both sides, keep the cores
    win = _FrameWindow(chunks())
    out = np.empty(total, dtype=np.float32)
    kept: list[np.ndarray] = []
    for a in range(0, total, chunk_frames):
        b = min(total, a + chunk_frames)
        lo, hi = max(0, a - context_frames), min(total, b + context_frames)
        win.fill(hi)
        if win.end < hi:
            raise BadInput(None, "the audio changed while it was being read")
        y = model.infer(torch.from_numpy(win.get(lo, hi)).to(dev)[None], stats)[0]
        out[a:b] = y[a - lo : a - lo + (b - a)].float().cpu().numpy()
        if keep_mel:
            kept.append(win.get(a, b).copy())
        win.drop(max(0, b - context_frames))
    return out, (np.concatenate(kept) if keep_mel else None)


def predict_mel(
    pred: MouthPredictor,
    mel: np.ndarray,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
) -> np.ndarray:
    """(T, n_mels) log-mel -> (T,) curve in target units; chunked when T > chunk_frames."""
    mel = np.asarray(mel, dtype=np.float32)

    def chunks():
        return (mel[a : a + chunk_frames] for a in range(0, mel.shape[0], chunk_frames))

    return predict_mel_chunks(pred, chunks, chunk_frames, context_frames)[0]


@dataclass
class Prediction:
    """Native-rate output: frame_times (T,) s (true frame centres), curve (T,), mel (T, n_mels) (None from
    `predict_file` unless asked for), duration s."""

    frame_times: np.ndarray
    curve: np.ndarray
    mel: np.ndarray | None
    duration: float


def predict(
    audio: np.ndarray,
    sr: int,
    pred: MouthPredictor,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
) -> Prediction:
    """Mono audio (N,) at `sr` -> curve at the model's frame rate (50 fps)."""
    from voxtool.audio.io import resample

    target_sr = pred.mel_cfg.sample_rate
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = resample(audio, sr, target_sr)
    mel = compute_mel(audio, pred.mel_cfg, chunk_frames)
    curve = predict_mel(pred, mel, chunk_frames, context_frames)
    return Prediction(pred.mel_cfg.frame_times(len(curve)), curve, mel, len(audio) / target_sr)


def predict_file(
    path: str | Path,
    pred: MouthPredictor,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    keep_mel: bool = False,
    block_seconds: float = 10.0,
) -> Prediction:
    """An audio file -> curve at the model's frame rate, equal to `predict(load_audio(path), ...)` but reading the
    file in blocks (resampled block by block), so memory does not grow with its duration. A file longer than one
    chunk is read twice (see `predict_mel_chunks`). `keep_mel` also returns the whole log-mel (for --plot)."""
    from voxtool.audio.io import iter_audio_blocks

    sr = pred.mel_cfg.sample_rate
    info: dict[str, int] = {}

    def chunks():
        return iter_mel_chunks(iter_audio_blocks(path, sr, block_seconds), pred.mel_cfg, chunk_frames, info)

    try:
        curve, mel = predict_mel_chunks(pred, chunks, chunk_frames, context_frames, keep_mel)
    except BadInput as e:
        raise BadInput(path if e.where is None else e.where, e.problem) from None
    return Prediction(pred.mel_cfg.frame_times(len(curve)), curve, mel, info["samples"] / sr)


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


def write_curve(path: Path, times: np.ndarray, values: np.ndarray, fps: float, fmt: str) -> None:
    """Atomically write `time,mouth_opening` CSV, a float32 .npy, or JSON {"fps": N, "data": [...]}."""
    from voxtool.fileio import atomic_write

    if fmt == "csv":
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            f.write("time,mouth_opening\n")
            f.writelines(f"{t:.6f},{v:.6f}\n" for t, v in zip(times, values))
    elif fmt == "npy":
        with atomic_write(path) as f:
            np.save(f, values.astype(np.float32))
    elif fmt == "json":
        fps_out: float | int = int(fps) if float(fps).is_integer() else fps
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump({"fps": fps_out, "data": [round(float(v), 6) for v in values]}, f)
    else:
        raise BadInput(None, f"--format {fmt!r}: choose from {', '.join(FORMATS)}")


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
    extent = (float(p.frame_times[0]), float(p.frame_times[-1]), 0, p.mel.shape[1])
    ax_mel.imshow(p.mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
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


def format_for(out: Path | None, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise BadInput(None, f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
        return fmt
    if out is not None and out.suffix.lower().lstrip(".") in FORMATS:
        return out.suffix.lower().lstrip(".")
    return "csv"


def infer_files(
    inputs: list[str],
    out: Path | None,
    model_path: str | Path,
    fps: float | None = None,
    fmt: str | None = None,
    smooth: float = 0.0,
    clip: bool = False,
    plot: Path | None = None,
    device: str = "cpu",
    skip_existing: bool = False,
    chunk_seconds: float = 60.0,
    advance=None,
    fail_fast: bool = True,
) -> list[dict[str, Any]]:
    """Every input (files, directories, globs) -> one curve file each; the model is loaded once.

    `fail_fast=False` goes on past a failing input (reported on stderr, an entry with "error" in the returned
    `voxtool.batch.BatchResults`); see `voxtool.batch.run_jobs`."""
    from voxtool.audio.io import load_audio
    from voxtool.batch import BatchResults, run_jobs
    from voxtool.inputs import check_outputs, expand_inputs, protected_paths

    if fps is not None and fps <= 0:
        raise BadInput(None, "--fps must be positive")
    if smooth < 0:
        raise BadInput(None, "--smooth must be >= 0 seconds")
    fmt = format_for(out, fmt)
    model_files = protected_paths(model_path)
    jobs = expand_inputs(inputs, out, f".{fmt}", skip_existing=skip_existing, protect=model_files)
    if not jobs:
        return BatchResults()
    plots: dict[Path, Path] = {}
    if plot is not None:
        one_png = len(jobs) == 1 and plot.suffix.lower() == ".png"
        if not one_png and plot.exists() and not plot.is_dir():
            raise BadInput(plot, "--plot must be a folder (or, with one input, a .png file)")
        for job in jobs:
            plots[job.src] = plot if one_png else _plot_path(plot, job, out)
        check_outputs(list(plots.values()), [j.src for j in jobs] + [j.dst for j in jobs], model_files,
                      option="--plot")
    if str(model_path).lower().endswith(".onnx"):
        from voxtool.tasks.mouth.export import OnnxPredictor, predict_onnx

        if not Path(model_path).is_file():
            raise BadInput(model_path, "ONNX model not found")
        pred = OnnxPredictor(Path(model_path))
        sr = pred.sample_rate
        run = lambda src: predict_onnx(load_audio(src, sr=sr), pred, with_mel=plot is not None)  # noqa: E731
    else:
        pred = load_predictor(model_path, device)
        sr = pred.mel_cfg.sample_rate
        chunk_frames = max(100, int(chunk_seconds * pred.fps))
        # read in blocks: memory stays flat with the file's duration
        run = lambda src: predict_file(src, pred, chunk_frames, keep_mel=plot is not None)  # noqa: E731

    def work(job) -> dict[str, Any]:
        try:
            p = run(job.src)
        except BadInput as e:
            raise BadInput(job.src, e.problem) from None
        times, values, out_fps = curve_on_grid(p, fps, smooth, clip, pred.fps)
        write_curve(job.dst, times, values, out_fps, fmt)
        plotted = plots.get(job.src)
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


def _plot_path(plot_dir: Path, job, out: Path | None) -> Path:
    """With several inputs `--plot` is a folder mirroring the outputs' layout."""
    if out is not None and out in job.dst.parents:
        return plot_dir / job.dst.relative_to(out).with_suffix(".png")
    return plot_dir / f"{job.dst.stem}.png"


# --------------------------------------------------------------------------------------------- eval


def evaluate_dataset(model_path: str | Path, data: Path, split: str = "valid", device: str = "cpu") -> dict[str, float]:
    """Metrics of a model on a prepared dataset split (whole files, as the training validation)."""
    from voxtool.tasks.mouth.data import MouthDataset
    from voxtool.tasks.mouth.metrics import curve_metrics

    pred = load_predictor(model_path, device)
    ds = MouthDataset(data)
    if ds.meta.get("mel") != pred.mel_cfg.model_dump():
        raise BadInput(data, "dataset features differ from the model's (prepared with other mel settings)")
    items = ds.load_split(split)
    if not items:
        raise BadInput(data, f"split '{split}' is empty")
    preds = [predict_mel(pred, it.mel) for it in items]
    lo, hi = pred.model.value_range.tolist()
    metrics = curve_metrics(preds, [it.curve for it in items], lo, hi)
    metrics["files"] = len(items)
    metrics["frames"] = int(sum(len(it.curve) for it in items))
    return metrics
