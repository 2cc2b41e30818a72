"""hifigan test fixtures: synthetic harmonic clips (`voxtool.tasks.hifigan.synth`) and a prepared tiny dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import seeded
from voxtool.tasks.hifigan.synth import SR, harmonic_clip, write_clips  # noqa: F401  (the tests import them here)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips") / "wavs", 10, seeded(0))


@pytest.fixture(scope="session")
def tiny_data(clips, tmp_path_factory) -> Path:
    """A prepared hifigan-tiny dataset of the synthetic clips (in-process), 3 held out."""
    from voxtool.presets import load_config
    from voxtool.tasks.hifigan import data
    from voxtool.tasks.hifigan.config import HifiganConfig

    out = tmp_path_factory.mktemp("hifigan") / "data"
    config = load_config(HifiganConfig, "hifigan-tiny", task="hifigan")
    data.write_dataset(data.collect_audio([clips]), out, config, valid_fraction=0.3, seed=seeded(0))
    return out
