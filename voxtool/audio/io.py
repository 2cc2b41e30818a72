"""Read any format libsndfile reads into mono float32 at a requested rate; write atomically."""

from __future__ import annotations

import os
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
