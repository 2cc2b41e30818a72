"""The acoustic model's input features (numpy, shared by training and conversion) and the pitch representations the
explicit model derives from them inside the network (torch).

- `conditioning_features(items, conditioning, stats, key_shift)`: the ONE place model inputs are built;
- `explicit_features`: normalised log-f0, voiced flag, normalised loudness per 50 Hz frame;
- `pitch_code`: log-f0 -> a 64-bin Gaussian code (the explicit side path, `encoder.side`);
- `harmonic_template`: f0 -> the log of its harmonic comb seen through the mel filter bank (`decoder.harmonic`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from voxtool.tasks.softvc.config import PITCH_CODE_BINS


def pitch_code(log_f0: torch.Tensor, voiced: torch.Tensor, bins: int = PITCH_CODE_BINS) -> torch.Tensor:
    """Normalised log-f0 (..., ) (0 = f0_min, 1 = f0_max, as `explicit_features` makes it) and the voiced flag (..., )
    -> (..., bins): a Gaussian bump (sigma one bin, peak 1) over `bins` log-spaced pitch centres, all zeros when
    unvoiced; pitches outside the range are clipped to its ends (so-vits-svc's coarse f0, smoothed). A key shift
    moves the bump, so each bin can map to its own harmonic pattern."""
    pos = log_f0.clamp(0, 1).unsqueeze(-1) * (bins - 1)
    centres = torch.arange(bins, dtype=log_f0.dtype, device=log_f0.device)
    return torch.exp(-0.5 * (centres - pos) ** 2) * (voiced.unsqueeze(-1) > 0.5)


HARMONIC_WIDTH_HZ = 12.0  # std of each harmonic's peak: the 1024-sample Hann window's main lobe (+-31 Hz) as a Gaussian
HARMONIC_FLOOR = 1e-3  # the template's log floor (between harmonics)


def harmonic_template(f0_hz: torch.Tensor, basis: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """f0 (..., F) in Hz (<= 0 unvoiced) -> (..., F, n_mels): the log of a harmonic comb (a Gaussian of
    HARMONIC_WIDTH_HZ at every multiple of f0 up to Nyquist) seen through the mel filter bank `basis`
    (n_mels, n_fft // 2 + 1), each band normalised by its filter's area, so 0 = a band full of harmonic peaks and
    log(HARMONIC_FLOOR) = none; all zeros on unvoiced frames. The source part of a source-filter model: the network
    adds the envelope, the comb puts the harmonics where f0 (shifted by the key) says."""
    freqs = torch.arange(n_fft // 2 + 1, dtype=f0_hz.dtype, device=f0_hz.device) * (sample_rate / n_fft)
    voiced = f0_hz > 0
    f0 = torch.where(voiced, f0_hz, torch.ones_like(f0_hz)).unsqueeze(-1)
    order = torch.round(freqs / f0)
    comb = torch.exp(-0.5 * ((freqs - order * f0) / HARMONIC_WIDTH_HZ) ** 2) * (order >= 1)
    bands = comb @ basis.T / basis.sum(dim=1).clamp_min(1e-8)
    return torch.log(bands + HARMONIC_FLOOR) * voiced.unsqueeze(-1)


LOUDNESS_RANGE_DB = 60.0  # loudness is normalised over [loudest - 60 dB, loudest] -> [0, 1]


def _stat(stats: Any, name: str) -> float:
    value = stats.get(name) if isinstance(stats, Mapping) else getattr(stats, name, None)
    if value is None:
        raise ValueError(f"dataset statistics lack '{name}' (re-run `voxtool prep softvc`)")
    return float(value)


def explicit_features(f0_hz: np.ndarray, rms: np.ndarray, stats: Any, key_shift: float = 0.0) -> np.ndarray:
    """(N,) f0 in Hz (0 = unvoiced) and linear RMS at 50 Hz -> (N, 3) float32:
    log-f0 scaled so f0_min -> 0 and f0_max -> 1 (shifted by `key_shift` semitones; 0 on unvoiced frames), the voiced
    flag, and loudness in dB scaled so rms_max -> 1 and 60 dB below it -> 0 (clipped at 0). `stats`: the dataset's
    `PitchDynStats` or its dict from dataset.json."""
    f0_lo, f0_hi = _stat(stats, "f0_min_hz"), _stat(stats, "f0_max_hz")
    rms_hi = max(_stat(stats, "rms_max"), 1e-5)
    f0 = np.asarray(f0_hz, dtype=np.float64)
    voiced = f0 > 0
    log_f0 = np.zeros_like(f0)
    span = max(math.log(f0_hi / f0_lo), 1e-3)
    log_f0[voiced] = (np.log(f0[voiced] / f0_lo) + key_shift * math.log(2) / 12) / span
    db = 20 * np.log10(np.maximum(np.asarray(rms, dtype=np.float64), 1e-5) / rms_hi)
    loud = np.clip(db / LOUDNESS_RANGE_DB + 1.0, 0.0, None)
    return np.stack([log_f0, voiced.astype(np.float64), loud], axis=1).astype(np.float32)


def conditioning_features(items: Mapping[str, np.ndarray], conditioning: str, stats: Any = None,
                          key_shift: float = 0.0) -> np.ndarray:
    """The acoustic model's input (N, in_dim) float32 from one item's arrays (a prepared .npz or what conversion
    computed): `units` (N, U) always; `pitch_units` and `dynamics_units` (N, 256) for "pitdyn"; `f0` (N,) Hz and
    `rms` (N,) for "explicit" (with `stats`). The one place training and conversion build inputs.

    `key_shift` (semitones) moves the log-f0 of voiced frames ("explicit" only): "none" has no pitch input, and the
    pitdyn streams are continuous HuBERT outputs of the audio, so their shift belongs upstream (shift the audio the
    pitch HuBERT hears). ValueError names what is missing or refused.
    """
    if "units" not in items:
        raise ValueError("no content units (prepare the dataset with --content HUBERT)")
    units = np.asarray(items["units"], dtype=np.float32)
    if units.ndim != 2:
        raise ValueError(f"units must be (frames, dim), got shape {units.shape}")
    n = units.shape[0]
    if key_shift and conditioning != "explicit":
        raise ValueError(f"a key shift needs explicit pitch conditioning; this model's conditioning is '{conditioning}'")
    if conditioning == "none":
        return units
    if conditioning == "pitdyn":
        parts = [units]
        for name in ("pitch_units", "dynamics_units"):
            if name not in items:
                raise ValueError(f"no {name} (pitdyn needs prep --pitch-units and --dynamics-units)")
            stream = np.asarray(items[name], dtype=np.float32)
            if stream.ndim != 2 or stream.shape[0] != n:
                raise ValueError(f"{name} has shape {stream.shape}; expected ({n}, dim) like the units")
            parts.append(stream)
        return np.concatenate(parts, axis=1)
    if conditioning == "explicit":
        if stats is None:
            raise ValueError("explicit conditioning needs the dataset statistics (f0 and loudness ranges)")
        for name in ("f0", "rms"):
            if name not in items:
                raise ValueError(f"no {name} for explicit conditioning")
            if np.shape(items[name]) != (n,):
                raise ValueError(f"{name} has shape {np.shape(items[name])}; expected ({n},) like the units")
        return np.concatenate([units, explicit_features(items["f0"], items["rms"], stats, key_shift)], axis=1)
    raise ValueError(f"unknown conditioning {conditioning!r} (none | pitdyn | explicit)")
