"""`voxtool prep diffvc`: the item layout (mel exactly as HiFi-GAN 22.05 kHz, GE2E d-vector, average-voice target),
dataset.json, splits, exclusions, corpus layouts and the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.diffvc.conftest import N_SPEAKERS, N_UTTS, UNSEEN
from voxtool.datasets import PreparedDataset
from voxtool.tasks.diffvc import avg_voice, corpus


def _dataset(root) -> PreparedDataset:
    return PreparedDataset(root, format="voxtool-diffvc-dataset", task="diffvc", version_key="format_version",
                           max_version=1)


def test_items_hold_the_published_features(diffvc_corpus, diffvc_phone_dataset):
    from voxtool.audio.io import load_audio
    from voxtool.encoders.ge2e import load_ge2e
    from voxtool.vocoders.mel import MEL_22K_JIK876, VocoderLogMel

    ds = _dataset(diffvc_phone_dataset)
    assert ds.meta["mel"] == MEL_22K_JIK876.model_dump() and ds.meta["avg_units"] == "phones"
    u = diffvc_corpus.utterances[1]
    item = np.load(diffvc_phone_dataset / "items" / u.speaker / f"{u.wav.stem}.npz")
    assert sorted(item.files) == ["avg_mel", "embed", "mel", "speaker", "spk_embed"]
    wav = load_audio(u.wav, 22050)
    mel = VocoderLogMel(MEL_22K_JIK876)(torch.from_numpy(wav[: len(wav) // 256 * 256])).numpy()
    assert item["mel"].dtype == np.float32 and item["mel"].shape == (80, len(wav) // 256)
    np.testing.assert_allclose(item["mel"], mel, atol=1e-5)
    assert item["avg_mel"].shape == item["mel"].shape and item["avg_mel"].dtype == np.float32
    data, sr = sf.read(u.wav, dtype="float32")
    np.testing.assert_allclose(item["embed"], load_ge2e().embed_utterance(data, sr), atol=1e-5)
    assert item["embed"].shape == (256,) and item["spk_embed"].shape == (256,)
    assert str(item["speaker"]) == u.speaker


def test_phone_targets_are_the_corpus_modes(diffvc_corpus, diffvc_phone_dataset):
    """Recomputed independently from the items' mels and the TextGrids (seen speakers only): same vectors, and
    every aligned frame of every item carries its phone's vector."""
    from scipy import stats

    meta = _dataset(diffvc_phone_dataset).meta
    medians: dict[str, list] = {}
    for u in diffvc_corpus.utterances:
        if u.speaker == UNSEEN:
            continue
        mel = np.load(diffvc_phone_dataset / "items" / u.speaker / f"{u.wav.stem}.npz")["mel"]
        for s, e, p in avg_voice.read_phone_intervals(u.textgrid):
            a, b = int(s * 22050) // 256, min(int(e * 22050) // 256 + 1, mel.shape[1])
            medians.setdefault(p, []).append(np.round(np.median(mel[:, a:b], axis=1), 1))
    assert sorted(medians) == meta["units"]
    for p, rows in medians.items():
        np.testing.assert_allclose(meta["unit_stats"][p]["vector"], stats.mode(np.stack(rows), axis=0).mode,
                                   atol=1e-6)
        assert meta["unit_stats"][p]["segments"] == len(rows)
    for u in diffvc_corpus.utterances:
        avg = np.load(diffvc_phone_dataset / "items" / u.speaker / f"{u.wav.stem}.npz")["avg_mel"]
        s, e, p = u.intervals[2]
        a, b = int(s * 22050) // 256 + 1, int(e * 22050) // 256  # inside the interval, clear of the overlaps
        assert b - a >= 3 and np.abs(avg[:, a:b] - np.asarray(meta["unit_stats"][p]["vector"])[:, None]).max() < 1e-5


