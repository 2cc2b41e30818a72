"""Mandarin without MFA: `voxtool transcribe pinyin WAVS --text LYRICS --format textgrid` -> TextGrids with a phones
tier -> `voxtool prep diffvc --alignments`. A tiny pinyin model is trained on the synthetic tonal language first."""

from __future__ import annotations

import json
from pathlib import Path

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
    opts = TrainOptions(exp="chain", runs_dir=root / "runs", preset="pinyin-tiny", device="cpu", steps=40,
                        set=["blank_loss.weight=0.5", "train.valid_every=40", f"train.seed={seeded(TRAIN_SEED)}"])
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
    """The plumbing, whatever the tiny model's accuracy (its alignment quality is the pinyin task's own learning
    tests' business): every utterance gets a TextGrid whose phones tier holds the synthetic language's phone names,
    prep reads them all (no exclusion), and every aligned frame's target is its phone's corpus mode."""
    from voxtool.cli import main
    from voxtool.tasks.diffvc.avg_voice import interval_frames, read_phone_intervals

    root = chain["root"]
    code = main(["transcribe", "pinyin", str(root / "corpus"), "--model", str(chain["run"]), "--text",
                 str(root / "lyrics"), "--out", str(root / "tg"), "--format", "textgrid", "--quiet"])
    assert code == 0, capfd.readouterr().err

    rng = np.random.default_rng(seeded(0))
    agree, shuffled, labels_seen = [], [], set()
    for rel, _, segs in chain["utts"]:
        intervals = read_phone_intervals((root / "tg" / rel).with_suffix(".TextGrid"))
        labels_seen |= {label for _, _, label in intervals}
        got = [iv for iv in intervals if iv[2] != "sil"]
        truth = []
        for s in segs:
            initial, final = got_phone_names(s.pinyin)
            if initial:
                truth.append((s.start, s.final_start, initial))
            truth.append((s.final_start, s.end, final))
        assert [label for _, _, label in got] == [label for _, _, label in truth]  # the lyrics' phones, in order
        n = int(segs[-1].end / 0.01) + 1
        ref = _frame_labels(truth, n)
        voiced = ref != ""
        agree.append(np.mean(_frame_labels(got, n)[voiced] == ref[voiced]))
        labels = [iv[2] for iv in got]
        rng.shuffle(labels)
        mixed = [(s, e, lab) for (s, e, _), lab in zip(got, labels, strict=True)]
        shuffled.append(np.mean(_frame_labels(mixed, n)[voiced] == ref[voiced]))
    with capfd.disabled():  # for the record: how well this tiny model aligned (frames labelled as the truth)
        print(f"pinyin phones tier: frame agreement {np.mean(agree):.3f}, shuffled labels {np.mean(shuffled):.3f}")

    capfd.readouterr()
    code = main(["prep", "diffvc", str(root / "corpus"), str(root / "data"), "--alignments", str(root / "tg"),
                 "--unseen", "spk3", "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["skipped"] == [] and summary["splits"]["unseen"] == N_UTTS // N_SPEAKERS
    meta = json.loads((root / "data" / "dataset.json").read_text())
    assert set(meta["units"]) == labels_seen and "sil" in labels_seen  # initials, toned finals and silence
    vectors = {k: np.asarray(v["vector"], dtype=np.float32) for k, v in meta["unit_stats"].items()}
    for rel, _, _ in chain["utts"][:: N_SPEAKERS + 1]:
        item = np.load(root / "data" / "items" / Path(rel).parent / f"{Path(rel).stem}.npz")
        segments = interval_frames(read_phone_intervals((root / "tg" / rel).with_suffix(".TextGrid")),
                                   item["mel"].shape[1], 22050, 256)
        for (a, b, label), nxt in zip(segments, [*segments[1:], None], strict=True):
            stop = nxt[0] if nxt is not None else b  # the next interval overwrites the shared frame
            if stop > a:
                np.testing.assert_allclose(item["avg_mel"][:, a:stop], np.repeat(vectors[label][:, None], stop - a, 1),
                                           atol=1e-6)


def got_phone_names(pinyin: str) -> tuple[str, str]:
    """A synthetic syllable's (initial, final) as the pinyin phones tier names them."""
    from voxtool.tasks.pinyin.tokens import pinyin_to_units

    tokens = [t for u in pinyin_to_units(pinyin) for s in u.syllables for t in s.tokens]
    return (tokens[0], tokens[1]) if len(tokens) == 2 else ("", tokens[0])
