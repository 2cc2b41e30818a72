"""Rank-0 metric logging: metrics.jsonl plus TensorBoard event files."""

from __future__ import annotations

import json
import time
from pathlib import Path


class MetricLogger:
    def __init__(self, run_dir: Path | None, enabled: bool = True):
        self.enabled = enabled and run_dir is not None
        self.run_dir = run_dir
        self._writer = None
        if self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(run_dir))
            except ImportError:  # tensorboard missing: jsonl still works
                self._writer = None

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        record = {"step": step, "time": round(time.time(), 3), **{k: float(v) for k, v in values.items()}}
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, float(value), step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
