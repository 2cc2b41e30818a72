"""The whole softvc chain through the real `voxtool` command, offline from nothing: synthetic voices -> prep (no
content) -> train hubert-soft (hubert-tiny, MFCC k-means targets) -> prep --content -> train softvc (tiny,
explicit pitch) -> convert a folder -> wav files of the input's length (or the resampled length) -> eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_voxtool, seeded
from voxtool.tasks.softvc import synth


def ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_prep_train_convert_chain(tmp_path):
    seed = seeded(11)
    synth.write_corpus(tmp_path / "wavs", 8, synth.voice(1), seed, 1.5)
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--device", "cpu", "-q", "--seed", str(seed)]
    ok(run_voxtool("prep", "softvc", str(tmp_path / "wavs"), str(tmp_path / "ds0"), "--valid-fraction", "0.25"))
    ok(run_voxtool("train", "hubert-soft", str(tmp_path / "ds0"), "--preset", "hubert-tiny", "--targets", "mfcc",
                   "--steps", "20", "--exp", "hubert", *common))
    ok(run_voxtool("prep", "softvc", str(tmp_path / "wavs"), str(tmp_path / "ds"), "--content",
                   str(runs / "hubert"), "--valid-fraction", "0.25", "--workers", "2"))
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["content"]["unit_dim"] == 32
    with np.load(tmp_path / "ds" / "items" / "utt000.npz") as z:
        assert z["units"].shape == (len(z["f0"]), 32)
    ok(run_voxtool("train", "softvc", str(tmp_path / "ds"), "--preset", "softvc-tiny", "--conditioning", "explicit",
                   "--steps", "30", "--exp", "acoustic", *common))  # unit_dim 32 from dataset.json

    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    phones, melody = synth.corpus_item(seed + 1, 0, 1.3)
    wav = synth.render(phones, melody, synth.voice(0), noise_seed=3)
    sf.write(src / "one.wav", wav, 16000)
    from voxtool.audio.io import resample

    sf.write(src / "deep" / "two.flac", resample(wav[:17000], 16000, 44100), 44100)
    convert = ["--model", str(runs / "acoustic"), "--content", str(runs / "hubert"), "--vocoder", "griffinlim",
               "--device", "cpu"]
    ok(run_voxtool("convert", "softvc", str(src), "--out", str(tmp_path / "out"), "--key", "2", *convert))
    n_two = len(resample(sf.read(src / "deep" / "two.flac", dtype="float32")[0], 44100, 16000))
    for rel, n in (("one.wav", len(wav)), ("deep/two.wav", n_two)):
        y, sr = sf.read(tmp_path / "out" / rel, dtype="float32")
        assert sr == 16000 and len(y) == n and np.isfinite(y).all() and np.abs(y).max() > 1e-3
    ok(run_voxtool("convert", "softvc", str(src / "one.wav"), "--out", str(tmp_path / "r.wav"), "--sample-rate",
                   "48000", *convert))
    info = sf.info(tmp_path / "r.wav")
    assert info.samplerate == 48000 and info.frames == len(wav) * 3

    scores = json.loads(ok(run_voxtool("eval", "softvc", str(tmp_path / "ds"), "--model", str(runs / "acoustic"),
                                       "--device", "cpu", "--json")).stdout)
    assert scores["items"] == 2 and 0 < scores["mel_l1"] < 5
