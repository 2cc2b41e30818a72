"""What every task's `evaluate_dataset` returns: the split's mean metrics and one row per item.

Each task's `infer.py` (or `evaluate.py`) has

    evaluate_dataset(model, data: Path, split: str = <task default>, *, device: str = "cpu", limit: int = 0,
                     advance=None, **task_options) -> EvalResult

`model` is a model path / run folder (or an already loaded model, as that task's `load_model` returns), `limit`
caps the number of items (0 = all), and `advance(1)` is called after each item (a progress callback).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class EvalResult(NamedTuple):
    """`metrics`: means over the split, e.g. {'rpa': 0.97}; `items`: per-item rows, each with a 'name'."""

    metrics: dict[str, float]
    items: list[dict[str, Any]]
