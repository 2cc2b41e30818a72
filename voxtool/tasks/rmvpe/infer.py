"""Pitch inference: chunked, batched, overlapping windows with flat memory; CSV/NPY/JSON writers.

Layers: ``predict(audio, sr, model)`` -> ``predict_from_file(path, model)`` ->
``predict_from_files_to_files(jobs, model)``. ``load_pitch_model(path)`` accepts a voxtool ``model.pt`` or
run folder, a published checkpoint (RVC ``rmvpe.pt``, yxlllc ``model.pt``, DDP outputs) or an exported
``.onnx``.

Chunking: the track is cut into cores of ``chunk_frames`` frames; each core is run inside a window that adds
``context_frames`` on both sides (shifted inwards at the file edges, so every window has the same size and a
batch is one tensor). Only the core frames of each window are kept. Frames are computed exactly as for the
whole file (see ``frontend``), so the only difference to a whole-file pass is the receptive field cut off
beyond the context, which the parity tests bound at < 1 cent on voiced frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from voxtool.audio.mel import MelConfig
from voxtool.errors import BadInput
from voxtool.tasks.rmvpe.decode import DEFAULT_THRESHOLD, decode_torch, decode_viterbi, resample_f0
from voxtool.tasks.rmvpe.frontend import (
    FrameMel,
    frame_slice_from_audio,
    n_frames,
    published_mel_config,
)
from voxtool.tasks.rmvpe.model import E2E0, load_state_dict_any

FORMATS = ("csv", "npy", "json")
DECODERS = ("local", "viterbi")
# 20.48 s cores with 2.56 s of context per side: < 0.01 cents from whole-file inference on the test models,
# 25 % extra compute, and a peak memory set by the window (batch_size x 25.6 s), not by the file length.
DEFAULT_CHUNKING = {"chunk_frames": 2048, "context_frames": 256, "batch_size": 2}


@dataclass
class PitchTrack:
    """f0 (Hz, 0 = unvoiced) and peak salience per frame; frame i is centred at ``i * hop_s`` seconds."""

    f0: np.ndarray
    confidence: np.ndarray
    hop_s: float

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.f0)) * self.hop_s

    def resampled(self, hop_s: float) -> PitchTrack:
        """The track on another frame grid (log-f0 interpolation inside voiced runs only)."""
        if math.isclose(hop_s, self.hop_s):
            return self
        f0 = resample_f0(self.f0, self.hop_s, hop_s)
        t_new = np.arange(len(f0)) * hop_s
        conf = np.interp(t_new, self.times, self.confidence).astype(np.float32)
        return PitchTrack(f0, conf, hop_s)


@dataclass
class Window:
    start: int  # first frame of the window
    core_start: int  # first frame kept
    core_stop: int  # one past the last frame kept


def plan_windows(total: int, chunk: int, context: int, multiple: int) -> tuple[int, list[Window]]:
    """Cut ``total`` frames into windows. Returns (window length in frames, windows).

    ``chunk`` 0 (or a file shorter than one window) means one window over the whole file, padded to a
    multiple of ``multiple`` frames.
    """
    whole = -(-total // multiple) * multiple
    chunk = -(-chunk // multiple) * multiple if chunk else 0
    context = -(-context // multiple) * multiple if chunk else 0
    length = chunk + 2 * context
    if not chunk or whole <= length:
        return whole, [Window(0, 0, total)]
    windows = []
    for a in range(0, total, chunk):
        start = max(0, min(a - context, whole - length))
        windows.append(Window(start, a, min(a + chunk, total)))
    return length, windows


@dataclass
class TorchPitchModel:
    """E2E0 + its front-end on a device. ``salience(wave [B, L]) -> [B, T, 360]`` (pre-padded frames)."""

    net: E2E0
    mel_cfg: MelConfig
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "32"
    threshold: float = DEFAULT_THRESHOLD
    description: str = ""
    chunking: dict = field(default_factory=lambda: dict(DEFAULT_CHUNKING))  # the model's own infer settings

    def __post_init__(self):
        if self.device.type == "cpu":
            limit_heap_fragmentation()
        self.net = self.net.to(self.device).eval()
        self.frontend = FrameMel(self.mel_cfg).to(self.device)

    @property
    def frame_multiple(self) -> int:
        return self.net.arch.frame_multiple

    @torch.inference_mode()
    def salience_windows(self, waves: np.ndarray) -> torch.Tensor:
        """Pre-padded windows ``[B, (W-1)*hop + n_fft]`` -> salience ``[B, W, 360]`` (fp32, on the device)."""
        wav = torch.from_numpy(np.ascontiguousarray(waves)).to(self.device)
        mel = self.frontend(wav)
        with _autocast(self.device, self.precision):
            salience = self.net(mel)
        return salience.float()

    def f0_windows(self, waves: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Pre-padded windows ``[B, (W-1)*hop + n_fft]`` -> (f0 ``[B, W]``, confidence ``[B, W]``)."""
        f0, conf = decode_torch(self.salience_windows(waves), threshold)
        return f0.cpu().numpy(), conf.cpu().numpy()


