"""Mandarin without MFA: `voxtool transcribe pinyin WAVS --text LYRICS --format textgrid` -> TextGrids with a phones
tier -> `voxtool prep diffvc --alignments`. A tiny pinyin model is trained on the synthetic tonal language first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TRAIN_SEED, seeded
from voxtool.tasks.pinyin import synth as pinyin_synth

N_UTTS = 40
N_SPEAKERS = 4


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from voxtool.options import TrainOptions
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.prep import prepare
    from voxtool.tasks.pinyin.train import PinyinTrainTask
    from voxtool.training.run import train_from_options

    root = tmp_path_factory.mktemp("pinyin_chain")
    utts = pinyin_synth.write_corpus(root / "corpus", N_UTTS, seed=seeded(5), speakers=N_SPEAKERS)
    (root / "corpus" / "corpus.tsv").rename(root / "corpus.tsv")  # the corpus folder holds speaker folders only
    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    tsv = (root / "corpus.tsv").read_text(encoding="utf-8").replace("spk", "corpus/spk")
    (root / "train.tsv").write_text(tsv, encoding="utf-8")
    prepare("tsv", [root / "train.tsv"], root / "ds", feat=cfg.features, text_cfg=cfg.text, valid_frac=0.1,
            test_frac=0.0, seed=seeded(0))
    opts = TrainOptions(exp="chain", runs_dir=root / "runs", preset="pinyin-tiny", device="cpu", steps=80,
                        set=["blank_loss.weight=0.5", "train.valid_every=80", f"train.seed={seeded(TRAIN_SEED)}"])
    train_from_options(PinyinTrainTask, PinyinConfig, root / "ds", opts, default_preset="pinyin-tiny")
    for rel, text, _ in utts:  # lyrics mirroring the corpus: <spk>/<utt>.txt
        path = (root / "lyrics" / rel).with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return {"root": root, "utts": utts, "run": root / "runs" / "chain"}


def _frame_labels(intervals, n_frames, hop_s=0.01):
    """(start, end, label) -> one label per 10 ms frame ('' outside every interval)."""
    out = np.full(n_frames, "", dtype=object)
    for s, e, label in intervals:
        out[int(round(s / hop_s)) : int(round(e / hop_s))] = label
    return out


@pytest.mark.slow
def test_transcribe_textgrids_feed_prep_diffvc(chain, capfd):
    from voxtool.cli import main
    from voxtool.tasks.diffvc.avg_voice import read_phone_intervals

    root = chain["root"]
    code = main(["transcribe", "pinyin", str(root / "corpus"), "--model", str(chain["run"]), "--text",
                 str(root / "lyrics"), "--out", str(root / "tg"), "--format", "textgrid", "--quiet"])
    assert code == 0, capfd.readouterr().err

    # the phones tier against the known initial / final boundaries of the synthetic syllables
    rng = np.random.default_rng(seeded(0))
    agree, shuffled = [], []
    for rel, _, segs in chain["utts"]:
        tg = (root / "tg" / rel).with_suffix(".TextGrid")
        got = [iv for iv in read_phone_intervals(tg) if iv[2] != "sil"]
        truth = []
        for s in segs:
            initial, final = got_phone_names(s.pinyin)
            if initial:
                truth.append((s.start, s.final_start, initial))
            truth.append((s.final_start, s.end, final))
        n = int(segs[-1].end / 0.01) + 1
        ref = _frame_labels(truth, n)
        voiced = ref != ""
        agree.append(np.mean(_frame_labels(got, n)[voiced] == ref[voiced]))
        # baseline: the same intervals with their labels shuffled (right phones, no alignment)
        labels = [iv[2] for iv in got]
        rng.shuffle(labels)
        mixed = [(s, e, lab) for (s, e, _), lab in zip(got, labels, strict=True)]
        shuffled.append(np.mean(_frame_labels(mixed, n)[voiced] == ref[voiced]))
        assert {label for _, _, label in got} <= set(ref)  # the synthetic language's phone names
    with capfd.disabled():
        print(f"pinyin phones tier: frame agreement {np.mean(agree):.3f}, shuffled labels {np.mean(shuffled):.3f}")
    assert np.mean(agree) > np.mean(shuffled) + 0.15

    capfd.readouterr()
    code = main(["prep", "diffvc", str(root / "corpus"), str(root / "data"), "--alignments", str(root / "tg"),
                 "--unseen", "spk3", "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["skipped"] == [] and summary["splits"]["unseen"] == N_UTTS // N_SPEAKERS
    meta = json.loads((root / "data" / "dataset.json").read_text())
    assert "sil" in meta["units"] and len(meta["units"]) > 6  # initials, toned finals and silence
    item = np.load(root / "data" / "items" / "spk0" / "utt0000.npz")
    assert item["avg_mel"].shape == item["mel"].shape and not np.array_equal(item["avg_mel"], item["mel"])


def got_phone_names(pinyin: str) -> tuple[str, str]:
    """A synthetic syllable's (initial, final) as the pinyin phones tier names them."""
    from voxtool.tasks.pinyin.tokens import pinyin_to_units

    tokens = [t for u in pinyin_to_units(pinyin) for s in u.syllables for t in s.tokens]
    return (tokens[0], tokens[1]) if len(tokens) == 2 else ("", tokens[0])
