"""diffvc end to end on the command line: synthetic speakers with TextGrids -> prep diffvc --alignments -> train
diffvc-encoder (tiny) -> train diffvc --encoder (tiny) -> convert diffvc (a folder reference) -> wavs of the
sources' durations at 22.05 kHz. (eval diffvc runs in test_convert.py's learning test, in-process.)"""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from tests.conftest import run_voxtool, seeded
from voxtool.tasks.diffvc import synth


@pytest.mark.slow
def test_prep_train_both_stages_convert(tmp_path):
    corpus = synth.write_corpus(tmp_path / "corpus", 4, 3, seeded(5), textgrids=tmp_path / "tg")
    data, runs = tmp_path / "data", tmp_path / "runs"

    def ok(*args):
        proc = run_voxtool(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    ok("prep", "diffvc", str(corpus.root), str(data), "--alignments", str(tmp_path / "tg"),
       "--unseen", "spk2,spk3", "--valid-fraction", "0.2", "-q")
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["avg_units"] == "phones" and meta["speakers"]["spk3"]["split"] == "unseen"
    ok("train", "diffvc-encoder", str(data), "--preset", "diffvc-encoder-tiny", "--steps", "4",
       "--runs-dir", str(runs), "--exp", "enc", "-q", "--set", "train.batch_size=2")
    ok("train", "diffvc", str(data), "--encoder", str(runs / "enc"), "--preset", "diffvc-tiny", "--steps", "3",
       "--runs-dir", str(runs), "--exp", "dec", "-q", "--set", "train.batch_size=2", "--set", "data.crop_frames=32")
    sources = [u.wav for u in corpus.utterances if u.speaker == "spk0"][:2]
    proc = ok("convert", "diffvc", *map(str, sources), "--ref", str(corpus.root / "spk1"), "--model",
              str(runs / "dec"), "--vocoder", "griffinlim", "--out", str(tmp_path / "out"), "--steps", "3", "--json")
    rows = json.loads(proc.stdout)
    assert len(rows) == 2
    for src, row in zip(sources, rows):
        out = sf.info(row["output"])
        assert out.samplerate == 22050 and out.frames == sf.info(src).frames  # synth writes 22.05 kHz
