"""Chunked RMVPE inference: batched, overlapping windows with flat memory.

`load_model(path)` (`voxtool.pitch.runtime`) -> `predict(audio, sr, model)` -> `predict_from_file(path, model)`.

Chunking: the track is cut into cores of `chunk_frames` frames; each core is run inside a window that adds
`context_frames` on both sides (shifted inwards at the file edges, so every window has the same size and a
batch is one tensor). Only the core frames of each window are kept. Frames are computed exactly as for the
whole file (see `voxtool.pitch.settings`), so the only difference to a whole-file pass is the receptive field cut
off beyond the context, which the parity tests bound at < 1 cent on voiced frames.

Shapes: audio (N,) float32 mono; a track holds f0 and confidence (T,) with T = N // hop + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput
from voxtool.pitch.decode import N_BINS, decode_viterbi, resample_f0
from voxtool.pitch.runtime import OnnxPitchModel, PitchModel
from voxtool.pitch.settings import padding_config
from voxtool.windows import Window, plan_windows  # noqa: F401  (plan_windows: re-exported)

DECODERS = ("local", "viterbi")


@dataclass
class PitchTrack:
    """f0 (Hz, 0 = unvoiced) and peak salience per frame (T,); frame i is centred at `i * hop_s` seconds."""

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


def _settings(model: PitchModel, threshold, chunk_frames, context_frames, batch_size) -> tuple[float, int, int, int]:
    """None settings come from the model (its preset's [infer] section, else DEFAULT_CHUNKING)."""
    return (
        model.threshold if threshold is None else threshold,
        model.chunking["chunk_frames"] if chunk_frames is None else chunk_frames,
        model.chunking["context_frames"] if context_frames is None else context_frames,
        model.chunking["batch_size"] if batch_size is None else batch_size,
    )


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
    """Mono audio (N,) at `sr` -> PitchTrack at the model's hop (10 ms for published settings).

    None settings come from the model (its preset's `[infer]` section, else `DEFAULT_CHUNKING`).
    `decoder` "local" (9-bin local average around each frame's argmax) or "viterbi" (around the Viterbi path
    over the whole track; keeps the salience of the whole file in fp16, 720 bytes per frame, and is torch-only).
    """
    if decoder not in DECODERS:
        raise BadInput(None, f"unknown decoder '{decoder}' (choose {', '.join(DECODERS)})")
    from voxtool.audio.framing import frame_slice_from_audio
    from voxtool.audio.io import resample

    threshold, chunk_frames, context_frames, batch_size = _settings(
        model, threshold, chunk_frames, context_frames, batch_size
    )
    cfg = model.mel_cfg
    rcfg = padding_config(cfg)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio [N], got shape {audio.shape}")
    audio = resample(audio, sr, cfg.sample_rate) if sr != cfg.sample_rate else audio
    hop, half = cfg.hop_length, cfg.n_fft // 2
    total = rcfg.n_frames(len(audio))
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
            if len(raw) <= half:  # the graph's reflect pad needs more samples: zero-extend as the framing does
                raw = np.concatenate([raw, np.zeros(half + 1 - len(raw), dtype=np.float32)])
            f, c = model.f0_raw(raw, threshold)
            f0[w.core_start : w.core_stop] = w.core(f)
            conf[w.core_start : w.core_stop] = w.core(c)
        return PitchTrack(f0, conf, hop / cfg.sample_rate)
    salience = np.zeros((total, N_BINS), dtype=np.float16) if decoder == "viterbi" else None
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        waves = np.stack([frame_slice_from_audio(audio, w.start, length, rcfg, extend_short=True) for w in group])
        if salience is not None:
            window_salience = model.salience_windows(waves).cpu().numpy()  # (B, W, 360)
            for row, w in enumerate(group):
                salience[w.core_start : w.core_stop] = w.core(window_salience[row].T).T
            continue
        f, c = model.f0_windows(waves, threshold)
        for row, w in enumerate(group):
            f0[w.core_start : w.core_stop] = w.core(f[row])
            conf[w.core_start : w.core_stop] = w.core(c[row])
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
    """`predict(load_audio(path), ...)`, but a torch model with chunking reads the file in blocks (resampled block
    by block) and keeps only the audio of a few windows: memory does not grow with the file's duration (except
    the per-frame outputs, and the whole-file salience of `--decoder viterbi`). Same windows, same batches,
    same result. ONNX graphs and `chunk_frames=0` read the whole file."""
    from voxtool.audio.framing import frame_span, padded_stream
    from voxtool.audio.io import iter_audio_blocks, load_audio

    sr = model.mel_cfg.sample_rate
    kwargs = dict(threshold=threshold, chunk_frames=chunk_frames, context_frames=context_frames,
                  batch_size=batch_size, decoder=decoder)  # fmt: skip
    threshold, chunk, context, batch = _settings(model, threshold, chunk_frames, context_frames, batch_size)
    if decoder not in DECODERS or isinstance(model, OnnxPitchModel) or not chunk:
        return predict(load_audio(path, sr=sr), sr, model, **kwargs)
    cfg = model.mel_cfg
    rcfg = padding_config(cfg)
    hop = cfg.hop_length
    multiple = model.frame_multiple
    core = -(-chunk // multiple) * multiple
    length = core + 2 * (-(-context // multiple) * multiple)  # as plan_windows rounds them
    margin = length - core
    stream = padded_stream(iter_audio_blocks(path, sr, block_seconds), rcfg)
    f0s: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    saliences: list[np.ndarray] = []

    def run(group: list[Window], frames: int) -> None:
        waves = np.stack([stream.get(*frame_span(w.start, frames, rcfg)) for w in group])
        if decoder == "viterbi":
            window_salience = model.salience_windows(waves).cpu().numpy()  # (B, W, 360)
            for row, w in enumerate(group):
                saliences.append(w.core(window_salience[row].T).T.astype(np.float16))
            return
        f, c = model.f0_windows(waves, threshold)
        for row, w in enumerate(group):  # copies: a view would keep the whole batch's buffers alive
            f0s.append(w.core(f[row]).copy())
            confs.append(w.core(c[row]).copy())

    # Windows are planned as the audio arrives: while the file goes on past a window (and one more frame), its
    # total frame count is more than the window's end, so plan_windows would place that window at a - context as
    # well; the last windows (shifted inwards at the end) are planned once the length is known.
    pending: list[Window] = []
    a = 0
    try:
        while True:
            start = max(0, a - margin // 2)
            stream.fill(frame_span(start, length + 1, rcfg)[1])
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
    if stream.too_short:  # n_fft/2 samples or fewer: the framing zero-extends; the whole file is tiny
        return predict(load_audio(path, sr=sr), sr, model, **kwargs)
    total = rcfg.n_frames(stream.n)
    frames, plan = plan_windows(total, chunk, context, multiple)
    pending += [w for w in plan if w.core_start >= a]
    for i in range(0, len(pending), batch):
        run(pending[i : i + batch], frames)
    if decoder == "viterbi":
        f0, conf = decode_viterbi(np.concatenate(saliences), threshold)
        return PitchTrack(f0, conf, hop / cfg.sample_rate)
    return PitchTrack(np.concatenate(f0s), np.concatenate(confs), hop / cfg.sample_rate)
