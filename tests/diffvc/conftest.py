"""Shared diffvc fixtures: a synthetic parallel multi-speaker corpus with MFA-style TextGrids, and the datasets
`voxtool prep diffvc` makes from it (phone targets and k-means targets). Session-scoped: built once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import seeded
from voxtool.tasks.diffvc import synth

N_SPEAKERS = 4
N_UTTS = 5
UNSEEN = "spk3"


@pytest.fixture(scope="session")
def diffvc_corpus(tmp_path_factory) -> synth.Corpus:
    """4 voices x 5 utterances, every voice saying the same 5 contents (same timing), 22.05 kHz wavs under
    `root/<spk>/utt<k>.wav`, TextGrids under `root.parent / "textgrids"/<spk>/utt<k>.TextGrid`."""
    base = tmp_path_factory.mktemp("diffvc_corpus")
    return synth.write_corpus(base / "corpus", N_SPEAKERS, N_UTTS, seeded(11), textgrids=base / "textgrids")


def _prep(corpus: synth.Corpus, out: Path, **kw):
    from voxtool.tasks.diffvc.prep import PrepOptions, prepare

    opts = PrepOptions(unseen=[UNSEEN], valid_fraction=0.2, seed=seeded(0), **kw)
    return prepare(corpus.root, out, opts)


@pytest.fixture(scope="session")
def diffvc_phone_dataset(diffvc_corpus, tmp_path_factory) -> Path:
    """`prep diffvc` with --alignments (phone targets), speaker spk3 unseen, 20 % validation."""
    out = tmp_path_factory.mktemp("diffvc_phones") / "data"
    _prep(diffvc_corpus, out, alignments=diffvc_corpus.root.parent / "textgrids")
    return out


@pytest.fixture(scope="session")
def diffvc_kmeans_dataset(diffvc_corpus, tmp_path_factory) -> Path:
    """`prep diffvc --avg-units kmeans --clusters 12`, same splits."""
    out = tmp_path_factory.mktemp("diffvc_kmeans") / "data"
    _prep(diffvc_corpus, out, avg_units="kmeans", clusters=12)
    return out
