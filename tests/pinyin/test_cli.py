"""End to end through the real command: prep tsv -> train pinyin -> transcribe (CSV, JSON, TextGrid) -> eval."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_voxtool
from voxtool.tasks.pinyin import synth


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinyin_e2e")
    utts = synth.write_corpus(root / "corpus", 36, seed=1, speakers=6)
    prep = run_voxtool("prep", "tsv", str(root / "corpus" / "corpus.tsv"), str(root / "ds"), "--preset",
                       "pinyin-tiny", "--valid-frac", "0.2", "--test-frac", "0.2", "--workers", "2", "--json")
    assert prep.returncode == 0, prep.stderr
    train = run_voxtool("train", "pinyin", str(root / "ds"), "--preset", "pinyin-tiny", "--steps", "12",
                        "--exp", "e2e", "--runs-dir", str(root / "runs"), "--device", "cpu",
                        "--set", "train.valid_every=6", "--set", "train.batch_size=8")
    assert train.returncode == 0, train.stderr
    return {"root": root, "utts": utts, "prep": json.loads(prep.stdout), "run": root / "runs" / "e2e"}


def test_prep_summary_and_run_files(pipeline):
    splits = {s["split"]: s for s in pipeline["prep"]["splits"]}
    assert set(splits) == {"train", "valid", "test"}
    assert sum(s["utterances"] for s in splits.values()) == 36 and pipeline["prep"]["skipped"] == {}
    run = pipeline["run"]
    for name in ("config.toml", "last.pt", "model.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert "valid/ser" in (run / "metrics.jsonl").read_text()


def test_transcribe_mirrors_a_folder_to_csv(pipeline):
    root = pipeline["root"]
    r = run_voxtool("transcribe", "pinyin", str(root / "corpus"), "--model", str(pipeline["run"]),
                    "--out", str(root / "csv"), "--json")
    assert r.returncode == 0, r.stderr
    written = json.loads(r.stdout)
    assert len(written) == 36
    csv = root / "csv" / "spk0" / "utt0000.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "start,end,pinyin"
    for line in lines[1:]:
        start, end, _ = line.split(",")
        assert 0 <= float(start) < float(end)


def test_transcribe_with_lyrics_to_textgrid_and_beam_json(pipeline):
    from praatio import textgrid

    root = pipeline["root"]
    rel, text, segs = pipeline["utts"][0]
    (root / "lyrics.txt").write_text(text + "\n", encoding="utf-8")
    wav = root / "corpus" / rel
    r = run_voxtool("transcribe", "pinyin", str(wav), "--model", str(pipeline["run"]), "--text",
                    str(root / "lyrics.txt"), "--out", str(root / "a.TextGrid"))
    assert r.returncode == 0, r.stderr
    tg = textgrid.openTextgrid(str(root / "a.TextGrid"), includeEmptyIntervals=False)
    assert tg.tierNames == ("characters", "pinyin", "phones")
    chars = tg.getTier("characters").entries
    assert [e.label for e in chars] == [s.pinyin for s in segs]  # one interval per lyric character
    assert all(a.end <= b.start + 1e-6 for a, b in zip(chars, chars[1:], strict=False))
    assert len(tg.getTier("phones").entries) >= len(segs)

    r = run_voxtool("transcribe", "pinyin", str(wav), "--model", str(pipeline["run"]), "--beam", "4",
                    "--out", str(root / "b.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((root / "b.json").read_text(encoding="utf-8"))
    assert doc["aligned"] is False and "segments" in doc and doc["file"] == str(wav)


def test_eval_prints_error_rates(pipeline):
    r = run_voxtool("eval", "pinyin", str(pipeline["root"] / "ds"), "--model", str(pipeline["run"]), "--json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    assert {"ter", "ser", "ser_toneless", "blank_share", "utterances"} <= set(metrics)
    assert 0 <= metrics["ter"] and metrics["utterances"] > 0


def test_bad_inputs_exit_2_with_one_line(pipeline, tmp_path):
    root = pipeline["root"]
    r = run_voxtool("transcribe", "pinyin", str(tmp_path / "missing.wav"), "--model", str(pipeline["run"]))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "missing.wav" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_voxtool("prep", "aishell", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert r.returncode == 2 and "not this corpus" in r.stderr and r.stderr.strip().count("\n") == 0
    (tmp_path / "bad.txt").write_text("Hello", encoding="utf-8")
    r = run_voxtool("transcribe", "pinyin", str(root / "corpus" / "spk0" / "utt0000.wav"), "--model",
                    str(pipeline["run"]), "--text", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and "Latin letters" in r.stderr


@pytest.mark.slow
def test_two_rank_ddp_training(pipeline, tmp_path):
    """`--nproc-per-node 2` trains pinyin-tiny on 2 gloo ranks; rank 0 alone writes the run folder."""
    import torch

    r = run_voxtool("train", "pinyin", str(pipeline["root"] / "ds"), "--preset", "pinyin-tiny", "--steps", "4",
                    "--exp", "ddp", "--runs-dir", str(tmp_path), "--device", "cpu", "--nproc-per-node", "2",
                    "--set", "train.valid_every=4", "--set", "train.batch_size=4", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert state["step"] == 4
    assert torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)["task"] == "pinyin"
    assert "valid/ser" in (tmp_path / "ddp" / "metrics.jsonl").read_text()
