"""Output formats of `voxtool infer mouth` (`--format`): what each file holds and how it is derived.

- `csv`: `time,mouth_opening` (s, target units), one row per frame of the `--fps` grid.
- `npy`: the float32 curve on that grid.
- `json`: `{"fps": N, "data": [...]}`, the original GUI's format (After Effects expressions read it).
- `arkit`: the original GUI's "ARKit 6 blendshape" CSV,
  `Frame,Time(s),jawOpen,mouthFunnel,mouthPucker,mouthStretchLeft,mouthStretchRight,mouthShrugUpper`, derived from
  the opening j (the curve clipped to [0, 1]), its velocity v = dj/dt (per second) and the spectral brightness
  c = clip((centroid - 500 Hz) / 3500 Hz, 0, 1) smoothed over 0.36 s, with the GUI's formulas:
      mouthFunnel = 1.5 j (1 - c)         mouthStretchLeft = mouthStretchRight = j c
      mouthPucker = 3 (0.2 - j) (1 - c) when 0.05 < j < 0.2, else 0
      mouthShrugUpper = 0.5 clip(0.1 v, 0, 1)
  Every channel is clipped to [0, 1] (the GUI let mouthFunnel reach 1.5, beyond ARKit's range).
- `lipssync`: LipsSync's own `mouth_data.csv` (`TimeStamp,jawOpen,mouthClose,LipsDistance`), so a predicted take
  replays in LipsSync's visualiser and reads back through `prep lipsync`. The curve is split by the model's
  target so that the target recomputed from the row equals the curve: for `jaw-minus-close`
  jawOpen = max(y, 0), mouthClose = max(-y, 0); for `jaw` and `jaw-times-open` jawOpen = y, mouthClose = 0; for
  `close` mouthClose = y; for `lips-distance` LipsDistance = y. LipsDistance is otherwise not predicted and
  written as 0 (the visualiser requires the column).

The spectral centroid is estimated from the model's own log-mel frames (no second pass over the audio): each
mel band's magnitude, weighted by the band's width, placed at the band's centre frequency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxtool.audio.mel_config import MelConfig
from voxtool.outputs import OutputFormats

FORMATS = OutputFormats(("csv", "npy", "json", "arkit", "lipssync"), extensions={"arkit": ".csv", "lipssync": ".csv"})
ARKIT_COLUMNS = ("Frame", "Time(s)", "jawOpen", "mouthFunnel", "mouthPucker", "mouthStretchLeft",
                 "mouthStretchRight", "mouthShrugUpper")  # fmt: skip
LIPSSYNC_COLUMNS = ("TimeStamp", "jawOpen", "mouthClose", "LipsDistance")
CENTROID_SMOOTH_S = 0.36  # the GUI's default centroid smoothing
CENTROID_LOW_HZ, CENTROID_SPAN_HZ = 500.0, 3500.0  # brightness 0 at 500 Hz, 1 at 4 kHz (the GUI's)
NEEDS_MEL = ("arkit",)  # formats that need the log-mel frames beside the curve


def spectral_centroid(log_mel: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """(n_mels, T) natural-log mel magnitudes -> (T,) spectral centroid in Hz of the magnitude spectrum.

    A Slaney-normalised filter k is a triangle T_k scaled by 1/width, so mel_k x width_k / peak is the band's share
    of the spectrum; the centroid is the average of the filters' centre frequencies under those shares."""
    from voxtool.audio.mel import mel_filters

    bank = mel_filters(cfg).astype(np.float64)  # (n_mels, n_fft // 2 + 1)
    hz = np.linspace(0.0, cfg.sample_rate / 2, bank.shape[1])
    area = bank.sum(axis=1)
    ok = area > 0
    centre = np.where(ok, (bank * hz).sum(axis=1) / np.where(ok, area, 1.0), 0.0)
    weight = np.where(ok, 1.0 / np.where(ok, bank.max(axis=1), 1.0), 0.0)  # 1 / peak = the triangle's scale
    share = np.exp(np.asarray(log_mel, np.float64)) * weight[:, None]
    total = share.sum(axis=0)
    return ((centre[:, None] * share).sum(axis=0) / np.maximum(total, 1e-12)).astype(np.float32)


