"""Synthetic voiced audio for tests, demos and the export's parity input: harmonic tones with vibrato and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000


def harmonic_clip(rng: np.random.Generator, seconds: float, sr: int = SR) -> np.ndarray:
    """(N,) float32: a voiced tone (f0 110-300 Hz, 4-6 Hz vibrato, decaying harmonics, an amplitude envelope)
    plus a little white noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(110, 300) * 2 ** (rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(4, 6) * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tilt = rng.uniform(0.6, 1.2)
    wav = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**tilt for k in range(1, 12) if k * f0.max() < sr / 2)
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fades
    wav = 0.3 * wav * envelope + rng.uniform(0.002, 0.02) * rng.standard_normal(len(t))
    return wav.astype(np.float32)


def write_clips(folder: Path, n: int, seed: int, sr: int = SR, seconds: tuple[float, float] = (1.0, 2.0)) -> Path:
    """`n` clips `clip00.wav`, ... of random length in `seconds` into `folder` (created); returns `folder`."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sf.write(folder / f"clip{i:02d}.wav", harmonic_clip(rng, rng.uniform(*seconds), sr), sr)
    return folder
