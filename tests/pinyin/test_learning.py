"""pinyin-tiny learns a synthetic tonal language (far below chance) and aligns it within 40 ms.

One model is trained for the module: synthetic corpus (60 syllables: 5 initials x 3 vowels x 4 tones, known
boundaries) -> `prepare("tsv")` -> the real Trainer with the pinyin-tiny preset (+ blank loss) -> evaluated on
held-out speakers and on fresh utterances with known syllable boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxtool.options import TrainOptions
from voxtool.presets import load_config
from voxtool.tasks.pinyin import synth
from voxtool.tasks.pinyin.data import PinyinDataset, prepare
from voxtool.tasks.pinyin.infer import align, evaluate_dataset, load_model, transcribe
from voxtool.tasks.pinyin.metrics import error_rates
from voxtool.tasks.pinyin.tokens import Vocab, parse_syllable, pinyin_to_units, units_to_tokens
from voxtool.tasks.pinyin.train import PinyinConfig, PinyinTrainTask
from voxtool.training.run import train_from_options


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinyin_learn")
    synth.write_corpus(root / "corpus", 320, seed=0, speakers=10)
    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    prepare("tsv", [root / "corpus" / "corpus.tsv"], root / "ds", feat=cfg.features, text_cfg=cfg.text,
            valid_frac=0.1, test_frac=0.1, seed=0)
    opts = TrainOptions(exp="learn", runs_dir=root / "runs", preset="pinyin-tiny", device="cpu", steps=260,
                        set=["blank_loss.weight=0.5", "train.valid_every=130"])
    summary = train_from_options(PinyinTrainTask, PinyinConfig, root / "ds", opts, default_preset="pinyin-tiny")
    return {"data": root / "ds", "run": root / "runs" / "learn", "summary": summary}


def chance_rates(data: Path, seed: int = 0) -> dict[str, float]:
    """Error rates of guessing uniformly random synthetic syllables of the right count (the trivial baseline)."""
    rng = np.random.default_rng(seed)
    ds = PinyinDataset(data, "test")
    vocab = Vocab()
    names = [synth.syllable_name(*s) for s in synth.ALL_SYLLABLES]
    refs, hyps = [], []
    for i in range(len(ds)):
        ref = vocab.decode(ds[i].tokens)
        n = ref.count("|") - 1
        guess = pinyin_to_units(" ".join(names[k] for k in rng.integers(0, len(names), n)))
        refs.append(ref)
        hyps.append(units_to_tokens(guess))
    return error_rates(refs, hyps)


def test_learns_far_below_chance(trained):
    metrics = evaluate_dataset(trained["run"], trained["data"], "test")
    chance = chance_rates(trained["data"])
    assert chance["ser"] > 0.9
    assert metrics["ser"] < 0.25, metrics  # held-out speakers; chance is ~0.98
    assert metrics["ser"] < chance["ser"] / 4 and metrics["ter"] < chance["ter"] / 4
    assert metrics["ser_toneless"] <= metrics["ser"] + 1e-9
    beam = evaluate_dataset(trained["run"], trained["data"], "test", beam=4)
    assert beam["ser"] <= metrics["ser"] + 0.05
    best = trained["summary"]["best"]
    assert best["metric"] == "valid/ser" and best["value"] < 0.3


def test_transcribes_fresh_audio(trained):
    lm = load_model(trained["run"])
    rng = np.random.default_rng(7)
    refs, hyps = [], []
    for _ in range(10):
        wav, segs = synth.make_utterance(rng)
        tr = transcribe(wav, synth.SR, lm)
        refs.append([parse_syllable(s.pinyin).strict for s in segs])
        hyps.append([parse_syllable(s.pinyin).strict if "+" not in s.pinyin else s.pinyin for s in tr.segments])
        assert all(0 <= s.start < s.end <= len(wav) / synth.SR + 1e-6 for s in tr.segments)
    import jiwer

    assert jiwer.wer([" ".join(r) for r in refs], [" ".join(h) for h in hyps]) < 0.3


def test_forced_alignment_boundaries_within_40ms(trained):
    """Known lyrics -> per-character times; median |error| of syllable starts and ends on fresh synthetic audio."""
    lm = load_model(trained["run"])
    rng = np.random.default_rng(99)
    errors = []
    for _ in range(20):
        wav, segs = synth.make_utterance(rng)
        tr = align(wav, synth.SR, lm, " ".join(s.pinyin for s in segs))
        assert [s.pinyin for s in tr.segments] == [s.pinyin for s in segs] and tr.aligned
        for truth, got in zip(segs, tr.segments, strict=True):
            errors += [got.start - truth.start, got.end - truth.end]
            assert got.phones and got.phones[0].start == got.start and got.phones[-1].end == got.end
    errors = np.abs(np.array(errors))
    assert np.median(errors) < 0.040, np.median(errors)


def test_lyrics_folder_mirrors_the_inputs(trained, tmp_path):
    import soundfile as sf

    from voxtool.errors import BadInput
    from voxtool.tasks.pinyin.infer import transcribe_paths

    rng = np.random.default_rng(5)
    expected = {}
    for rel in ("a/x", "b/c/y"):
        wav, segs = synth.make_utterance(rng, 3, 3)
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "lyrics" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "in" / f"{rel}.wav", wav, synth.SR)
        (tmp_path / "lyrics" / f"{rel}.txt").write_text(" ".join(s.pinyin for s in segs), encoding="utf-8")
        expected[rel] = [s.pinyin for s in segs]
    done = transcribe_paths([str(tmp_path / "in")], tmp_path / "out", trained["run"], text=tmp_path / "lyrics")
    assert len(done) == 2 and all(d["aligned"] for d in done)
    for rel, pinyins in expected.items():
        rows = (tmp_path / "out" / f"{rel}.csv").read_text(encoding="utf-8").splitlines()
        assert rows[0] == "start,end,pinyin,text" and [r.split(",")[2] for r in rows[1:]] == pinyins
    (tmp_path / "lyrics" / "a" / "x.txt").unlink()
    with pytest.raises(BadInput, match="no lyrics"):
        transcribe_paths([str(tmp_path / "in")], tmp_path / "out2", trained["run"], text=tmp_path / "lyrics")


def test_hanzi_lyrics_align_per_character(trained):
    """Hanzi lyrics go through pypinyin; each character gets its own interval near the true syllable."""
    lm = load_model(trained["run"])
    rng = np.random.default_rng(11)
    syllables = [("b", "a", 1), ("sh", "i", 4), ("sh", "u", 1), ("s", "u", 1), ("m", "u", 4), ("", "i", 1)]
    wav, segs = synth.make_utterance(rng, syllables=syllables)
    tr = align(wav, synth.SR, lm, "八是书，苏木衣。")
    assert [s.text for s in tr.segments] == list("八是书苏木衣")
    assert [s.pinyin for s in tr.segments] == ["ba1", "shi4", "shu1", "su1", "mu4", "yi1"]
    errors = [abs(g.start - t.start) for g, t in zip(tr.segments, segs, strict=True)]
    assert np.median(errors) < 0.05, errors
