"""`voxtool prep softvc`: the dataset layout, the vocoder's exact mels, f0 against the synthetic voice's known f0,
bad files skipped with reasons, parallel = serial, and the output folder rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import run_voxtool, seeded
from voxtool.errors import BadInput
from voxtool.tasks.softvc import synth
from voxtool.tasks.softvc.prep import FORMAT, UNIT_HOP, collect_sources, prep_softvc, trim_silence


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three 1.6 s synthetic singing clips (one at 22.05 kHz in a sub-folder), a silent, a short and a broken file."""
    root = tmp_path_factory.mktemp("wavs")
    seed = seeded(40)
    melodies = {}
    for i in range(3):
        phones, melody = synth.corpus_item(seed, i, 1.6)
        wav = synth.render(phones, melody, synth.voice(0), noise_seed=i)
        wav = np.concatenate([np.zeros(3200, np.float32), wav, np.zeros(3200, np.float32)])  # 0.2 s silence each side
        if i == 2:
            from voxtool.audio.io import resample

            (root / "sub").mkdir()
            sf.write(root / "sub" / "c.wav", resample(wav, 16000, 22050), 22050)
        else:
            sf.write(root / f"{'ab'[i]}.wav", wav, 16000)
        melodies[i] = synth.frame_f0(phones, melody)
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(root / "short.wav", synth.render(seed, np.full(10, 200.0), synth.voice(0)), 16000)
    (root / "broken.wav").write_bytes(b"RIFF nothing")
    return root, melodies


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("ds") / "out"
    report = prep_softvc([root], out, valid_fraction=0.34, seed=3)
    return out, report


def test_layout_and_shapes(prepared, corpus):
    out, report = prepared
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["format"] == FORMAT and meta["format_version"] == 1
    assert meta["sample_rate"] == 16000 and meta["unit_hop"] == 320 and meta["content"] is None
    assert meta["mel"]["hop_length"] == 160 and meta["mel"]["n_mels"] == 128
    stats = meta["stats"]
    sung = np.concatenate(list(corpus[1].values()))
    sung = sung[sung > 0]
    semitone = 2 ** (1 / 12)  # the f0 range is harvest's 1st-99th percentile: within the sung range (+- a semitone)
    assert sung.min() / semitone < stats["f0_min_hz"] < stats["f0_max_hz"] < sung.max() * semitone
    assert stats["f0_max_hz"] / stats["f0_min_hz"] > np.percentile(sung, 90) / np.percentile(sung, 10)
    assert stats["dynamics_bins"] == 32
    assert stats["pitch_bins"] >= 2 and stats["rms_max"] > stats["rms_min"] >= 0
    lists = {s: (out / f"{s}.txt").read_text().split() for s in ("train", "valid")}
    assert sorted(lists["train"] + lists["valid"]) == ["items/a.npz", "items/b.npz", "items/sub/c.npz"]
    assert len(lists["valid"]) == 1 and report.written == {"train": 2, "valid": 1}
    for rel in lists["train"] + lists["valid"]:
        with np.load(out / rel) as z:
            n = len(z["f0"])
            assert z["audio"].dtype == np.float32 and len(z["audio"]) == n * UNIT_HOP
            assert z["mel"].shape == (2 * n, 128) and z["rms"].shape == (n,)
            assert "units" not in z.files
            # trimmed: of the 0.2 s of silence on each side at most one 2048-sample trim window is left
            assert 0.8 * 16000 <= len(z["audio"]) <= 1.6 * 16000 + 2 * 2048 + 320


def test_mel_is_the_vocoders_exact_mel(prepared):
    from voxtool.vocoders.mel import VocoderLogMel
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    out, _ = prepared
    with np.load(out / "items/a.npz") as z:
        ref = VocoderLogMel(MEL_16K_BSHALL)(torch.from_numpy(z["audio"])).numpy().T
        np.testing.assert_allclose(z["mel"], ref, atol=1e-5)
        rms = np.sqrt(np.mean(z["audio"].reshape(-1, 320).astype(np.float64) ** 2, axis=1))
        np.testing.assert_allclose(z["rms"], rms, rtol=1e-5, atol=1e-7)


