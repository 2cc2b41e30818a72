"""One fixture tree per corpus format: read correctly, prepared with skip reasons, malformed ones rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from voxtool.errors import BadInput
from voxtool.tasks.pinyin.config import FeaturesSection, TextSection
from voxtool.tasks.pinyin.corpora import read_corpus
from voxtool.tasks.pinyin.data import PinyinDataset, load_item, read_list
from voxtool.tasks.pinyin.prep import prepare, speaker_split
from voxtool.tasks.pinyin.tokens import Vocab


def test_aishell_reader(corpus_tree):
    utts = read_corpus("aishell", corpus_tree("aishell").parent)  # the parent folder works too
    by_id = {u.id: u for u in utts}
    assert len(utts) == 9 and by_id["BAC009S0002W9999"].audio is None and by_id["BAC009S0724W0001"].split == "valid" and by_id["BAC009S0764W0002"].split == "test"
    assert by_id["BAC009S0002W0001"].speaker == "S0002" and by_id["BAC009S0002W0001"].text == "我 们 走"


def test_aidatatang_reader(corpus_tree):
    utts = read_corpus("aidatatang", corpus_tree("aidatatang"))
    assert {u.speaker for u in utts} == {"G0002", "G0003", "G0100", "G0200"}
    assert {u.split for u in utts} == {"train", "valid", "test"}


def test_stcmds_reader(corpus_tree):
    utts = read_corpus("stcmds", corpus_tree("stcmds"))
    by_id = {u.id: u for u in utts}
    assert by_id["20170001P00001A0002"].speaker == "P00001A" and by_id["20170001P00001A0002"].text == "我们走，"
    assert by_id["20170001P00009A0001"].text == "" and all(u.split is None for u in utts)


def test_primewords_reader(corpus_tree):
    utts = read_corpus("primewords", corpus_tree("primewords"))
    assert len(utts) == 8 and {u.speaker for u in utts} == {"P100", "P101", "P102", "P103"}
    assert all(u.audio is not None and u.audio.is_file() for u in utts) and utts[0].id == "P100-0"


def test_aishell3_reader_uses_given_pinyin(corpus_tree):
    utts = read_corpus("aishell3", corpus_tree("aishell3"))
    by_id = {u.id: u for u in utts}
    assert by_id["SSB00050001"].pinyin == "guang3 zhou1" and by_id["SSB00050001"].text == "广州"
    assert by_id["SSB00050001"].speaker == "SSB0005" and by_id["SSB00050001"].split == "train"


def test_tsv_reader(corpus_tree):
    utts = read_corpus("tsv", corpus_tree("tsv"))
    assert len(utts) == 8 and utts[0].speaker == "spk0" and utts[0].text == "你好"
    assert utts[-1].pinyin == "ni3 hao3" and utts[-1].audio is None


@pytest.mark.parametrize("name, breakage, message", [
    ("aishell", lambda b: (b / "transcript" / "aishell_transcript_v0.8.txt").write_text("BAC009S0002W0001\n"),
     "malformed transcript line"),
    ("aishell", lambda b: (b / "transcript" / "aishell_transcript_v0.8.txt").unlink(), "not this corpus"),
    ("primewords", lambda b: (b / "set1_transcript.json").write_text('{"a": 1}'), "expected a JSON list"),
    ("primewords", lambda b: (b / "set1_transcript.json").write_text('[{"file": "x.wav"}]'), "lacks one of"),
    ("aishell3", lambda b: (b / "train" / "content.txt").write_text("SSB00050001.wav\t广 guang3 州\n",
                                                                    encoding="utf-8"), "malformed line"),
    ("stcmds", lambda b: (b / "20170001P00001A0001.wav").rename(b / "recording.wav"), "not an ST-CMDS file name"),
    ("tsv", lambda b: b.write_text("only-one-column\n"), "malformed line"),
])
def test_malformed_corpus_is_rejected_with_one_clear_line(corpus_tree, name, breakage, message):
    base = corpus_tree(name)
    breakage(base)
    with pytest.raises(BadInput, match=message) as e:
        read_corpus(name, base)
    assert "\n" not in str(e.value)


def test_wrong_corpus_kind_is_rejected(corpus_tree):
    base = corpus_tree("stcmds")
    with pytest.raises(BadInput, match="not this corpus"):
        read_corpus("aishell", base)


def test_speaker_split_is_seeded_and_disjoint():
    spk = [f"s{i}" for i in range(20)]
    a = speaker_split(spk, 0.1, 0.1, seed=3)
    assert a == speaker_split(spk, 0.1, 0.1, seed=3) and a != speaker_split(spk, 0.1, 0.1, seed=4)
    assert sorted(list(a.values()).count(s) for s in ("train", "valid", "test")) == [2, 2, 16]


@pytest.mark.parametrize("name", ["aishell", "aidatatang", "stcmds", "primewords", "aishell3", "tsv"])
def test_prepare_every_format(corpus_tree, tmp_path, name):
    out = tmp_path / "ds"
    result = prepare(name, [corpus_tree(name)], out, feat=FeaturesSection(), text_cfg=TextSection(), valid_frac=0.25,
                     test_frac=0.25)
    header = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert header["vocab"]["version"] == "pinyin-v1" and header["features"]["mel"]["n_mels"] == 64
    lists = {s: read_list(out, s) for s in ("train", "valid", "test")}
    assert all(lists.values()), lists  # every split has data
    ds = {s: PinyinDataset(out, s) for s in lists}
    spk = {s: {ds[s][i].speaker for i in range(len(ds[s]))} for s in ds}
    assert not (spk["train"] & spk["valid"]) and not (spk["train"] & spk["test"])  # speaker-disjoint
    item = ds["train"][0]
    assert item.mel.shape[0] == 64 and item.mel.dtype == np.float16 and np.isfinite(item.mel).all()
    tokens = Vocab().decode(item.tokens)
    assert tokens[0] == tokens[-1] == "|"
    rows = result.table_rows()
    assert sum(r[2] for r in rows if r[0] == name) == sum(len(v) for v in lists.values())
    expected_skips = {"aishell": "no audio file", "aidatatang": "text: contains Latin letters 'A'",
                      "stcmds": "no transcript", "tsv": "audio too short for its tokens"}
    if name in expected_skips:
        assert result.skipped[expected_skips[name]] == 1, result.skipped
    if name == "tsv":
        assert result.skipped["no audio file"] == 1
    if name == "aishell3":  # its own pinyin, incl. erhua `r5`, is used; 44.1 kHz resampled and trimmed
        texts = {load_item(out / p).pinyin for s in lists for p in lists[s]}
        assert "hua1 er5" in texts and "lv4 ye4" in texts


def test_add_merges_corpora_and_refuses_silent_overwrite(corpus_tree, tmp_path):
    out = tmp_path / "ds"
    prepare("aishell3", [corpus_tree("aishell3")], out, feat=FeaturesSection(), text_cfg=TextSection())
    n_before = sum(len(read_list(out, s)) for s in ("train", "valid", "test"))
    with pytest.raises(BadInput, match="--add"):
        prepare("tsv", [corpus_tree("tsv")], out, feat=FeaturesSection(), text_cfg=TextSection())
    prepare("tsv", [corpus_tree("tsv")], out, feat=FeaturesSection(), text_cfg=TextSection(), add=True, workers=2)
    entries = [p for s in ("train", "valid", "test") for p in read_list(out, s)]
    assert len(entries) == n_before + 6 and any(p.startswith("items/tsv/") for p in entries)
    header = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert [s["corpus"] for s in header["sources"]] == ["aishell3", "tsv"]
    other = FeaturesSection.model_validate({"mel": {"n_mels": 80}})
    with pytest.raises(BadInput, match="features settings differ"):
        prepare("tsv", [corpus_tree("tsv")], out, feat=other, text_cfg=TextSection(), add=True)
