"""rmvpe test fixtures: synthetic prepared datasets and a tiny model trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TRAIN_SEED, seeded
from voxtool.tasks.rmvpe.synth import write_csv_dataset

TINY_STEPS = 80


@pytest.fixture(scope="session")
def pitch_data(tmp_path_factory) -> Path:
    """Prepared dataset from synthetic harmonic tones (wav + time,f0 csv in the {train,test} layout)."""
    from voxtool.tasks.rmvpe import data

    root = tmp_path_factory.mktemp("pitch")
    write_csv_dataset(root / "src", n_train=16, n_test=6, seed=seeded(0))
    sources = data.pitch_sources(root / "src")
    data.split_sources(sources, None, 0.1, seeded(0))
    data.write_dataset(sources, root / "data")
    return root / "data"


@pytest.fixture(scope="session")
def tiny_run(pitch_data, tmp_path_factory) -> Path:
    """A run folder of rmvpe-tiny trained for TINY_STEPS steps on ``pitch_data`` (in-process)."""
    from voxtool.options import TrainOptions
    from voxtool.tasks.rmvpe.train import RmvpeConfig, RmvpeTrainTask
    from voxtool.training.run import train_from_options

    runs = tmp_path_factory.mktemp("runs")
    opts = TrainOptions(exp="tiny", runs_dir=runs, preset="rmvpe-tiny", device="cpu", steps=TINY_STEPS, quiet=True)
    train_from_options(RmvpeTrainTask, RmvpeConfig, pitch_data, opts, default_preset="rmvpe-tiny",
                       overrides=["train.valid_every=1000", f"train.seed={seeded(TRAIN_SEED)}"])
    return runs / "tiny"
