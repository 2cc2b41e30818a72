"""Vocal-tract length normalisation (VTLN) for the k-means average-voice units.

A longer vocal tract puts every formant lower by one factor, a warp of the frequency axis. Per-speaker mean and
variance normalisation of MFCCs does not undo a warp, so without VTLN k-means clusters partly by vocal-tract
length (docs/diffvc.md). Each speaker gets one warp factor `alpha`: its ln-mel is resampled so that the value
shown at frequency f is the one it had at alpha * f (alpha > 1: a short tract, formants pulled down to the
corpus's). The factors are fitted the classic way, on long-term average spectra: each speaker's mean ln-mel over
its voiced frames, detrended (mean and spectral tilt removed), warped to match the mean of the others, a few rounds,
then rescaled to a geometric mean of 1 so the corpus's own frequency axis stays put.

Shapes: ln-mel `mel` [n_mels, F]; bin centre frequencies `centers_hz` [n_mels].
"""

from __future__ import annotations

import numpy as np

WARP_GRID = np.geomspace(0.8, 1.25, 37)  # the factors tried: +-25 %, about 1.2 % apart
ACTIVE_RANGE = 4.0  # a frame is active when its mean ln-mel is within this many nats (~35 dB) of the loud frames'
FIT_ROUNDS = 4


def mel_centers_hz(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Centre frequencies [n_mels] of librosa's Slaney mel filters (the bank the HiFi-GAN mels use)."""
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=False)[1:-1].astype(np.float64)


def warp_mel(mel: np.ndarray, alpha: float, centers_hz: np.ndarray) -> np.ndarray:
    """ln-mel [n_mels, F] (or a spectrum [n_mels]) -> the same shape, bin b showing the value at alpha * f_b
    (linear interpolation between bins; beyond the top bin the top bin's value)."""
    pos = np.interp(alpha * centers_hz, centers_hz, np.arange(len(centers_hz), dtype=np.float64))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(centers_hz) - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (mel.ndim - 1))
    out = mel[lo] * (1.0 - w) + mel[hi] * w
    return out.astype(mel.dtype, copy=False)


def active_sum(mel: np.ndarray) -> tuple[np.ndarray, int]:
    """(sum [n_mels] of the active frames' ln-mel, their count): frames whose mean ln-mel is within ACTIVE_RANGE
    of the utterance's 95th percentile (silences and pauses would otherwise weigh in)."""
    level = mel.mean(axis=0)
    if level.size == 0:
        return np.zeros(mel.shape[0]), 0
    keep = level >= np.percentile(level, 95) - ACTIVE_RANGE
    return mel[:, keep].astype(np.float64).sum(axis=1), int(keep.sum())


def detrend(spectrum: np.ndarray) -> np.ndarray:
    """Spectrum [n_mels] minus its least-squares line over the bin index (level and tilt are not tract length)."""
    x = np.arange(len(spectrum), dtype=np.float64)
    slope, offset = np.polyfit(x, spectrum, 1)
    return spectrum - (slope * x + offset)


def _candidates(spectrum: np.ndarray, centers_hz: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """[len(grid), n_mels]: the detrended spectrum warped by every factor of the grid."""
    return np.stack([detrend(warp_mel(spectrum, a, centers_hz)) for a in grid])


def _best(candidates: np.ndarray, reference: np.ndarray, compare: np.ndarray) -> int:
    return int(np.argmin(np.square(candidates[:, compare] - reference[compare]).mean(axis=1)))


def _compared_bins(centers_hz: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return centers_hz <= centers_hz[-1] / float(np.max(grid))


def fit_warps(spectra: dict[str, np.ndarray], centers_hz: np.ndarray,
              grid: np.ndarray = WARP_GRID) -> tuple[dict[str, float], np.ndarray]:
    """Long-term average spectra {speaker: [n_mels]} -> ({speaker: alpha} with geometric mean 1, the reference
    [n_mels]: the speakers' mean warped, detrended spectrum, which `fit_warp` fits further speakers to).

    Only bins below fmax / max(grid) are compared, so no factor is judged on the clamped top of the axis. With one
    speaker there is nothing to normalise to: alpha = 1."""
    names = sorted(spectra)
    compare = _compared_bins(centers_hz, grid)
    warped = {n: _candidates(spectra[n], centers_hz, grid) for n in names}
    index = {n: int(np.argmin(np.abs(np.log(grid)))) for n in names}  # start at alpha = 1
    for _ in range(FIT_ROUNDS if len(names) > 1 else 0):
        for n in names:  # each speaker against the mean of the others as they stand
            index[n] = _best(warped[n], np.mean([warped[m][index[m]] for m in names if m != n], axis=0), compare)
    alphas = np.array([grid[index[n]] for n in names])
    alphas = alphas / np.exp(np.log(alphas).mean())
    reference = np.mean([detrend(warp_mel(spectra[n], a, centers_hz)) for n, a in zip(names, alphas, strict=True)],
                        axis=0)
    return {n: float(a) for n, a in zip(names, alphas, strict=True)}, reference


def fit_warp(spectrum: np.ndarray, reference: np.ndarray, centers_hz: np.ndarray,
             grid: np.ndarray = WARP_GRID) -> float:
    """One more speaker's factor against a fitted reference (an unseen speaker, without moving the seen ones)."""
    return float(grid[_best(_candidates(spectrum, centers_hz, grid), reference, _compared_bins(centers_hz, grid))])
