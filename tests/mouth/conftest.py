"""Shared synthetic data for the mouth tests: a small corpus, its prepared dataset and one trained tiny model.

Session-scoped so the whole folder synthesises and trains once (the folder must stay within ~3 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TRAIN_SEED, seeded
from voxtool.tasks.mouth.synth import TRAIN_SINGERS, UNSEEN_SINGER, SynthTake, make_corpus, synth_take, write_take

TRAIN_STEPS = 150


@dataclass
class Corpus:
    src: Path
    data: Path
    unseen_wav: Path
    unseen_take: SynthTake  # ground truth of the held-out take of the unseen singer


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    from voxtool.tasks.mouth.data import prepare_lipsync

    root = tmp_path_factory.mktemp("mouth")
    src = root / "src"
    make_corpus(src, TRAIN_SINGERS, takes_per_singer=2, duration=9.0, seed=seeded(1))
    make_corpus(src, [UNSEEN_SINGER], takes_per_singer=1, duration=9.0, seed=seeded(2))  # unseen split
    (src / "valid.txt").write_text("tenor/take_1/audio.wav\n", encoding="utf-8")
    (root / "unseen.txt").write_text("mezzo/\n", encoding="utf-8")
    data = root / "data"
    prepare_lipsync(src, data, unseen_list=root / "unseen.txt")
    # a held-out take of the unseen singer that is in no dataset at all, at 44.1 kHz
    take = synth_take(UNSEEN_SINGER, 10.0, seed=seeded(777))
    wav = write_take(root / "heldout" / "song", take, seed=seeded(777), file_sr=44100)
    return Corpus(src, data, wav, take)


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory) -> Path:
    """A mouth-tiny run trained for a few seconds on the corpus; returns its run folder."""
    from voxtool.cli import main

    runs = tmp_path_factory.mktemp("runs")
    code = main(["train", "mouth", str(corpus.data), "--preset", "mouth-tiny", "--exp", "tiny", "--runs-dir",
                 str(runs), "--device", "cpu", "--steps", str(TRAIN_STEPS), "--set", "train.valid_every=75",
                 "--seed", str(seeded(TRAIN_SEED)), "--quiet"])  # fmt: skip
    assert code == 0
    return runs / "tiny"


def truth_on(take: SynthTake, times: np.ndarray) -> np.ndarray:
    return np.interp(times, take.curve_t, take.opening)