def test_f0_follows_the_known_melody(prepared, corpus):
    """harvest's f0 at the unit frames against the synthetic voice's known f0: a wrong hop or offset (frame i vs
    the frame centre, 10 vs 20 ms) breaks this; the trimmed head is found by aligning the two voicing tracks."""
    out, _ = prepared
    _, melodies = corpus
    with np.load(out / "items/a.npz") as z:
        f0 = z["f0"]
    known = np.concatenate([np.zeros(10, np.float32), melodies[0], np.zeros(10, np.float32)])  # the 0.2 s pads
    best = None
    for lag in range(0, 21):  # frames trimmed at the start (trim works in 512-sample steps)
        ref = known[lag : lag + len(f0)]
        both = (ref > 0) & (f0[: len(ref)] > 0)
        if both.sum() < 20:
            continue
        cents = np.abs(1200 * np.log2(f0[: len(ref)][both] / ref[both]))
        if best is None or np.median(cents) < best[0]:
            best = (float(np.median(cents)), lag, float(both.mean()))
    assert best is not None and best[0] < 30, best  # median error in cents on frames voiced in both
    assert best[2] > 0.4  # and most frames are voiced in both


def test_bad_files_are_skipped_with_reasons(prepared):
    out, report = prepared
    reasons = {p.split("/")[-1]: r for p, r in report.skipped}
    assert set(reasons) == {"silent.wav", "short.wav", "broken.wav"}
    assert reasons["silent.wav"] == "silent" and "too short" in reasons["short.wav"]
    assert "cannot read audio" in reasons["broken.wav"]
    meta = json.loads((out / "dataset.json").read_text())
    assert {s["input"].split("/")[-1] for s in meta["skipped"]} == set(reasons)


def test_two_workers_write_the_same_dataset(prepared, corpus, tmp_path):
    out, _ = prepared
    root, _ = corpus
    prep_softvc([root], tmp_path / "par", valid_fraction=0.34, seed=3, workers=2)
    assert (tmp_path / "par" / "valid.txt").read_text() == (out / "valid.txt").read_text()
    for rel in ("items/a.npz", "items/sub/c.npz"):
        with np.load(out / rel) as a, np.load(tmp_path / "par" / rel) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_trim_and_sources(tmp_path):
    x = np.zeros(16000 * 2, np.float32)
    x[8000:24000] = 0.3 * np.sin(np.arange(16000) / 5)
    y = trim_silence(x, 50)
    assert 16000 <= len(y) <= 16000 + 2 * 2048
    assert len(trim_silence(x, 0)) == len(x)
    for name in ("x.wav", "y.flac"):
        sf.write(tmp_path / name, x, 16000)
    assert [s.rel for s in collect_sources([str(tmp_path / "*.wav"), tmp_path / "y.flac"])] == ["x", "y"]
    with pytest.raises(BadInput, match="matches no audio"):
        collect_sources([str(tmp_path / "*.mp3")])


def test_cli_prep_and_the_output_folder_rules(corpus, tmp_path):
    root, _ = corpus
    out = tmp_path / "ds"
    r = run_voxtool("prep", "softvc", str(root / "a.wav"), str(root / "b.wav"), str(out), "--json",
                    "--valid-fraction", "0.5")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["items"] == {"train": 1, "valid": 1}
    r = run_voxtool("prep", "softvc", str(root / "a.wav"), str(out))  # a re-run into its own dataset is fine
    assert r.returncode == 0, r.stderr
    r = run_voxtool("prep", "softvc", str(root), str(root))  # never into the input folder
    assert r.returncode == 2 and "error:" in r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = run_voxtool("prep", "softvc", str(root / "a.wav"), str(other))
    assert r.returncode == 2 and "not a softvc dataset" in r.stderr
    assert (other / "notes.txt").read_text() == "mine"
    r = run_voxtool("prep", "softvc", str(root / "silent.wav"), str(tmp_path / "none"))
    assert r.returncode == 2 and "no usable audio" in r.stderr
    assert not (tmp_path / "none" / "dataset.json").exists()
    r = run_voxtool("prep", "softvc", str(root / "a.wav"), str(tmp_path / "x"), "--f0", "rmvpe")
    assert r.returncode == 2 and "--f0-model" in r.stderr
    r = run_voxtool("prep", "softvc", str(root / "a.wav"), str(tmp_path / "x"), "--workers", "0")
    assert r.returncode == 2
