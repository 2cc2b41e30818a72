"""f0 with WORLD (pyworld): harvest (robust, slow) or dio + stonemask (fast); the no-model pitch estimator.

Shapes: audio (N,) float; f0 (T,) Hz on a `hop_ms` grid (frame i at i * hop_ms), 0 = unvoiced.
"""

from __future__ import annotations

import numpy as np

METHODS = ("harvest", "dio")


def world_f0(
    wav: np.ndarray, sr: int, hop_ms: float = 10.0, f0_min: float = 50.0, f0_max: float = 1100.0,
    method: str = "harvest",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(N,) float audio -> (times (T,), f0 Hz (T,), 0 = unvoiced) on a `hop_ms` grid."""
    import pyworld

    x = np.ascontiguousarray(wav, dtype=np.float64)
    if method == "harvest":
        f0, t = pyworld.harvest(x, sr, f0_floor=f0_min, f0_ceil=f0_max, frame_period=hop_ms)
    elif method == "dio":
        f0, t = pyworld.dio(x, sr, f0_floor=f0_min, f0_ceil=f0_max, frame_period=hop_ms)
        f0 = pyworld.stonemask(x, f0, t, sr)
    else:
        raise ValueError(f"unknown f0 method {method!r} (harvest or dio)")
    return t.astype(np.float64), f0.astype(np.float32)


def pitch_shift_world(wav: np.ndarray, sr: int, semitones: float, hop_ms: float = 5.0) -> np.ndarray:
    """Shift the pitch of (N,) audio by `semitones` keeping the spectral envelope (WORLD analysis/synthesis)."""
    import pyworld

    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, t = pyworld.dio(x, sr, frame_period=hop_ms)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    y = pyworld.synthesize(f0 * 2.0 ** (semitones / 12.0), sp, ap, sr, frame_period=hop_ms)
    return y[: len(wav)].astype(np.float32)
