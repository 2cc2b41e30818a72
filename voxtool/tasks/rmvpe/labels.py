"""Pitch label readers: MIR-1K/Hybrid ``.pv`` (semitones), ``.csv`` (time,f0), ``.f0`` text and ``.npy``.

Every reader returns ``(times_s [K], f0_hz [K])`` with 0 = unvoiced; ``labels_on_grid`` puts them on the
model's frame grid (10 ms for the published settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxtool.pitch.decode import resample_f0

LABEL_SUFFIXES = (".pv", ".csv", ".f0", ".npy")
MAX_F0_HZ = 3000.0  # anything above is not a singing/speech fundamental


class LabelError(ValueError):
    """A label file that cannot be used (the prep command skips the item with this reason)."""


def midi_to_hz(notes: np.ndarray) -> np.ndarray:
    """MIDI note numbers (0 = unvoiced) -> Hz (0 = unvoiced)."""
    notes = np.asarray(notes, dtype=np.float64)
    return np.where(notes > 0, 440.0 * 2.0 ** ((notes - 69.0) / 12.0), 0.0)


def _read_numbers(path: Path) -> np.ndarray:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").replace("\t", " ").split()
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            if rows:  # a header is only allowed on the first line
                raise LabelError(f"not a number in line: {line[:40]!r}") from None
    if not rows:
        raise LabelError("label file is empty")
    width = {len(r) for r in rows}
    if len(width) != 1:
        raise LabelError("rows have different numbers of columns")
    return np.asarray(rows, dtype=np.float64)


def guess_hop(n_values: int, duration_s: float, first_frame: int, candidates=(0.01, 0.02)) -> float:
    """The label hop (s) among ``candidates`` that best explains ``n_values`` values over the audio."""
    if n_values <= 0:
        raise LabelError("label file is empty")
    implied = duration_s / (n_values + first_frame)
    best = min(candidates, key=lambda h: abs(np.log(implied / h)))
    if abs(np.log(implied / best)) > np.log(1.25):
        raise LabelError(
            f"{n_values} labels do not fit {duration_s:.2f} s of audio at a 10 or 20 ms hop (give --label-hop-ms)"
        )
    return best


def read_labels(path: Path, duration_s: float, label_hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one label file -> (times_s, f0_hz).

    ``.pv``: one MIDI note per line, line n (1-based) at n * hop (MIR-1K: 20 ms; the Hybrid set: 10 ms).
    ``.csv`` / ``.f0``: two columns time,f0 (Hz), or one column of f0 at ``label_hop_s`` from t = 0.
    ``.npy``: ``[K]`` f0 at ``label_hop_s`` from t = 0, or ``[K, 2]`` time,f0.
    ``label_hop_s`` None guesses 10 or 20 ms from the audio duration.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False).astype(np.float64)
        else:
            data = _read_numbers(path)
    except (OSError, ValueError) as exc:
        if isinstance(exc, LabelError):
            raise
        raise LabelError(f"cannot read labels ({str(exc).splitlines()[0][:80]})") from None
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if suffix == ".pv":
        if data.ndim != 1:
            raise LabelError(".pv files hold one note number per line")
        hop = label_hop_s or guess_hop(len(data), duration_s, first_frame=1)
        return (np.arange(len(data)) + 1) * hop, midi_to_hz(data)
    if data.ndim == 1:
        hop = label_hop_s or guess_hop(len(data), duration_s, first_frame=0)
        return np.arange(len(data)) * hop, data
    if data.ndim == 2 and data.shape[1] >= 2:
        times, f0 = data[:, 0], data[:, 1]
        if np.any(np.diff(times) <= 0):
            raise LabelError("label times are not increasing")
        return times, f0
    raise LabelError(f"unexpected label array shape {data.shape}")


def check_labels(times: np.ndarray, f0: np.ndarray, duration_s: float) -> None:
    """Raise LabelError for negative / absurd f0 or labels far from the audio length."""
    if not np.all(np.isfinite(f0)):
        raise LabelError("f0 contains NaN or infinite values")
    if np.any(f0 < 0):
        raise LabelError(f"negative f0 ({f0.min():.1f} Hz)")
    if np.any(f0 > MAX_F0_HZ):
        raise LabelError(f"absurd f0 ({f0.max():.0f} Hz > {MAX_F0_HZ:.0f})")
    if not np.any(f0 > 0):
        raise LabelError("no voiced frames")
    span = float(times[-1]) if len(times) else 0.0
    tolerance = max(0.5, 0.1 * duration_s)
    if abs(span - duration_s) > tolerance:
        raise LabelError(f"labels span {span:.2f} s but the audio is {duration_s:.2f} s")


def labels_on_grid(times: np.ndarray, f0: np.ndarray, hop_s: float, n_out: int) -> np.ndarray:
    """Put labels on the frame grid ``i * hop_s`` (i < n_out); frames outside the labelled span are unvoiced.

    Log-f0 interpolation inside voiced runs only (voicing from the nearest label), as ``resample_f0``.
    """
    times = np.asarray(times, dtype=np.float64)
    f0 = np.asarray(f0, dtype=np.float64)
    if len(times) > 1 and np.allclose(np.diff(times), times[1] - times[0], rtol=1e-3):
        src_hop = float(times[1] - times[0])
        # Shift so that the source grid starts at t = 0 (prepend unvoiced frames for the offset).
        lead = int(round(times[0] / src_hop))
        grid_f0 = np.concatenate([np.zeros(lead), f0]) if lead > 0 else f0
        out = resample_f0(grid_f0, src_hop, hop_s, n_out).astype(np.float64)
        last = (lead + len(f0) - 1) * src_hop + src_hop / 2
    else:
        # Irregular times: nearest-label voicing, log interpolation between voiced neighbours.
        t_new = np.arange(n_out) * hop_s
        idx = np.clip(np.searchsorted(times, t_new), 1, len(times) - 1)
        left_closer = (t_new - times[idx - 1]) < (times[idx] - t_new)
        nearest = np.where(left_closer, idx - 1, idx)
        voiced = f0[nearest] > 0
        vt, vf = times[f0 > 0], np.log(f0[f0 > 0])
        out = np.where(voiced, np.exp(np.interp(t_new, vt, vf)) if len(vt) else 0.0, 0.0)
        last = times[-1] + (times[-1] - times[-2] if len(times) > 1 else hop_s) / 2
    t_new = np.arange(n_out) * hop_s
    out[t_new > last + 1e-9] = 0.0
    return out.astype(np.float32)
