"""Pitch and dynamics bins for hubert-pitdyn (numpy only).

hubert-pitdyn quantised f0 to one bin per semitone above the corpus minimum and frame RMS to 32 linear bins, with
statistics the user copied into `class hp` by hand and no unvoiced bin (yin always gives an f0). Here the statistics
are computed by prep (`PitchDynStats.from_arrays`) and written to `dataset.json`, and bin 0 means unvoiced.

All arrays are per 320-sample frame at 16 kHz (50 Hz, aligned with the HuBERT units).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

DYNAMICS_BINS = 32
F0_PERCENTILES = (1.0, 99.0)  # the f0 range of a corpus: these percentiles of its voiced frames (from_arrays)
UNVOICED_BIN = 0


def steady_f0(f0: np.ndarray, radius: int = 8, max_semitones: float = 3.0) -> np.ndarray:
    """The voiced values of one f0 track (N,) (Hz, 0 = unvoiced) within `max_semitones` of the median of the voiced
    frames around them (+-`radius` frames, judged where at least 3 are voiced): drops the octave jumps trackers
    make, mostly at voicing edges. The window is +-160 ms at 50 Hz frames, so runs of up to 8 wrong frames are
    outvoted (harvest's octave-down runs on synthetic singing last 3-6 frames: +-2 frames let them set the 1st
    percentile on 2 of 6 corpora, +-8 on none)."""
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    if not voiced.any():
        return f0[:0]
    log = np.where(voiced, np.log2(np.where(voiced, f0, 1.0)), np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(log, radius, constant_values=np.nan), 2 * radius + 1)
    with np.errstate(all="ignore"):
        local = np.nanmedian(windows[voiced], axis=1)
    judged = np.sum(~np.isnan(windows[voiced]), axis=1) >= 3  # a frame with fewer voiced neighbours is kept as is
    keep = ~judged | (np.abs(log[voiced] - local) * 12 <= max_semitones)
    return f0[voiced][keep]


@dataclass(frozen=True)
class PitchDynStats:
    """Corpus statistics that define the bins.

    f0_min_hz/f0_max_hz: range of voiced f0 over the training set; rms_min/rms_max: range of linear frame RMS.
    """

    f0_min_hz: float
    f0_max_hz: float
    rms_min: float
    rms_max: float
    dynamics_bins: int = DYNAMICS_BINS
    f0_method: str = "harvest"

    def __post_init__(self) -> None:
        if not (0 < self.f0_min_hz <= self.f0_max_hz):
            raise ValueError(f"f0 range must satisfy 0 < f0_min_hz <= f0_max_hz, got {self.f0_min_hz}, {self.f0_max_hz}")
        if not (0 <= self.rms_min <= self.rms_max):
            raise ValueError(f"rms range must satisfy 0 <= rms_min <= rms_max, got {self.rms_min}, {self.rms_max}")
        if self.dynamics_bins < 2:
            raise ValueError(f"dynamics_bins must be >= 2, got {self.dynamics_bins}")

    @property
    def pitch_bins(self) -> int:
        """Number of pitch classes: bin 0 = unvoiced, bins 1.. = whole semitones above f0_min_hz (both ends in)."""
        return 2 + math.ceil(12 * math.log2(self.f0_max_hz / self.f0_min_hz) - 1e-9)

    @classmethod
    def from_arrays(
        cls, f0s: list[np.ndarray], rmss: list[np.ndarray], f0_method: str = "harvest",
        dynamics_bins: int = DYNAMICS_BINS,
    ) -> PitchDynStats:
        """Statistics over a corpus: `f0s` are per-item f0 tracks in Hz (0 = unvoiced), `rmss` linear RMS tracks.

        The f0 range is the F0_PERCENTILES (1st and 99th, nearest frame) of the voiced frames that agree with their
        neighbours (`steady_f0`), not their extremes: a pitch tracker's stray octave errors at voicing edges (harvest
        read a 90-450 Hz corpus as 53.7-730 Hz; 2 % of the frames of a short clip) would otherwise stretch the bins
        and the explicit log-f0 scale over pitches nobody sang. A corpus with no voiced frame at
        all gets a nominal 50-1000 Hz range (every frame then lands in bin 0).
        """
        voiced = [steady_f0(f) for f in f0s if f.size]
        voiced_all = np.concatenate(voiced) if voiced else np.zeros(0, np.float32)
        if voiced_all.size:
            lo, hi = np.percentile(voiced_all, F0_PERCENTILES, method="nearest")
            f0_min, f0_max = float(lo), float(hi)
        else:
            f0_min, f0_max = 50.0, 1000.0
        rms_all = np.concatenate([r for r in rmss if r.size]) if any(r.size for r in rmss) else np.zeros(1)
        rms_min, rms_max = float(max(rms_all.min(), 0.0)), float(max(rms_all.max(), 0.0))
        if rms_max <= rms_min:  # all-silent (or constant) corpus: keep a non-empty range
            rms_max = rms_min + 1e-6
        return cls(f0_min, f0_max, rms_min, rms_max, dynamics_bins=dynamics_bins, f0_method=f0_method)

    def to_dict(self) -> dict:
        """JSON-ready dict (the `stats` section of dataset.json); includes `pitch_bins` for readers."""
        d = asdict(self)
        d["pitch_bins"] = self.pitch_bins
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PitchDynStats:
        """Inverse of `to_dict` (derived fields such as `pitch_bins` and unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def pitch_to_bins(f0_hz: np.ndarray, stats: PitchDynStats, shift_semitones: float = 0.0) -> np.ndarray:
    """(N,) f0 in Hz (0 = unvoiced) -> (N,) int64 bins: 0 unvoiced, else 1 + round(semitones above f0_min + shift),
    clipped to [1, pitch_bins - 1]. `shift_semitones` is the key shift (`convert --key`)."""
    f0 = np.asarray(f0_hz, dtype=np.float64)
    voiced = f0 > 0
    semis = 12.0 * np.log2(np.where(voiced, f0, stats.f0_min_hz) / stats.f0_min_hz) + shift_semitones
    bins = np.clip(1 + np.round(semis), 1, stats.pitch_bins - 1).astype(np.int64)
    return np.where(voiced, bins, UNVOICED_BIN).astype(np.int64)


def bins_to_pitch(bins: np.ndarray, stats: PitchDynStats) -> np.ndarray:
    """Inverse of `pitch_to_bins` up to rounding: (N,) int bins -> (N,) f0 in Hz at bin centres, 0 for bin 0."""
    b = np.asarray(bins, dtype=np.float64)
    f0 = stats.f0_min_hz * 2.0 ** ((b - 1) / 12.0)
    return np.where(b > 0, f0, 0.0).astype(np.float32)


def rms_to_bins(rms: np.ndarray, stats: PitchDynStats) -> np.ndarray:
    """(N,) linear RMS -> (N,) int64 in [0, dynamics_bins - 1]: `dynamics_bins` equal-width bins over
    [rms_min, rms_max], as hubert-pitdyn's int(32 * (rms - min) / (max - min)), clipped."""
    r = np.asarray(rms, dtype=np.float64)
    span = max(stats.rms_max - stats.rms_min, 1e-12)
    bins = np.floor(stats.dynamics_bins * (r - stats.rms_min) / span)
    return np.clip(bins, 0, stats.dynamics_bins - 1).astype(np.int64)


def bins_to_rms(bins: np.ndarray, stats: PitchDynStats) -> np.ndarray:
    """(N,) dynamics bins -> (N,) linear RMS at bin centres."""
    width = (stats.rms_max - stats.rms_min) / stats.dynamics_bins
    return (stats.rms_min + (np.asarray(bins, dtype=np.float64) + 0.5) * width).astype(np.float32)
