"""Validation metrics of the original (MSE on the normalised scale, MAE, R^2, Pearson r on target units)."""

from __future__ import annotations

import numpy as np


def curve_metrics(preds: list[np.ndarray], targets: list[np.ndarray], vmin: float, vmax: float) -> dict[str, float]:
    """Per-file predictions and targets (T_i,) in target units -> metrics.

    loss: MSE of normalised (clamped to [0, 1]) curves over all frames; mae: L1 averaged per file (as the
    original); r2: 1 - SSE/SST over all frames concatenated; pearson: r over all frames concatenated.
    """
    if not preds:
        return {}
    span = vmax - vmin
    norm = lambda y: np.clip((y - vmin) / span, 0.0, 1.0)  # noqa: E731
    p = np.concatenate(preds).astype(np.float64)
    t = np.concatenate(targets).astype(np.float64)
    mse = float(np.mean((norm(p) - norm(t)) ** 2))
    mae = float(np.mean([np.mean(np.abs(a - b)) for a, b in zip(preds, targets)]))
    sst = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum((t - p) ** 2)) / sst if sst > 0 else 0.0
    return {"loss": mse, "mae": mae, "r2": r2, "pearson": pearson(p, t)}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (0 when either input is constant)."""
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denom) if denom > 0 else 0.0
