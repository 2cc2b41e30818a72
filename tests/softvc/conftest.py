"""softvc test fixtures: a prepared softvc dataset of formant-synthesised voices, written directly in the npz layout
of `voxtool prep softvc` (audio, f0 known from the synthesis, frame RMS; no units, no mel), so the hubert tests
need neither prep nor a content encoder. Other softvc fixtures are appended below."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import seeded
from voxtool.tasks.softvc import synth
from voxtool.tasks.softvc.bins import PitchDynStats


def write_npz_dataset(out: Path, n_items: int, seed: int, seconds: tuple[float, float] = (1.5, 3.0),
                      voices: int = 3, valid: int = 4) -> Path:
    """`n_items` utterances (voices 0..voices-1 in turn) as a softvc dataset; the last `valid` items held out."""
    rng = np.random.default_rng(seed)
    (out / "items").mkdir(parents=True, exist_ok=True)
    names, f0s, rmss = [], [], []
    for i in range(n_items):
        phones, melody = synth.corpus_item(seed, i, float(rng.uniform(*seconds)))
        audio = synth.render(phones, melody, synth.voice(i % voices), noise_seed=seed + i)
        f0 = synth.frame_f0(phones, melody)
        rms = np.sqrt(np.mean(audio.reshape(-1, 320) ** 2, axis=1)).astype(np.float32)
        name = f"items/utt{i:03d}.npz"
        np.savez(out / name, audio=audio, f0=f0, rms=rms)
        names.append(name)
        f0s.append(f0)
        rmss.append(rms)
    stats = PitchDynStats.from_arrays(f0s[:-valid], rmss[:-valid], f0_method="synthetic")
    meta = {"format": "voxtool-softvc-dataset", "format_version": 1, "voxtool_version": "test", "sample_rate": 16000,
            "unit_hop": 320, "content": None, "pitch_units": None, "dynamics_units": None,
            "stats": stats.to_dict(), "items": n_items, "skipped": []}
    (out / "dataset.json").write_text(json.dumps(meta))
    (out / "train.txt").write_text("\n".join(names[:-valid]) + "\n")
    (out / "valid.txt").write_text("\n".join(names[-valid:]) + "\n")
    return out


@pytest.fixture(scope="session")
def voices_data(tmp_path_factory) -> Path:
    """40 synthetic utterances of 3 voices (1.5-3 s), 8 held out."""
    return write_npz_dataset(tmp_path_factory.mktemp("softvc_voices") / "data", 40, seeded(11), valid=8)
