"""Shared test setup: quiet output, few threads, and a helper to run the real `voxtool` command."""

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