def test_splits(diffvc_phone_dataset):
    ds = _dataset(diffvc_phone_dataset)
    train, valid, unseen = ds.entries("train"), ds.entries("valid"), ds.entries("unseen")
    assert len(unseen) == N_UTTS and all(e.startswith(f"items/{UNSEEN}/") for e in unseen)
    assert not set(train) & set(valid) and len(train) + len(valid) == (N_SPEAKERS - 1) * N_UTTS
    assert len(valid) == round(0.2 * len(train + valid))
    assert all((diffvc_phone_dataset / e).is_file() for e in train + valid + unseen)
    assert ds.meta["speakers"][UNSEEN]["split"] == "unseen" and ds.meta["splits"]["unseen"] == N_UTTS
    from voxtool.tasks.diffvc.data import DiffvcItems  # the training side reads what prep wrote

    for split, n in (("train", len(train)), ("unseen", N_UTTS)):
        items = DiffvcItems(diffvc_phone_dataset, split, 80, with_avg=True)
        assert len(items) == n and items[0].avg_mel.shape == items[0].mel.shape
    names = [f"s{k}" for k in range(10)]
    assert corpus.split_speakers(names, None, 0.3, 5) == corpus.split_speakers(names, None, 0.3, 5)
    assert len(corpus.split_speakers(names, None, 0.3, 5)) == 3
    assert corpus.split_speakers(names, None, 0.3, 5) != corpus.split_speakers(names, None, 0.3, 6)
    assert len(corpus.split_speakers(["a", "b"], None, 0.9, 0)) == 1  # never every speaker


def test_kmeans_dataset(diffvc_corpus, diffvc_kmeans_dataset):
    ds = _dataset(diffvc_kmeans_dataset)
    assert ds.meta["avg_units"] == "kmeans" and len(ds.meta["units"]) <= 12
    km = ds.meta["kmeans"]
    # units one voice dominates are dropped (with VTLN none are, on four corpora; without, 1-4 of 12), the rest kept
    assert len(km["centers"]) == len(km["ids"]) == 12 - len(km["dropped"]) >= 6
    assert all(share > 2 / 3 for share in km["dropped"].values())
    # one VTLN factor per speaker, the unseen one included, following the voices' tract lengths
    voices = {v.name: v.formant_scale for v in diffvc_corpus.voices}
    assert set(km["vtln"]) == set(voices)
    seen = [n for n in voices if n != UNSEEN]
    mean = np.exp(np.mean(np.log([voices[n] for n in seen])))
    for name, scale in voices.items():
        assert km["vtln"][name] == pytest.approx(scale / mean, rel=0.06)  # measured within 3.5 %
    vectors = np.array([ds.meta["unit_stats"][k]["vector"] for k in ds.meta["units"]])
    for entry in ds.entries("train")[:3] + ds.entries("unseen")[:2]:
        avg = np.load(diffvc_kmeans_dataset / entry)["avg_mel"]
        # every frame is one unit's vector (units cover every frame)
        assert np.abs(avg.T[:, None, :] - vectors[None]).max(-1).min(-1).max() < 1e-6


def _tiny_corpus(tmp_path):
    from voxtool.tasks.diffvc import synth

    return synth.write_corpus(tmp_path / "c", 2, 3, 0, textgrids=tmp_path / "tg", spn_utts=1)


