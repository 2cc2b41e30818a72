"""Read any format libsndfile reads into mono float32 at a requested rate; write atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput
from voxtool.fileio import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus", ".w64", ".caf")


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(N,) or (N, C) float -> resampled along axis 0 with soxr (high quality)."""
    if sr_in == sr_out:
        return wav
    import soxr

    return soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio_channels(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(N, C) float32 at the file's own rate, and that rate."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError for bad files
        raise BadInput(path, f"cannot read audio ({str(e).strip().splitlines()[0][:120]})") from None
    if data.shape[0] == 0:
        raise BadInput(path, "audio file is empty")
    if not np.isfinite(data).all():
        raise BadInput(path, "audio contains NaN or infinite samples")
    return data, int(sr)


def load_audio(path: str | os.PathLike, sr: int = 16000, mono: bool = True) -> np.ndarray:
    """Mono float32 (N,) at `sr` (channels averaged), or (N, C) with mono=False."""
    data, file_sr = load_audio_channels(path)
    data = resample(data, file_sr, sr)
    if mono:
        return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    return np.ascontiguousarray(data, dtype=np.float32)


def _mix(data: np.ndarray, mono: bool) -> np.ndarray:
    if mono:
        return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    return np.ascontiguousarray(data, dtype=np.float32)


def _problem(e: BaseException) -> str:
    text = str(e).strip()
    return f"cannot read audio ({text.splitlines()[0][:120] if text else type(e).__name__})"


def iter_audio_blocks(
    path: str | os.PathLike, sr: int = 16000, block_seconds: float = 10.0, mono: bool = True
) -> Iterator[np.ndarray]:
    """Read a file in blocks of `block_seconds` (of the file's own rate) -> float32 blocks at `sr`: (n,) mono
    (channels averaged) or (n, C) with mono=False. Their concatenation equals `load_audio(path, sr, mono)` exactly
    (soxr's streaming resampler gives the same samples as its one-shot call), but only one block is in memory at a
    time, so memory does not grow with the file's duration. Problems are BadInput like load_audio's, raised
    when met (a damaged or non-finite block may come after good ones)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "audio file not found")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # LibsndfileError/RuntimeError/TypeError for bad files
        raise BadInput(path, _problem(e)) from None
    with f:
        file_sr, channels = int(f.samplerate), int(f.channels)
        block = max(1, int(round(block_seconds * file_sr)))
        stream = None
        if file_sr != sr:
            import soxr

            stream = soxr.ResampleStream(file_sr, sr, channels, dtype="float32", quality="HQ")
        total = 0
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as e:
                raise BadInput(path, _problem(e)) from None
            if len(data) == 0:
                break
            total += len(data)
            if not np.isfinite(data).all():
                raise BadInput(path, "audio contains NaN or infinite samples")
            if stream is not None:
                data = stream.resample_chunk(data)
            if len(data):
                yield _mix(data, mono)
        if total == 0:
            raise BadInput(path, "audio file is empty")
        if stream is not None:
            tail = stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
            if len(tail):
                yield _mix(tail, mono)


class PaddedStream:
    """A sliding window over `pad(signal)` where the signal arrives in blocks and `pad` adds `width` samples on
    each side that depend only on the first and last `width + 1` samples (reflect or constant padding, also
    two-stage as in the mouth front-end). Indices are those of the padded signal; reads past its end are zeros.

    `fill(stop)` reads blocks until samples [.., stop) are known (or the signal ended: `done`, `n` = its length),
    `get(lo, hi)` returns them, `drop(lo)` forgets everything before `lo`. Memory: the window plus one block.
    """

    def __init__(self, blocks: Iterable[np.ndarray], width: int, pad: Callable[[np.ndarray], np.ndarray]):
        self._blocks = iter(blocks)
        self.width = width
        self._pad = pad
        self.n = 0  # signal samples read so far
        self.done = False
        self._head: list[np.ndarray] | None = []  # the first samples, until `width + 1` are there
        self._tail = np.zeros(0, dtype=np.float32)  # the last `width + 1` samples read
        self._buf = np.zeros(0, dtype=np.float32)
        self._start = 0  # padded index of _buf[0]

    @property
    def end(self) -> int:
        """Padded samples known so far (one past the last)."""
        return self._start + len(self._buf)

    @property
    def too_short(self) -> bool:
        """True once the signal ended with fewer than `width + 1` samples (no padding possible)."""
        return self.done and self._head is not None

    def _append(self, x: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else np.ascontiguousarray(x, dtype=np.float32)

    def fill(self, stop: int) -> None:
        need = self.width + 1
        while not self.done and self.end < stop:
            block = next(self._blocks, None)
            if block is None:
                self.done = True
                if self._head is None and self.width:
                    self._append(self._pad(self._tail)[-self.width :])
                break
            block = np.asarray(block, dtype=np.float32)
            self.n += len(block)
            self._tail = np.concatenate([self._tail, block])[-need:]
            if self._head is not None:
                self._head.append(block)
                if self.n < need:
                    continue
                head = np.concatenate(self._head)
                self._head = None
                block = np.concatenate([self._pad(head)[: self.width], head]) if self.width else head
            self._append(block)

    def get(self, lo: int, hi: int) -> np.ndarray:
        """Padded samples [lo, hi) (lo >= the last drop), zeros past the end of the padded signal."""
        if lo < self._start:
            raise ValueError(f"sample {lo} was dropped already")
        out = self._buf[lo - self._start : max(0, hi - self._start)]
        if len(out) < hi - lo:
            if not self.done:
                raise ValueError(f"samples up to {hi} are not read yet (fill first)")
            out = np.concatenate([out, np.zeros(hi - lo - len(out), dtype=np.float32)])
        return out

    def drop(self, lo: int) -> None:
        if lo > self._start:
            self._buf = self._buf[lo - self._start :].copy()
            self._start = lo


def audio_info(path: str | os.PathLike) -> tuple[int, int, float]:
    """(sample rate, channels, duration in seconds) without decoding."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:
        raise BadInput(path, f"cannot read audio ({str(e).strip().splitlines()[0][:120]})") from None
    return int(info.samplerate), int(info.channels), float(info.duration)


def save_audio(path: str | os.PathLike, wav: np.ndarray, sr: int, subtype: str | None = None) -> None:
    """Write (N,) or (N, C) audio atomically; the format follows the suffix."""
    import soundfile as sf

    wav = np.asarray(wav, dtype=np.float32)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wav, sr, subtype=subtype, format=Path(path).suffix.lstrip(".").upper() or "WAV")


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS
