"""Readers for the open Mandarin corpora: directory tree -> list of `Utterance` (no audio is decoded here).

Each reader accepts the corpus folder as extracted (e.g. `data_aishell/`) or its parent, and raises BadInput
with one clear line when the tree is not what the corpus looks like. Utterances present in the transcript but
missing on disk (or the reverse) are reported by the prep step, not silently mixed.

| corpus      | transcript                                                 | speaker                 | split    |
|-------------|------------------------------------------------------------|-------------------------|----------|
| aishell     | transcript/aishell_transcript_v0.8.txt (`UTT words...`)    | S#### (parent dir)      | official |
| aidatatang  | transcript/aidatatang_200_zh_transcript.txt                | G#### (parent dir)      | official |
| stcmds      | one `.txt` per `.wav`, flat                                | P#####A (chars 8-15)    | seeded   |
| primewords  | set1_transcript.json (list of {id, file, text, user_id})   | user_id                 | seeded   |
| aishell3    | {train,test}/content.txt (`UTT.wav<TAB>汉 han4 字 zi4`)     | first 7 chars (SSB####) | seeded*  |
| tsv         | path<TAB>text[<TAB>speaker]                                | 3rd column / parent dir | seeded   |

* AISHELL-3's official split shares speakers between train and test, so by default it gets a seeded
  speaker-disjoint split too (`--split official` keeps the official one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from voxtool.errors import BadInput
from voxtool.tasks.pinyin.tokens import looks_like_pinyin

SPLIT_NAMES = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


@dataclass
class Utterance:
    id: str
    speaker: str
    audio: Path | None  # None: listed in the transcript but no audio file found
    text: str = ""  # Hanzi (may contain word spaces, punctuation, digits)
    pinyin: str | None = None  # given pinyin (AISHELL-3): used instead of G2P
    split: str | None = None  # official split ("train" | "valid" | "test") or None


def _find(root: Path, rel: str) -> Path:
    """`root/rel`, or `root/<single child>/rel` when the user gave the parent of the corpus folder."""
    if (root / rel).exists():
        return root
    hits = [c for c in root.iterdir() if c.is_dir() and (c / rel).exists()] if root.is_dir() else []
    if len(hits) == 1:
        return hits[0]
    raise BadInput(root, f"not this corpus: {rel} not found")


def _wavs_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in folder.rglob("*.wav"):
        out[p.stem] = p
    return out


def _read_keyed_transcript(path: Path) -> dict[str, str]:
    """`UTTID text...` lines -> {uttid: text}; a line without text is malformed."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInput(path, "transcript is not UTF-8") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise BadInput(f"{path}:{n}", "malformed transcript line (expected 'UTTID text')")
        out[parts[0]] = parts[1]
    return out


def _official_tree(root: Path, transcript_rel: str, audio_rel: str, spk_pattern: str) -> list[Utterance]:
    root = _find(root, transcript_rel)
    audio_root = root / audio_rel
    if not audio_root.is_dir():
        raise BadInput(root, f"not this corpus: {audio_rel}/ not found")
    texts = _read_keyed_transcript(root / transcript_rel)
    utts: list[Utterance] = []
    found_any = False
    tarballs = False
    for split_dir in sorted(p for p in audio_root.iterdir() if p.is_dir()):
        split = SPLIT_NAMES.get(split_dir.name)
        if split is None:
            continue
        tarballs = tarballs or any(split_dir.glob("*.tar.gz"))
        for stem, wav in sorted(_wavs_by_stem(split_dir).items()):
            found_any = True
            m = re.search(spk_pattern, stem)
            speaker = m.group(0) if m else wav.parent.name
            utts.append(Utterance(stem, speaker, wav, texts.get(stem, ""), None, split))
    if not found_any:
        hint = " (extract the per-speaker .tar.gz files first)" if tarballs else ""
        raise BadInput(audio_root, f"no .wav files under train/dev/test{hint}")
    listed = {u.id for u in utts}
    for uid in sorted(set(texts) - listed):  # in the transcript, not on disk: reported as skipped by prep
        m = re.search(spk_pattern, uid)
        utts.append(Utterance(uid, m.group(0) if m else "?", None, texts[uid], None, "train"))
    return utts


def read_aishell(root: Path) -> list[Utterance]:
    return _official_tree(root, "transcript/aishell_transcript_v0.8.txt", "wav", r"S\d{4}")


def read_aidatatang(root: Path) -> list[Utterance]:
    utts = _official_tree(root, "transcript/aidatatang_200_zh_transcript.txt", "corpus", r"G\d{4}")
    return utts