def test_cli_excludes_with_reasons_and_refuses_bad_options(tmp_path, capfd):
    from voxtool.cli import main

    c = _tiny_corpus(tmp_path)
    (c.utterances[2].textgrid).unlink()  # a missing TextGrid (spk1 has one of that name: not to be taken)
    (c.root / "spk1" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    shutil.copy(c.utterances[4].textgrid, tmp_path / "tg" / "spk1" / "broken.TextGrid")
    capfd.readouterr()
    code = main(["prep", "diffvc", str(c.root), str(tmp_path / "out"), "--alignments", str(tmp_path / "tg"),
                 "--valid-fraction", "0", "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    reasons = {s["input"].rsplit("/", 1)[-1] + "@" + s["input"].split("/")[-2]: s["reason"] for s in summary["skipped"]}
    assert "unknown-word phones (spn)" in reasons["utt000.wav@spk0"]
    assert "unknown-word phones (spn)" in reasons["utt000.wav@spk1"]
    assert "no TextGrid" in reasons["utt002.wav@spk0"]
    assert "cannot read audio" in reasons["broken.wav@spk1"]
    assert summary["splits"] == {"train": 3, "valid": 0, "unseen": 0}
    skipped = json.loads((tmp_path / "out" / "dataset.json").read_text())["skipped"]
    assert len(skipped) == 4

    for args, message in [
        ([], "need --alignments"),
        (["--alignments", str(tmp_path / "tg"), "--unseen", "nobody"], "no speaker folder named nobody"),
        (["--avg-units", "words"], "choose phones or kmeans"),
        (["--avg-units", "kmeans", "--clusters", "1"], "--clusters"),
    ]:
        capfd.readouterr()
        code = main(["prep", "diffvc", str(c.root), str(tmp_path / "out2"), *args])
        err = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], (args, err)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    capfd.readouterr()
    assert main(["prep", "diffvc", str(c.root), str(tmp_path / "other"), "--avg-units", "kmeans"]) == 2
    assert "not a diffvc dataset" in capfd.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_corpus_layouts(tmp_path):
    def touch(rel):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.zeros(10, np.float32), 16000)

    for rel in ["L/train-clean-100/19/198/19_198_000000_000000.wav", "L/dev-clean/84/121/84_121_000001_000000.wav",
                "L/train-clean-100/19/227/19_227_000002_000000.wav"]:
        touch(rel)
    c = corpus.discover(tmp_path / "L")
    assert c.layout == "libritts" and c.speakers == ["19", "84"]
    assert [u.name for u in c.utterances] == ["19_198_000000_000000", "19_227_000002_000000", "84_121_000001_000000"]

    for rel in ["V/wav48_silence_trimmed/p225/p225_001_mic1.flac", "V/wav48_silence_trimmed/p225/p225_001_mic2.flac",
                "V/wav48_silence_trimmed/p226/p226_002_mic1.flac", "V/txt/p225/p225_001.txt"]:
        touch(rel) if rel.endswith(".flac") else None
    c = corpus.discover(tmp_path / "V")
    assert c.layout == "vctk" and c.speakers == ["p225", "p226"]
    assert [u.name for u in c.utterances] == ["p225_001_mic2", "p226_002_mic1"]  # mic2 where there is one
    assert [r for _, r in c.ignored] == ["the other microphone (keeping mic2)"]

    for rel in ["F/anna/a/take.wav", "F/anna/b/take.wav", "F/anna/solo.flac", "F/loose.wav", "F/.hidden/x.wav"]:
        touch(rel)
    c = corpus.discover(tmp_path / "F")
    assert c.layout == "folders" and c.speakers == ["anna"]
    assert sorted(u.name for u in c.utterances) == ["a_take", "b_take", "solo"]  # clashing stems made unique
    assert c.ignored == [(str(tmp_path / "F" / "loose.wav"), "not inside a speaker folder")]


def test_workers_and_reruns_give_the_same_dataset(tmp_path):
    from voxtool.tasks.diffvc.prep import PrepOptions, prepare

    c = _tiny_corpus(tmp_path)
    for name, workers in (("one", 1), ("two", 2), ("two", 2)):  # the last one re-runs into a finished dataset
        prepare(c.root, tmp_path / name, PrepOptions(alignments=tmp_path / "tg", workers=workers, valid_fraction=0.3))
    meta = [json.loads((tmp_path / n / "dataset.json").read_text()) for n in ("one", "two")]
    assert meta[0]["unit_stats"] == meta[1]["unit_stats"] and meta[0]["splits"] == meta[1]["splits"]
    for n in ("train", "valid", "unseen"):
        assert (tmp_path / "one" / f"{n}.txt").read_text() == (tmp_path / "two" / f"{n}.txt").read_text()
    for path in sorted((tmp_path / "one" / "items").rglob("*.npz")):
        a, b = np.load(path), np.load(tmp_path / "two" / path.relative_to(tmp_path / "one"))
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_kmeans_cli_reports_vtln_and_workers_agree(tmp_path, capfd):
    """`--avg-units kmeans` on the command line: one VTLN factor per speaker (geometric mean 1) in the summary and
    dataset.json, none with --no-vtln; two workers write the same dataset as one."""
    from voxtool.cli import main

    c = _tiny_corpus(tmp_path)
    runs = {"one": ["--workers", "1"], "two": ["--workers", "2"], "plain": ["--no-vtln"]}
    summaries = {}
    for name, extra in runs.items():
        capfd.readouterr()
        code = main(["prep", "diffvc", str(c.root), str(tmp_path / name), "--avg-units", "kmeans", "--clusters", "4",
                     "--json", *extra])
        captured = capfd.readouterr()
        assert code == 0, captured.err
        summaries[name] = json.loads(captured.out)
    factors = summaries["one"]["vtln"]
    assert set(factors) == {"spk0", "spk1"} and np.prod(list(factors.values())) == pytest.approx(1.0, abs=1e-3)
    assert factors["spk0"] != factors["spk1"]  # the two voices' tracts differ
    assert summaries["plain"]["vtln"] is None
    assert json.loads((tmp_path / "one" / "dataset.json").read_text())["kmeans"]["vtln"] == factors
    for path in sorted((tmp_path / "one" / "items").rglob("*.npz")):
        a, b = np.load(path), np.load(tmp_path / "two" / path.relative_to(tmp_path / "one"))
        np.testing.assert_array_equal(a["avg_mel"], b["avg_mel"])