def brightness_on_grid(centroid_hz: np.ndarray, frame_times: np.ndarray, native_fps: float,
                       times: np.ndarray) -> np.ndarray:
    """Native-rate centroid (T,) Hz -> brightness in [0, 1] on `times`: normalised, smoothed, interpolated."""
    from voxtool.tasks.mouth.infer import smooth_half_sine

    c = np.clip((centroid_hz - CENTROID_LOW_HZ) / CENTROID_SPAN_HZ, 0.0, 1.0).astype(np.float32)
    c = np.clip(smooth_half_sine(c, native_fps, CENTROID_SMOOTH_S), 0.0, 1.0)
    return np.interp(times, frame_times, c).astype(np.float32)


def arkit_channels(jaw: np.ndarray, brightness: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Opening (N,) and brightness (N,) on a grid of `fps` -> the six ARKit channels (N,) each, in [0, 1]."""
    j = np.clip(np.asarray(jaw, np.float64), 0.0, 1.0)
    c = np.clip(np.asarray(brightness, np.float64), 0.0, 1.0)
    velocity = np.gradient(j) * fps if len(j) > 1 else np.zeros_like(j)
    pucker = np.where((j > 0.05) & (j < 0.2), 3.0 * (0.2 - j) * (1.0 - c), 0.0)
    stretch = j * c
    channels = {
        "jawOpen": j,
        "mouthFunnel": 1.5 * j * (1.0 - c),
        "mouthPucker": pucker,
        "mouthStretchLeft": stretch,
        "mouthStretchRight": stretch,
        "mouthShrugUpper": 0.5 * np.clip(0.1 * velocity, 0.0, 1.0),
    }
    return {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in channels.items()}


def lipssync_columns(values: np.ndarray, target: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A curve in `target` units -> (jawOpen, mouthClose, LipsDistance) whose target recomputes to the curve."""
    y = np.asarray(values, np.float64)
    zero = np.zeros_like(y)
    if target == "lips-distance":
        return zero, zero, y
    if target == "close":
        return zero, y, zero
    if target in ("jaw", "jaw-times-open"):
        return y, zero, zero
    return np.maximum(y, 0.0), np.maximum(-y, 0.0), zero  # jaw-minus-close (the default target)


def write_curve(
    path: Path,
    times: np.ndarray,
    values: np.ndarray,
    fps: float,
    fmt: str,
    *,
    brightness: np.ndarray | None = None,
    target: str | None = None,
) -> None:
    """Atomically write one curve on its grid (`times` (N,) s, `values` (N,)) as `fmt` (see the module
    docstring). `arkit` needs `brightness` (N,) in [0, 1] (`brightness_on_grid`); `lipssync` uses `target`."""
    from voxtool.outputs import write_csv, write_json, write_npy

    fmt = FORMATS.check(fmt)
    if fmt == "csv":
        write_csv(path, ["time", "mouth_opening"], zip(times, values), ["{:.6f}", "{:.6f}"])
    elif fmt == "npy":
        write_npy(path, values)
    elif fmt == "json":
        fps_out: float | int = int(fps) if float(fps).is_integer() else fps
        write_json(path, {"fps": fps_out, "data": [round(float(v), 6) for v in values]})
    elif fmt == "arkit":
        if brightness is None:
            raise ValueError("the arkit format needs the brightness track")
        ch = arkit_channels(values, brightness, fps)
        rows = zip(range(len(times)), times, *(ch[name] for name in ARKIT_COLUMNS[2:]))
        write_csv(path, ARKIT_COLUMNS, rows, ["{}", "{:.4f}"] + ["{:.6f}"] * 6)
    else:
        jaw, close, lips = lipssync_columns(values, target)
        write_csv(path, LIPSSYNC_COLUMNS, zip(times, jaw, close, lips), ["{:.6f}", "{:.6f}", "{:.6f}", "{:.4f}"])
