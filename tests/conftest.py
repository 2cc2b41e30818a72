"""Shared test setup: quiet output, few threads, a helper to run the real `voxtool` command, and the seed offset.

VOXTOOL_TEST_SEED (an integer, default 0) is added to every seed the learning fixtures and threshold tests use:
the synthetic corpora, the training seed (`train.seed`, default 1234) and the fresh evaluation audio. The default
reproduces the historical seeds; another value re-runs the whole suite on a different draw, e.g.

    VOXTOOL_TEST_SEED=1 .venv/bin/python -m pytest tests/pinyin/test_learning.py

Likewise OMP_NUM_THREADS (default 1 here, see `torch_threads`) sets torch's thread count for the whole run.

Thresholds on trained models are set against a trivial baseline (chance, an untrained model, a constant guess) with
a margin meant to hold for any seed, CPU and thread count (OMP_NUM_THREADS), not for one machine's numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VOXTOOL_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SEED = 1234  # TrainConfig's default train.seed


def seed_offset() -> int:
    """VOXTOOL_TEST_SEED as an int (0 when unset or empty)."""
    raw = os.environ.get("VOXTOOL_TEST_SEED", "").strip()
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise pytest.UsageError(f"VOXTOOL_TEST_SEED must be an integer, not {raw!r}") from None


def torch_threads() -> int:
    """Intra-op threads for torch in the test process: OMP_NUM_THREADS, which this file defaults to 1 (on 2 shared
    cores one thread is ~10x faster than two under contention); export it to re-run the suite with another count."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _apply_torch_threads() -> None:
    torch = sys.modules.get("torch")  # not imported yet: it will read OMP_NUM_THREADS itself
    if torch is not None and torch.get_num_threads() != torch_threads():
        torch.set_num_threads(torch_threads())


@pytest.fixture(autouse=True, scope="session")
def _torch_threads_for_the_session():
    """The run uses `torch_threads()`, whatever a test module set at import (some set 1 at module level, and
    collection imports them all before the first fixture runs). Session scope: before any module's training."""
    _apply_torch_threads()


@pytest.fixture(autouse=True)
def _torch_threads_for_each_test():
    _apply_torch_threads()


def seeded(base: int) -> int:
    """`base` shifted by VOXTOOL_TEST_SEED: every seed of a learning fixture or threshold test goes through here."""
    return base + seed_offset()


def run_voxtool(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600,
                extra_path: list[Path] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m voxtool ARGS` in a fresh process; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if extra_path:
        full_env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "voxtool", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


@pytest.fixture
def voxtool_cli():
    return run_voxtool


def fit_until_interrupted(trainer, step: int) -> None:
    """Run `trainer.fit()` and stop it the way Ctrl-C does when it arrives during optimiser step `step`: the
    SIGINT handler sets `_stop_signal`, the Trainer saves last.pt at that step and raises Interrupted."""
    from voxtool.errors import Interrupted

    def stop(ctx):
        if ctx.step + 1 == step:
            trainer._stop_signal = 2

    trainer.task.after_optimizer_step = stop
    with pytest.raises(Interrupted):
        trainer.fit()
