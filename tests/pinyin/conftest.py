"""Tiny corpus trees in each supported layout, made on the fly (no fixtures on disk)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxtool.tasks.pinyin import synth

TEXTS = ["你好", "中国人", "我们走", "花儿", "天气好", "谢谢你"]


def speech(rng: np.random.Generator, n_syllables: int, sr: int = 16000) -> np.ndarray:
    wav, _ = synth.make_utterance(rng, n_min=n_syllables, n_max=n_syllables)
    if sr != synth.SR:
        from voxtool.audio.io import resample

        wav = resample(wav, synth.SR, sr)
    return wav


def write_wav(path: Path, rng: np.random.Generator, n_syllables: int, sr: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speech(rng, n_syllables, sr), sr)


def make_aishell(root: Path) -> Path:
    """data_aishell/ with 2 train speakers, 1 dev, 1 test; one transcript line without audio."""
    rng = np.random.default_rng(0)
    base = root / "data_aishell"
    lines = []
    for split, spk in [("train", "S0002"), ("train", "S0003"), ("dev", "S0724"), ("test", "S0764")]:
        for k in range(2):
            utt = f"BAC009{spk}W{k + 1:04d}"
            text = TEXTS[(k + int(spk[1:])) % len(TEXTS)]
            write_wav(base / "wav" / split / spk / f"{utt}.wav", rng, len(text))
            lines.append(f"{utt} {' '.join(text)}")
    lines.append("BAC009S0002W9999 没有 音频")
    (base / "transcript").mkdir(parents=True)
    (base / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def make_aidatatang(root: Path) -> Path:
    rng = np.random.default_rng(1)
    base = root / "aidatatang_200zh"
    lines = []
    for split, spk in [("train", "G0002"), ("train", "G0003"), ("dev", "G0100"), ("test", "G0200")]:
        for k in range(2):
            utt = f"T0055{spk}S{k + 1:04d}"
            text = TEXTS[k + 2]
            write_wav(base / "corpus" / split / spk / f"{utt}.wav", rng, len(text))
            lines.append(f"{utt} {text}")
    lines.append("T0055G0002S0003 我有Ａ")  # full-width Latin letter -> skipped with the reason
    write_wav(base / "corpus" / "train" / "G0002" / "T0055G0002S0003.wav", rng, 3)
    (base / "transcript").mkdir(parents=True)
    (base / "transcript" / "aidatatang_200_zh_transcript.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def make_stcmds(root: Path) -> Path:
    rng = np.random.default_rng(2)
    base = root / "ST-CMDS-20170001_1-OS"
    for p in range(4):
        for k in range(2):
            stem = f"20170001P{p:05d}A{k + 1:04d}"
            text = TEXTS[(p + k) % len(TEXTS)]
            write_wav(base / f"{stem}.wav", rng, len(text))
            (base / f"{stem}.txt").write_text(text + "，\n", encoding="utf-8")
    write_wav(base / "20170001P00009A0001.wav", rng, 2)  # no .txt -> skipped
    return base


def make_primewords(root: Path) -> Path:
    rng = np.random.default_rng(3)
    base = root / "primewords_md_2018_set1"
    records = []
    for u in range(4):
        for k in range(2):
            name = f"{u:02d}{k:02d}abcd-uuid.wav"
            text = TEXTS[(u * 2 + k) % len(TEXTS)]
            write_wav(base / "audio_files" / f"{u:x}" / f"{u:02x}" / name, rng, len(text))
            records.append({"id": str(u * 10 + k), "file": name, "text": " ".join(text), "user_id": str(100 + u),
                            "length": len(text)})
    (base / "set1_transcript.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return base


def make_aishell3(root: Path) -> Path:
    """44.1 kHz wavs; content.txt with Hanzi and pinyin alternating (the pinyin is used)."""
    rng = np.random.default_rng(4)
    base = root / "data_aishell3"
    entries = {"train": [("SSB0005", "广州", "guang3 zhou1"), ("SSB0006", "你好", "ni3 hao3"),
                         ("SSB0007", "花儿", "hua1 r5"), ("SSB0008", "绿叶", "lv4 ye4")],
               "test": [("SSB0005", "中国", "zhong1 guo2"), ("SSB0009", "谢谢", "xie4 xie5")]}
    for split, rows in entries.items():
        lines = []
        for k, (spk, hanzi, pinyin) in enumerate(rows):
            utt = f"{spk}{k + 1 + (10 if split == 'test' else 0):04d}"
            write_wav(base / split / "wav" / spk / f"{utt}.wav", rng, len(hanzi), sr=44100)
            pairs = " ".join(f"{h} {p}" for h, p in zip(hanzi, pinyin.split(), strict=True))
            lines.append(f"{utt}.wav\t{pairs}")
        (base / split / "content.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def make_tsv(root: Path) -> Path:
    rng = np.random.default_rng(5)
    base = root / "mydata"
    rows = ["path\ttext\tspeaker"]
    for k in range(6):
        text = TEXTS[k]
        write_wav(base / "audio" / f"a{k}.wav", rng, len(text))
        rows.append(f"audio/a{k}.wav\t{text}\tspk{k % 3}")
    write_wav(base / "audio" / "short.wav", rng, 1)
    rows.append("audio/short.wav\t一二三四五六七八九十一二三四五六七八九十\tspk0")  # too short for its tokens
    rows.append("audio/p.wav\tni3 hao3\tspk1")  # pinyin text; the file does not exist -> skipped
    (base / "list.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return base / "list.tsv"


MAKERS = {"aishell": make_aishell, "aidatatang": make_aidatatang, "stcmds": make_stcmds,
          "primewords": make_primewords, "aishell3": make_aishell3, "tsv": make_tsv}


@pytest.fixture
def corpus_tree(tmp_path):
    def make(name: str) -> Path:
        return MAKERS[name](tmp_path / "src")

    return make
