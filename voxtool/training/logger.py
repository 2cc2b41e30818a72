"""Rank-0 metric logging: metrics.jsonl plus TensorBoard event files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from voxtool.fileio import write_text_atomic


class MetricLogger:
    def __init__(self, run_dir: Path | None, enabled: bool = True):
        self.enabled = enabled and run_dir is not None
        self.run_dir = run_dir
        self._writer = None
        self._opened = False

    def _tensorboard(self):
        """The event writer, made at the first row: a run that fails before training leaves no event file."""
        if not self._opened:
            self._opened = True
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.run_dir))
            except ImportError:  # tensorboard missing: jsonl still works
                self._writer = None
        return self._writer

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        record = {"step": step, "time": round(time.time(), 3), **{k: float(v) for k, v in values.items()}}
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard() is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, float(value), step)
            self._writer.flush()

    def audio(self, step: int, clips: dict) -> None:
        """{tag: (waveform (N,), sample_rate)} as TensorBoard audio (jsonl holds numbers only)."""
        if not self.enabled or not clips or self._tensorboard() is None:
            return
        import torch

        for tag, (wave, sr) in clips.items():
            wave = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1).clamp(-1, 1)
            self._writer.add_audio(tag, wave, step, sample_rate=int(sr))
        self._writer.flush()

    def truncate(self, step: int) -> None:
        """Drop metrics.jsonl rows after `step`: a run killed after its last checkpoint logged steps that the
        resumed run will log again. (TensorBoard keeps both; it shows the later value.)"""
        path = self.run_dir / "metrics.jsonl" if self.enabled else None
        if path is None or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except (ValueError, KeyError, TypeError):  # a row cut short by kill -9
                pass
        if len(kept) != len(lines):
            write_text_atomic(path, "".join(kept))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
