"""Scores of the acoustic model and of conversions (numpy; librosa for DTW, WORLD for f0).

- `mel_l1(a, b)`: mean |a - b| of two log-mels of the same length (bshall's validation measure).
- `mcd_dtw(ref, test)`: mel-cepstral distortion in dB between two log-mels (frames, n_mels) of possibly different
  lengths, aligned by DTW: cepstra = DCT-II (orthonormal) of the natural-log amplitude mel, c1..c24 (c0, the
  loudness, left out); MCD = mean over the DTW path of (10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2). An MFCC-style
  MCD on the bshall mel, levels floored 60 dB below the reference's peak: compare values with each other, not
  with SPTK mcep-based MCDs of papers.
- `f0_agreement(src_f0, out_f0)`: Pearson correlation of log-f0 on frames voiced in both, the median absolute
  error in cents there, and the voicing agreement.
- `bin_accuracy(ref_bins, out_bins, mask)`: fraction of frames (where `mask`) with equal bins.
- `frame_f0(audio)`: WORLD harvest at 20 ms frames (the 50 Hz unit rate), 0 = unvoiced.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

N_CEPS = 24
RANGE_DB = 60.0  # MCD: mel levels more than this below the reference peak count as that level
F0_HOP_MS = 20.0  # the unit rate: one f0 per 320 samples at 16 kHz


def mel_l1(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.mean(np.abs(np.asarray(a[:n], np.float64) - np.asarray(b[:n], np.float64))))


def mel_cepstra(log_mel: np.ndarray, n_ceps: int = N_CEPS, floor: float | None = None) -> np.ndarray:
    """(frames, n_mels) natural-log amplitude mel -> (n_ceps, frames) cepstra c1..c_n_ceps; with `floor`, mel
    values below it are raised to it first."""
    import scipy.fft

    log_mel = np.asarray(log_mel, np.float64)
    if floor is not None:
        log_mel = np.maximum(log_mel, floor)
    return scipy.fft.dct(log_mel.T, type=2, norm="ortho", axis=0)[1:n_ceps + 1]


def mcd_dtw(reference: np.ndarray, test: np.ndarray, n_ceps: int = N_CEPS, range_db: float = RANGE_DB) -> float:
    """MCD in dB between log-mels (frames, n_mels), DTW-aligned (librosa.sequence.dtw, Euclidean cost). Both mels
    are floored `range_db` below the reference's peak, so differences in inaudible valleys (the log floor of
    1e-5 against a model's smooth -8) do not swamp the score."""
    import librosa

    floor = float(np.max(reference)) - range_db * math.log(10.0) / 20.0
    a, b = mel_cepstra(reference, n_ceps, floor), mel_cepstra(test, n_ceps, floor)
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    diff = a[:, path[:, 0]] - b[:, path[:, 1]]
    return float(np.mean(10.0 / math.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=0))))


def frame_f0(audio: np.ndarray, sr: int = 16000, f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
    """(T,) audio -> (T // 320,) f0 in Hz per 20 ms frame by WORLD harvest, 0 = unvoiced."""
    from voxtool.pitch import estimate_f0

    n = len(audio) * 50 // sr
    _, f0, _ = estimate_f0(np.asarray(audio, np.float32), sr, method="harvest", hop_ms=F0_HOP_MS, f0_min=f0_min,
                           f0_max=f0_max)
    return np.pad(f0[:n], (0, max(0, n - len(f0)))).astype(np.float32)


class F0Agreement(NamedTuple):
    correlation: float  # Pearson r of log-f0 on frames voiced in both (NaN: fewer than 3 such frames or flat)
    median_cents: float  # median |1200 log2(out / src)| there
    voicing: float  # fraction of frames with the same voiced/unvoiced decision
    frames: int  # frames voiced in both


def f0_agreement(source_f0: np.ndarray, output_f0: np.ndarray) -> F0Agreement:
    n = min(len(source_f0), len(output_f0))
    src, out = np.asarray(source_f0[:n], np.float64), np.asarray(output_f0[:n], np.float64)
    both = (src > 0) & (out > 0)
    voicing = float(np.mean((src > 0) == (out > 0))) if n else float("nan")
    if both.sum() < 3:
        return F0Agreement(float("nan"), float("nan"), voicing, int(both.sum()))
    ls, lo = np.log2(src[both]), np.log2(out[both])
    r = float(np.corrcoef(ls, lo)[0, 1]) if ls.std() > 0 and lo.std() > 0 else float("nan")
    return F0Agreement(r, float(np.median(np.abs(1200 * (lo - ls)))), voicing, int(both.sum()))


def bin_accuracy(reference: np.ndarray, predicted: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of frames (where `mask`, default all) whose predicted bin equals the reference bin."""
    n = min(len(reference), len(predicted))
    ref, pred = np.asarray(reference[:n]), np.asarray(predicted[:n])
    keep = np.ones(n, bool) if mask is None else np.asarray(mask[:n], bool)
    return float(np.mean(ref[keep] == pred[keep])) if keep.any() else float("nan")
