"""Spectral subtraction on a converted log-mel, as DiffVC's inference notebook offers (`--denoise`), done right.

The notebook's `mel_spectral_subtraction(mel_synth, mel_source, spectral_floor=0.02, silence_window=5,
smoothing_window=1)`:
1. finds the lowest-energy `silence_window`-frame window (energy = sum of exp(2 * log-mel));
2. takes, per mel bin, the minimum energy of the CONVERTED mel inside that window as the noise estimate
   (optionally smoothed across bins by a moving average of `smoothing_window` bins);
3. subtracts it from every frame's energy and floors the result at `spectral_floor` x the noise energy.
The notebook passes the converted mel as both arguments, so step 1 searches the output, whose pauses the
diffusion decoder fills with its own hiss. Here the window is searched on the SOURCE mel (the same frames: the
conversion keeps the length), where the silence really is. All of it is vectorised (the notebook loops per frame).
"""

from __future__ import annotations

import numpy as np

SPECTRAL_FLOOR = 0.02
SILENCE_WINDOW = 5
SMOOTHING_WINDOW = 1


def quietest_window(mel: np.ndarray, window: int = SILENCE_WINDOW) -> int:
    """Start frame of the `window`-frame stretch of `mel` (n_mels, F) with the least energy sum(exp(2 mel))."""
    frames = mel.shape[-1]
    if frames <= window:
        return 0
    energy = np.exp(2.0 * mel.astype(np.float64)).sum(axis=0)  # (F,)
    sums = np.convolve(energy, np.ones(window), mode="valid")  # (F - window + 1,)
    # the notebook scans starts 0 .. F - window - 1 (its range stops one short); keep that so results agree
    return int(np.argmin(sums[: frames - window]))


def spectral_subtraction(converted: np.ndarray, source: np.ndarray, spectral_floor: float = SPECTRAL_FLOOR,
                         silence_window: int = SILENCE_WINDOW, smoothing_window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Denoised copy of `converted` (n_mels, F) log-mel; the silence is located on `source` (n_mels, F).

    Returns float32 (n_mels, F). `spectral_floor` in (0, 1]: the fraction of the noise energy kept as a floor.
    """
    if converted.shape != source.shape:
        raise ValueError(f"converted mel {converted.shape} and source mel {source.shape} differ in shape")
    if not 0 < spectral_floor <= 1:
        raise ValueError(f"spectral_floor {spectral_floor} outside (0, 1]")
    start = quietest_window(source, silence_window)
    energy = np.exp(2.0 * converted.astype(np.float64))  # (n_mels, F)
    noise = energy[:, start:start + silence_window].min(axis=1)  # (n_mels,)
    if smoothing_window and smoothing_window > 1:
        noise = np.convolve(noise, np.ones(smoothing_window) / smoothing_window, mode="same")
    cleaned = np.maximum(energy - noise[:, None], spectral_floor * noise[:, None])
    return (0.5 * np.log(cleaned)).astype(np.float32)  # log(sqrt(energy))