def _autocast(device: torch.device, precision: str):
    """fp16/bf16 autocast on accelerators; a no-op for "32"."""
    import contextlib

    from voxtool.devices import normalise_precision

    precision = normalise_precision(precision)
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


class OnnxPitchModel:
    """An exported graph: raw waveform ``[B, N]`` + threshold -> (f0, confidence) ``[B, ceil32(N//hop+1)]``."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BadInput(path, f"not a loadable ONNX model ({_first_line(exc)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.mel_cfg = MelConfig(**json.loads(meta["mel"])) if "mel" in meta else published_mel_config()
            self.frame_multiple = int(meta.get("frame_multiple", 32))
            self.threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
        except Exception as exc:  # JSONDecodeError, ValidationError, ValueError
            raise BadInput(path, f"garbled metadata in the ONNX model ({_first_line(exc)})") from None
        if self.frame_multiple < 1:
            raise BadInput(path, f"garbled metadata in the ONNX model (frame_multiple {self.frame_multiple})")
        self.description = f"ONNX graph {path.name}"
        self.chunking = dict(DEFAULT_CHUNKING)

    def f0_raw(self, wave: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        f0, conf = self.session.run(
            ["f0", "confidence"],
            {"waveform": wave.astype(np.float32)[None], "threshold": np.array(threshold, dtype=np.float32)},
        )
        return f0[0], conf[0]


PitchModel = TorchPitchModel | OnnxPitchModel


def limit_heap_fragmentation() -> None:
    """Fix glibc's mmap threshold at 1 MiB (Linux only; a no-op elsewhere).

    glibc raises the threshold after large frees, after which the per-window activations (tens of MiB each) come
    from the heap and fragment it: the peak RSS of a long file then creeps up batch after batch. With a fixed
    threshold they are mmapped and returned on free, so chunked inference stays flat in file length (measured:
    +17 MiB instead of +64 MiB over 15 batches).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def load_pitch_model(path: str | Path, device: str = "cpu", precision: str = "32") -> PitchModel:
    """Load any supported model file (see module doc) once, ready for ``predict``."""
    from voxtool.devices import resolve_device
    from voxtool.fileio import load_torch

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise BadInput(path, "file not found")
        return OnnxPitchModel(path)
    if path.is_dir():
        path = path / "model.pt"
    obj = load_torch(path)
    dev = resolve_device(device).torch
    mel_cfg = published_mel_config()
    threshold = DEFAULT_THRESHOLD
    chunking = dict(DEFAULT_CHUNKING)
    arch = None
    if isinstance(obj, dict) and obj.get("format") == "voxtool-model":
        from voxtool.tasks.rmvpe.model import RmvpeArch
        from voxtool.training.modelfile import check_layout

        check_layout(path, obj)
        if obj.get("task") != "rmvpe":
            raise BadInput(path, f"model file is for task '{obj.get('task')}', not rmvpe")
        cfg = obj.get("config") or {}
        try:
            arch = RmvpeArch.from_dict(cfg.get("model", {}))
            mel_cfg = MelConfig(**cfg["mel"]) if "mel" in cfg else mel_cfg
            threshold = float(cfg.get("decode", {}).get("threshold", threshold))
            chunking.update({k: int(v) for k, v in cfg.get("infer", {}).items() if k in chunking})
        except Exception as exc:  # ValidationError, TypeError, ValueError, AttributeError of a garbled config
            raise BadInput(path, f"model file lacks valid rmvpe settings ({_first_line(exc)})") from None
    try:
        net, layout = load_state_dict_any(obj, arch)
    except ValueError as exc:
        raise BadInput(path, str(exc)) from None
    except Exception as exc:  # odd objects inside a readable file
        raise BadInput(path, f"not an RMVPE checkpoint ({_first_line(exc)})") from None
    if net.arch.n_mels != mel_cfg.n_mels:
        raise BadInput(path, f"network expects {net.arch.n_mels} mel bins, front-end gives {mel_cfg.n_mels}")
    return TorchPitchModel(net, mel_cfg, dev, precision, threshold, description=layout, chunking=chunking)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:120]}" if text else type(exc).__name__