_STCMDS_ID = re.compile(r"^\d{8}(P\d{5}[A-Z])\d{4}$")


def read_stcmds(root: Path) -> list[Utterance]:
    root = Path(root)
    if not root.is_dir():
        raise BadInput(root, "not a directory")
    wavs = sorted(root.rglob("*.wav"))
    if not wavs:
        raise BadInput(root, "not ST-CMDS: no .wav files")
    utts = []
    for wav in wavs:
        m = _STCMDS_ID.match(wav.stem)
        if not m:
            raise BadInput(wav, "not an ST-CMDS file name (expected like 20170001P00001A0001.wav)")
        txt = wav.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        utts.append(Utterance(wav.stem, m.group(1), wav, text))
    return utts


def read_primewords(root: Path) -> list[Utterance]:
    root = _find(Path(root), "set1_transcript.json")
    path = root / "set1_transcript.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(path, f"not valid JSON ({e})") from None
    if not isinstance(records, list):
        raise BadInput(path, "expected a JSON list of records")
    wavs = {p.name: p for p in (root / "audio_files").rglob("*.wav")} if (root / "audio_files").is_dir() else {}
    if not wavs:
        raise BadInput(root, "not Primewords: no audio_files/**/*.wav")
    utts = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or not all(k in rec for k in ("file", "text", "user_id")):
            raise BadInput(path, f"record {n} lacks one of 'file', 'text', 'user_id'")
        file = str(rec["file"])
        uid = str(rec.get("id", Path(file).stem))
        speaker = f"P{rec['user_id']}"
        utts.append(Utterance(f"{speaker}-{uid}", speaker, wavs.get(file), str(rec["text"])))
    return utts


def read_aishell3(root: Path) -> list[Utterance]:
    root = _find(Path(root), "train/content.txt")
    utts = []
    for split in ("train", "test"):
        content = root / split / "content.txt"
        if not content.is_file():
            continue
        wavs = _wavs_by_stem(root / split / "wav")
        for n, line in enumerate(content.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, rest = line.partition("\t")
            fields = rest.split()
            if not sep or not fields or len(fields) % 2:
                raise BadInput(f"{content}:{n}", "malformed line (expected 'UTT.wav<TAB>汉 han4 字 zi4 ...')")
            stem = Path(name.strip()).stem
            hanzi = "".join(fields[0::2])
            pinyin = " ".join(fields[1::2])
            utts.append(Utterance(stem, stem[:7], wavs.get(stem), hanzi, pinyin, SPLIT_NAMES[split]))
    return utts


def read_tsv(path: Path) -> list[Utterance]:
    """`path<TAB>text[<TAB>speaker]` lines (relative paths are relative to the TSV); a folder reads all *.tsv.

    `text` is Hanzi, or tone-numbered pinyin (`ni3 hao3`), which is then used without G2P."""
    path = Path(path)
    files = sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise BadInput(path, "no TSV file (path<TAB>text[<TAB>speaker])")
    utts = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) not in (2, 3) or not cols[0].strip():
                raise BadInput(f"{f}:{n}", "malformed line (expected path<TAB>text[<TAB>speaker])")
            if n == 1 and cols[0].strip().lower() == "path":
                continue  # header
            audio = Path(cols[0].strip())
            if not audio.is_absolute():
                audio = f.parent / audio
            speaker = cols[2].strip() if len(cols) == 3 and cols[2].strip() else audio.parent.name
            uid = str(Path(cols[0].strip()).with_suffix("")).replace("/", "_").replace("\\", "_")
            text = cols[1].strip()
            given = text if looks_like_pinyin(text) else None  # a line of tone-numbered pinyin is used as is
            utts.append(Utterance(uid, speaker, audio if audio.is_file() else None, "" if given else text, given))
    if not utts:
        raise BadInput(path, "TSV lists no utterances")
    return utts


READERS = {
    "aishell": read_aishell,
    "aidatatang": read_aidatatang,
    "stcmds": read_stcmds,
    "primewords": read_primewords,
    "aishell3": read_aishell3,
    "tsv": read_tsv,
}
OFFICIAL_SPLIT = {"aishell", "aidatatang"}  # corpora whose official split is speaker-disjoint


def read_corpus(corpus: str, root: Path) -> list[Utterance]:
    if corpus not in READERS:
        raise BadInput(None, f"unknown corpus '{corpus}' (known: {', '.join(READERS)})")
    root = Path(root)
    if not root.exists():
        raise BadInput(root, "not found")
    return READERS[corpus](root)
