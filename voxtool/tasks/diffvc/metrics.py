"""Speaker-similarity measures for conversion tests and `eval diffvc`.

- `cosine(a, b)`: GE2E d-vector cosine (the d-vectors are L2-normalised; DiffVC is conditioned on them, so a
  converted voice scoring high here is partly by construction).
- Mel-cepstral statistics, a measure DiffVC is NOT conditioned on: per frame, the DCT-II (orthonormal) of the
  log-mel, coefficients 1..`n_ceps` (c0, the loudness, is left out); a voice is summarised by the mean and standard
  deviation of those coefficients over its non-silent frames (frames within `active_db` of the loudest), and
  two summaries are compared by the Euclidean distance of the means plus that of the standard deviations.
  The spectral envelope (formants, vocal-tract length) and its variability show in these statistics; the
  linguistic content averages out over a few seconds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

N_CEPS = 24
ACTIVE_DB = 40.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_out, n_in), as scipy.fft.dct(type=2, norm='ortho') rows."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mel_cepstra(mel: np.ndarray, n_ceps: int = N_CEPS, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Log-mel (n_mels, F) (natural log of amplitude) -> cepstra (F_active, n_ceps) of its non-silent frames."""
    mel = np.asarray(mel, np.float64)
    ceps = (dct_matrix(mel.shape[0], n_ceps + 1) @ mel).T[:, 1:]  # (F, n_ceps), c0 dropped
    loudness_db = 20.0 / np.log(10.0) * np.log(np.exp(mel).mean(axis=0) + 1e-10)  # (F,)
    active = loudness_db >= loudness_db.max() - active_db
    return ceps[active]


class CepstralStats(NamedTuple):
    mean: np.ndarray  # (n_ceps,)
    std: np.ndarray  # (n_ceps,)
    frames: int


def cepstral_stats(mels: list[np.ndarray], n_ceps: int = N_CEPS) -> CepstralStats:
    """Pooled statistics of one voice over one or more log-mels (each (n_mels, F))."""
    ceps = np.concatenate([mel_cepstra(m, n_ceps) for m in mels], axis=0)
    return CepstralStats(ceps.mean(axis=0), ceps.std(axis=0), len(ceps))


def stats_distance(a: CepstralStats, b: CepstralStats) -> float:
    """|mean_a - mean_b| + |std_a - std_b| (Euclidean); 0 for identical statistics."""
    return float(np.linalg.norm(a.mean - b.mean) + np.linalg.norm(a.std - b.std))