def predict(
    audio: np.ndarray,
    sr: int,
    model: PitchModel,
    threshold: float | None = None,
    chunk_frames: int | None = None,
    context_frames: int | None = None,
    batch_size: int | None = None,
    decoder: str = "local",
) -> PitchTrack:
    """Mono audio ``[N]`` at ``sr`` -> PitchTrack at the model's hop (10 ms for published settings).

    None settings come from the model (its preset's ``[infer]`` section, else ``DEFAULT_CHUNKING``).
    ``decoder`` "local" (9-bin local average around each frame's argmax) or "viterbi" (around the Viterbi path
    over the whole track; keeps the salience of the whole file in fp16, 720 bytes per frame, and is torch-only).
    """
    if decoder not in DECODERS:
        raise BadInput(None, f"unknown decoder '{decoder}' (choose {', '.join(DECODERS)})")
    from voxtool.audio.io import resample

    threshold = model.threshold if threshold is None else threshold
    chunk_frames = model.chunking["chunk_frames"] if chunk_frames is None else chunk_frames
    context_frames = model.chunking["context_frames"] if context_frames is None else context_frames
    batch_size = model.chunking["batch_size"] if batch_size is None else batch_size
    cfg = model.mel_cfg
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio [N], got shape {audio.shape}")
    audio = resample(audio, sr, cfg.sample_rate) if sr != cfg.sample_rate else audio
    hop, n_fft = cfg.hop_length, cfg.n_fft
    total = n_frames(len(audio), hop)
    length, windows = plan_windows(total, chunk_frames, context_frames, model.frame_multiple)
    f0 = np.zeros(total, dtype=np.float32)
    conf = np.zeros(total, dtype=np.float32)
    if isinstance(model, OnnxPitchModel):
        if decoder != "local":
            raise BadInput(None, "the ONNX graph decodes inside itself: only --decoder local")
        for w in windows:
            # Raw slice: the graph pads itself; interior slice edges only touch dropped context frames.
            stop = None if w.start + length >= total else (w.start + length - 1) * hop  # the last one: to the end
            raw = audio[w.start * hop : stop]
            if len(raw) <= n_fft // 2:  # the graph's reflect pad needs more samples: zero-extend as pad_signal does
                raw = np.concatenate([raw, np.zeros(n_fft // 2 + 1 - len(raw), dtype=np.float32)])
            f, c = model.f0_raw(raw, threshold)
            f0[w.core_start : w.core_stop] = f[w.core_start - w.start : w.core_stop - w.start]
            conf[w.core_start : w.core_stop] = c[w.core_start - w.start : w.core_stop - w.start]
        return PitchTrack(f0, conf, hop / cfg.sample_rate)
    salience = np.zeros((total, 360), dtype=np.float16) if decoder == "viterbi" else None
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        waves = np.stack([frame_slice_from_audio(audio, w.start, length, hop, n_fft) for w in group])
        if salience is not None:
            window_salience = model.salience_windows(waves).cpu().numpy()
            for row, w in enumerate(group):
                salience[w.core_start : w.core_stop] = window_salience[row, w.core_start - w.start : w.core_stop - w.start]
            continue
        f, c = model.f0_windows(waves, threshold)
        for row, w in enumerate(group):
            f0[w.core_start : w.core_stop] = f[row, w.core_start - w.start : w.core_stop - w.start]
            conf[w.core_start : w.core_stop] = c[row, w.core_start - w.start : w.core_stop - w.start]
    if salience is not None:
        f0, conf = decode_viterbi(salience, threshold)
    return PitchTrack(f0, conf, hop / cfg.sample_rate)


def predict_from_file(
    path: str | Path,
    model: PitchModel,
    threshold: float | None = None,
    chunk_frames: int | None = None,
    context_frames: int | None = None,
    batch_size: int | None = None,
    decoder: str = "local",
    block_seconds: float = 10.0,
) -> PitchTrack:
    """``predict(load_audio(path), ...)``, but a torch model with chunking reads the file in blocks (resampled block
    by block) and keeps only the audio of a few windows: memory does not grow with the file's duration (except
    the per-frame outputs, and the whole-file salience of ``--decoder viterbi``). Same windows, same batches,
    same result. ONNX graphs and ``chunk_frames=0`` read the whole file."""
    from voxtool.audio.io import PaddedStream, iter_audio_blocks, load_audio

    sr = model.mel_cfg.sample_rate
    kwargs = dict(threshold=threshold, chunk_frames=chunk_frames, context_frames=context_frames,
                  batch_size=batch_size, decoder=decoder)
    chunk = model.chunking["chunk_frames"] if chunk_frames is None else chunk_frames
    if decoder not in DECODERS or isinstance(model, OnnxPitchModel) or not chunk:
        return predict(load_audio(path, sr=sr), sr, model, **kwargs)
    threshold = model.threshold if threshold is None else threshold
    context = model.chunking["context_frames"] if context_frames is None else context_frames
    batch = model.chunking["batch_size"] if batch_size is None else batch_size
    cfg = model.mel_cfg
    hop, n_fft, half = cfg.hop_length, cfg.n_fft, cfg.n_fft // 2
    multiple = model.frame_multiple
    core = -(-chunk // multiple) * multiple
    length = core + 2 * (-(-context // multiple) * multiple)  # as plan_windows rounds them
    margin = length - core
    stream = PaddedStream(iter_audio_blocks(path, sr, block_seconds), half,
                          lambda x: np.pad(x, half, mode="reflect"))  # pad_signal, for signals longer than n_fft/2
    f0s: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    saliences: list[np.ndarray] = []

    def run(group: list[Window], frames: int) -> None:
        waves = np.stack([stream.get(w.start * hop, (w.start + frames - 1) * hop + n_fft) for w in group])
        if decoder == "viterbi":
            window_salience = model.salience_windows(waves).cpu().numpy()
            for row, w in enumerate(group):
                core_part = window_salience[row, w.core_start - w.start : w.core_stop - w.start]
                saliences.append(core_part.astype(np.float16))
            return
        f, c = model.f0_windows(waves, threshold)
        for row, w in enumerate(group):  # copies: a view would keep the whole batch's buffers alive
            f0s.append(f[row, w.core_start - w.start : w.core_stop - w.start].copy())
            confs.append(c[row, w.core_start - w.start : w.core_stop - w.start].copy())

    # Windows are planned as the audio arrives: while the file goes on past a window (and one more frame), its
    # total frame count is more than the window's end, so plan_windows would place that window at a - context as
    # well; the last windows (shifted inwards at the end) are planned once the length is known.
    pending: list[Window] = []
    a = 0
    try:
        while True:
            start = max(0, a - margin // 2)
            stream.fill((start + length) * hop + n_fft)
            if stream.done:
                break
            pending.append(Window(start, a, a + core))
            a += core
            if len(pending) == batch:
                run(pending, length)
                pending = []
                stream.drop(max(0, a - length) * hop)  # every later window starts at or after a - length
    except BadInput as exc:
        raise BadInput(path if exc.where is None else exc.where, exc.problem) from None
    if stream.too_short:  # n_fft/2 samples or fewer: pad_signal zero-extends; the whole file is tiny
        return predict(load_audio(path, sr=sr), sr, model, **kwargs)
    total = n_frames(stream.n, hop)
    frames, plan = plan_windows(total, chunk, context, multiple)
    pending += [w for w in plan if w.core_start >= a]
    for i in range(0, len(pending), batch):
        run(pending[i : i + batch], frames)
    if decoder == "viterbi":
        f0, conf = decode_viterbi(np.concatenate(saliences), threshold)
        return PitchTrack(f0, conf, hop / cfg.sample_rate)
    return PitchTrack(np.concatenate(f0s), np.concatenate(confs), hop / cfg.sample_rate)


def write_track(path: Path, track: PitchTrack, fmt: str = "csv", with_confidence: bool = False) -> None:
    """CSV ``time,f0[,confidence]``; NPY ``[T, 2|3]`` (time, f0[, confidence]); JSON with arrays."""
    from voxtool.fileio import atomic_write

    columns = [track.times, track.f0] + ([track.confidence] if with_confidence else [])
    if fmt == "csv":
        header = "time,f0" + (",confidence" if with_confidence else "")
        lines = [header]
        for row in zip(*columns):
            lines.append(
                f"{row[0]:.3f},{row[1]:.3f}" + (f",{row[2]:.4f}" if with_confidence else "")
            )
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    elif fmt == "npy":
        with atomic_write(path, "wb") as f:
            np.save(f, np.stack(columns, axis=1).astype(np.float32))
    elif fmt == "json":
        doc = {"hop_s": track.hop_s, "time": np.round(track.times, 6).tolist(), "f0": np.round(track.f0, 3).tolist()}
        if with_confidence:
            doc["confidence"] = np.round(track.confidence, 4).tolist()
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)
    else:
        raise BadInput(None, f"unknown format '{fmt}' (choose {', '.join(FORMATS)})")


def predict_from_files_to_files(
    jobs: list,
    model: PitchModel,
    fmt: str = "csv",
    hop_ms: float | None = None,
    with_confidence: bool = False,
    on_done=None,
    fail_fast: bool = True,
    out: Path | None = None,
    **kwargs,
) -> list[dict]:
    """Run every ``Job(src, dst)`` with one loaded model; returns one summary dict per file.

    ``fail_fast=False`` goes on past a failing input (reported on stderr, an entry with "error" in the returned
    ``voxtool.batch.BatchResults``); ``out`` only names the destination when the batch is interrupted."""
    from voxtool.batch import run_jobs

    def work(job) -> dict:
        track = predict_from_file(job.src, model, **kwargs)
        if hop_ms:
            track = track.resampled(hop_ms / 1000.0)
        write_track(job.dst, track, fmt, with_confidence)
        voiced = track.f0 > 0
        return {
            "input": str(job.src),
            "output": str(job.dst),
            "frames": int(len(track.f0)),
            "voiced": round(float(voiced.mean()) if len(voiced) else 0.0, 4),
            "median_f0": round(float(np.median(track.f0[voiced])) if voiced.any() else 0.0, 2),
        }

    advance = (lambda n=1: on_done()) if on_done else None
    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)
