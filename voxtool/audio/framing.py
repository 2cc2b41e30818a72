"""Uncentred framing: a signal padded once at its edges, then cut into frames or chunks of frames anywhere.

A `MelConfig` front-end pads the signal (reflect by `pad`, then n_fft/2 more with `pad_mode` when `center`) and
frame t covers padded samples [t*hop, t*hop + n_fft). Padding the whole signal once and running the same
front-end with `frame_config(cfg)` (no padding of its own) on slices of the padded signal gives exactly the
whole-signal log-mel, chunk by chunk, so long audio is processed with flat memory and windows can be placed
anywhere (overlapping context windows, batches of windows). Reads past the end of the padded signal are zeros
(the caller's frame-multiple padding happens on the audio, where zeros mean silence, not in log-mel space).

The padding of each edge depends only on the `pad_width(cfg) + 1` samples nearest to it, which is what lets
`frame_slice_from_audio` and `padded_stream` produce padded samples without materialising a padded copy.

Shapes: audio (N,) float32; padded (N + 2 * pad_width(cfg),); frame chunks (samples,), log-mel (n_mels, T).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from voxtool.audio.io import PaddedStream
from voxtool.audio.mel import MelConfig
from voxtool.errors import BadInput

DEFAULT_CHUNK_FRAMES = 3000


def frame_config(cfg: MelConfig) -> MelConfig:
    """The same front-end reading pre-padded frames (no padding of its own)."""
    return cfg.model_copy(update={"center": False, "pad": 0})


def pad_width(cfg: MelConfig) -> int:
    """Samples the front-end pads on each side: `pad`, plus n_fft/2 when centred."""
    return cfg.pad + (cfg.n_fft // 2 if cfg.center else 0)


def too_short(n: int, cfg: MelConfig) -> BadInput:
    return BadInput(None, f"audio too short ({n} samples; at least {pad_width(cfg) + 1} needed)")


def pad_edges(audio: np.ndarray, cfg: MelConfig, extend_short: bool = False) -> np.ndarray:
    """(N,) -> (N + 2 * pad_width,) float32: reflect by `pad`, then n_fft/2 more (`pad_mode`) when centred.

    Reflection needs more samples than it pads: a signal of `pad_width` samples or fewer is a BadInput, or with
    `extend_short` is zero-extended to `pad_width + 1` samples first (the RMVPE front-end's choice)."""
    padded = np.asarray(audio, dtype=np.float32)
    width = pad_width(cfg)
    if len(padded) <= width:
        if not extend_short:
            raise too_short(len(padded), cfg)
        padded = np.concatenate([padded, np.zeros(width + 1 - len(padded), dtype=np.float32)])
    if cfg.pad:
        padded = np.pad(padded, cfg.pad, mode="reflect")
    if cfg.center:
        half = cfg.n_fft // 2
        padded = np.pad(padded, half, mode="reflect" if cfg.pad_mode == "reflect" else "constant")
    return padded.astype(np.float32, copy=False)


def frame_span(start: int, count: int, cfg: MelConfig) -> tuple[int, int]:
    """Padded-sample range [lo, hi) that frames [start, start + count) cover."""
    return start * cfg.hop_length, (start + count - 1) * cfg.hop_length + cfg.n_fft


def frame_slice(padded: np.ndarray, start: int, count: int, cfg: MelConfig) -> np.ndarray:
    """Samples of the padded signal that frames [start, start + count) cover, zero-filled past its end."""
    lo, hi = frame_span(start, count, cfg)
    out = padded[lo:hi]
    if len(out) < hi - lo:
        out = np.concatenate([out, np.zeros(hi - lo - len(out), dtype=np.float32)])
    return np.ascontiguousarray(out, dtype=np.float32)


def frame_slice_from_audio(
    audio: np.ndarray, start: int, count: int, cfg: MelConfig, extend_short: bool = False
) -> np.ndarray:
    """`frame_slice(pad_edges(audio, cfg), ...)` without materialising the padded copy of a long signal."""
    audio = np.asarray(audio, dtype=np.float32)
    width, n = pad_width(cfg), len(audio)
    if n <= width or width == 0:
        return frame_slice(pad_edges(audio, cfg, extend_short), start, count, cfg)
    lo, hi = frame_span(start, count, cfg)
    out = np.zeros(hi - lo, dtype=np.float32)
    # padded coordinates: head [0, width), the signal [width, width + n), tail [width + n, n + 2 width), zeros
    parts = (
        (0, lambda: pad_edges(audio[: width + 1], cfg)[:width]),
        (width, lambda: audio),
        (width + n, lambda: pad_edges(audio[-(width + 1) :], cfg)[-width:]),
    )
    for (begin, part), end in zip(parts, (width, width + n, n + 2 * width)):
        a, b = max(lo, begin), min(hi, end)
        if a < b:
            out[a - lo : b - lo] = part()[a - begin : b - begin]
    return out


def padded_stream(blocks: Iterable[np.ndarray], cfg: MelConfig) -> PaddedStream:
    """A `PaddedStream` over `pad_edges(concatenated blocks, cfg)`; indices are padded-sample indices."""
    return PaddedStream(blocks, pad_width(cfg), lambda x: pad_edges(x, cfg))


def iter_frame_chunks(
    blocks: Iterable[np.ndarray],
    cfg: MelConfig,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    info: dict | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Audio blocks (n,) -> (first frame, padded samples of frames [first, first + t)) with t <= chunk_frames,
    covering `cfg.n_frames(N)` frames in order and holding about one chunk of audio at a time.

    A signal of `pad_width(cfg)` samples or fewer is a BadInput (`too_short`). `info["samples"]` is the signal's
    length N once the blocks are exhausted."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, not {chunk_frames}")
    stream = padded_stream(blocks, cfg)
    a = 0
    while True:
        stream.fill(frame_span(a, chunk_frames, cfg)[1])
        if stream.too_short:
            raise too_short(stream.n, cfg)
        if stream.done:
            if info is not None:
                info["samples"] = stream.n
            total = cfg.n_frames(stream.n)
            if a >= total:
                return
            b = min(total, a + chunk_frames)
        else:
            b = a + chunk_frames
        yield a, stream.get(*frame_span(a, b - a, cfg))
        stream.drop(b * cfg.hop_length)  # the next chunk starts at frame b
        a = b


def iter_log_mel_chunks(
    blocks: Iterable[np.ndarray],
    cfg: MelConfig,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    info: dict | None = None,
) -> Iterator[np.ndarray]:
    """Audio blocks -> log-mel chunks (n_mels, t <= chunk_frames) float32; concatenated along time they equal
    `LogMel(cfg)` of the whole signal."""
    import torch

    from voxtool.audio.mel import LogMel

    front = LogMel(frame_config(cfg))
    for _, samples in iter_frame_chunks(blocks, cfg, chunk_frames, info):
        with torch.no_grad():
            yield front(torch.from_numpy(samples)).numpy()


def log_mel(audio: np.ndarray, cfg: MelConfig, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
    """(N,) float32 at cfg.sample_rate -> (n_mels, T) float32, computed chunk by chunk, equal to LogMel(whole)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) <= pad_width(cfg):
        raise too_short(len(audio), cfg)
    out = np.empty((cfg.n_mels, cfg.n_frames(len(audio))), dtype=np.float32)
    t = 0
    for chunk in iter_log_mel_chunks([audio], cfg, chunk_frames):
        out[:, t : t + chunk.shape[1]] = chunk
        t += chunk.shape[1]
    return out
