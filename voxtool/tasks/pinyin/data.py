"""Prepared pinyin datasets: corpus -> 16 kHz, trimmed, log-mel + tokens per utterance; loading for training.

Dataset folder:
    dataset.json              format, voxtool version, feature/text settings, token inventory, sources
    train.txt valid.txt test.txt   relative .npz paths, one per line
    items/<corpus>/<utt>.npz  mel (F, T) float16, tokens (L,) int16, text, pinyin, speaker, seconds, trim_start
    skipped.tsv               utterances left out, with the reason
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput
from voxtool.fileio import atomic_write, check_output_dir, ensure_output_dir, write_text_atomic
from voxtool.tasks.pinyin.config import FeatureConfig, TextConfig
from voxtool.tasks.pinyin.corpora import OFFICIAL_SPLIT, Utterance, read_corpus
from voxtool.tasks.pinyin.decode import min_frames
from voxtool.tasks.pinyin.tokens import (
    TextError,
    Vocab,
    pinyin_to_units,
    text_to_units,
    units_to_pinyin,
    units_to_tokens,
)

DATASET_FORMAT = "voxtool-pinyin-dataset"
SPLITS = ("train", "valid", "test")


# ----------------------------------------------------------------------------------------------- one utterance

def trim_silence(wav: np.ndarray, top_db: float) -> tuple[np.ndarray, int]:
    """Leading/trailing silence removed (librosa.effects.trim) -> (trimmed audio, first kept sample)."""
    import librosa

    if wav.size == 0:
        return wav, 0
    trimmed, (start, _end) = librosa.effects.trim(wav, top_db=top_db)
    return trimmed, int(start)


def utterance_units(utt: Utterance, text_cfg: TextConfig):
    """Units of an utterance: its own pinyin when the corpus gives one, else pypinyin over the text."""
    if utt.pinyin:
        return pinyin_to_units(utt.pinyin, utt.text or None)
    return text_to_units(utt.text, latin=text_cfg.latin, tone_sandhi=text_cfg.tone_sandhi)


_MEL_CACHE: dict[str, object] = {}


def log_mel(wav: np.ndarray, feat: FeatureConfig) -> np.ndarray:
    """(N,) float32 16 kHz -> (n_mels, T) float32 log-mel with the preset's settings."""
    import torch

    from voxtool.audio.mel import LogMel

    key = feat.mel.model_dump_json()
    mel = _MEL_CACHE.get(key)
    if mel is None:
        mel = _MEL_CACHE[key] = LogMel(feat.mel)
    with torch.no_grad():
        return mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))).numpy()


@dataclass
class Job:
    utt: Utterance
    dst: Path
    corpus: str


def process_utterance(job: Job, feat: FeatureConfig, text_cfg: TextConfig, stride: int,
                      max_seconds: float) -> dict:
    """Load, trim, featurise, tokenise and write one item. Returns {"ok": record} or {"skip": reason}."""
    from voxtool.audio.io import load_audio

    utt = job.utt
    if utt.audio is None:
        return {"skip": "no audio file"}
    if not utt.text and not utt.pinyin:
        return {"skip": "no transcript"}
    try:
        units = utterance_units(utt, text_cfg)
        tokens = Vocab().encode(units_to_tokens(units))
    except TextError as e:
        return {"skip": f"text: {e}"}
    try:
        wav = load_audio(utt.audio, sr=feat.mel.sample_rate)
    except BadInput as e:
        return {"skip": f"audio: {e.problem}"}
    wav, trim_start = trim_silence(wav, feat.trim_db)
    seconds = wav.size / feat.mel.sample_rate
    if max_seconds and seconds > max_seconds:
        return {"skip": f"longer than {max_seconds:g} s"}
    n_frames = feat.mel.n_frames(wav.size)
    out_frames = -(-n_frames // stride)
    if out_frames < min_frames(tokens):
        return {"skip": "audio too short for its tokens"}
    mel = log_mel(wav, feat)
    with atomic_write(job.dst, "wb") as f:
        np.savez(f, mel=mel.astype(np.float16), tokens=np.asarray(tokens, dtype=np.int16),
                 text="".join(u.text for u in units), pinyin=units_to_pinyin(units), speaker=utt.speaker,
                 seconds=np.float32(seconds), trim_start=np.int64(trim_start))
    return {"ok": {"seconds": seconds, "speaker": utt.speaker}}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_job(args) -> dict:
    return process_utterance(*args)


# ----------------------------------------------------------------------------------------------- splits

def speaker_split(speakers: list[str], valid_frac: float, test_frac: float, seed: int) -> dict[str, str]:
    """Seeded speaker-disjoint split: speaker -> "train" | "valid" | "test" (>= 1 speaker each when >= 3)."""
    uniq = sorted(set(speakers))
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    n = len(order)
    n_valid = max(1, round(n * valid_frac)) if n >= 3 and valid_frac > 0 else 0
    n_test = max(1, round(n * test_frac)) if n >= 3 and test_frac > 0 else 0
    out = {}
    for i, spk in enumerate(order):
        out[spk] = "valid" if i < n_valid else "test" if i < n_valid + n_test else "train"
    return out


# ----------------------------------------------------------------------------------------------- prep

@dataclass
class PrepResult:
    out: Path
    counts: dict[tuple[str, str], dict] = field(default_factory=dict)  # (corpus, split) -> utts/speakers/hours
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    def table_rows(self) -> list[list]:
        rows = []
        for (corpus, split), c in sorted(self.counts.items()):
            rows.append([corpus, split, c["utterances"], len(c["speakers"]), f"{c['seconds'] / 3600:.3f}"])
        for reason, n in sorted(self.skipped.items()):
            rows.append(["skipped", reason, n, "", ""])
        return rows


def _dataset_header(feat: FeatureConfig, text_cfg: TextConfig) -> dict:
    import voxtool

    return {"format": DATASET_FORMAT, "version": 1, "voxtool_version": getattr(voxtool, "__version__", "0"),
            "features": feat.model_dump(), "text": text_cfg.model_dump(), "vocab": Vocab().to_dict(),
            "sources": []}


def prepare(corpus: str, sources: list[Path], out: Path, *, feat: FeatureConfig, text_cfg: TextConfig,
            stride: int = 2, add: bool = False, workers: int = 1, seed: int = 0, split: str = "auto",
            valid_frac: float = 0.05, test_frac: float = 0.05, max_seconds: float = 16.7,
            limit: int = 0, progress=None) -> PrepResult:
    """Read `sources` of one corpus format, write/extend the dataset at `out`; returns counts for the table."""
    out = Path(out)
    meta_path = out / "dataset.json"
    check_output_dir(out)
    if meta_path.exists():
        if not add:
            raise BadInput(out, "already a prepared dataset (use --add to merge more data into it)")
        header = read_header(out)
        fresh = _dataset_header(feat, text_cfg)
        for key in ("features", "text", "vocab"):
            if header[key] != fresh[key]:
                raise BadInput(out, f"cannot --add: its {key} settings differ from this preset's")
    else:
        if out.exists() and any(out.iterdir()):
            raise BadInput(out, "exists and is not an empty folder or a prepared dataset")
        header = _dataset_header(feat, text_cfg)
    if split not in ("auto", "official", "speakers"):
        raise BadInput(None, f"--split must be auto, official or speakers, not '{split}'")

    utts_all: list[tuple[Utterance, str | None, str]] = []
    for src in sources:
        utts = read_corpus(corpus, Path(src))
        if limit:
            utts = utts[:limit]
        use_official = split == "official" or (split == "auto" and corpus in OFFICIAL_SPLIT)
        if use_official and any(u.split is None for u in utts):
            raise BadInput(src, f"{corpus} has no official split; use --split speakers")
        for u in utts:  # None: a speaker split is drawn later, over the speakers whose utterances survive
            utts_all.append((u, u.split if use_official else None, str(src)))
        header["sources"].append({"corpus": corpus, "path": str(Path(src).resolve()), "utterances": len(utts),
                                  "split": "official" if use_official else f"speakers(seed={seed})"})

    seen: set[str] = set()
    jobs, job_splits = [], []
    result = PrepResult(out)
    for u, sp, src_key in utts_all:
        uid = _safe_name(u.id)
        rel = Path("items") / corpus / f"{uid}.npz"
        if str(rel) in seen:
            result.skipped["duplicate utterance id"] += 1
            continue
        seen.add(str(rel))
        jobs.append(Job(u, out / rel, corpus))
        job_splits.append((sp, rel, u, src_key))

    args = [(j, feat, text_cfg, stride, max_seconds) for j in jobs]
    ensure_output_dir(out)  # also removes temporary files that killed runs left behind
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            results = []
            for r in pool.map(_run_job, args, chunksize=8):
                results.append(r)
                if progress:
                    progress(1)
    else:
        results = []
        for a in args:
            results.append(_run_job(a))
            if progress:
                progress(1)

    lists: dict[str, list[str]] = {s: read_list(out, s) if meta_path.exists() else [] for s in SPLITS}
    drawn: dict[str, dict[str, str]] = {}
    for src_key in {k for sp, _, _, k in job_splits if sp is None}:
        alive = [u.speaker for (sp, _, u, k), r in zip(job_splits, results, strict=True) if k == src_key and "ok" in r]
        drawn[src_key] = speaker_split(alive, valid_frac, test_frac, seed)
    skipped_lines = []
    for (sp, rel, u, src_key), r in zip(job_splits, results, strict=True):
        if sp is None and "ok" in r:
            sp = drawn[src_key][u.speaker]
        if "skip" in r:
            result.skipped[r["skip"]] += 1
            skipped_lines.append(f"{corpus}\t{u.id}\t{u.audio or ''}\t{r['skip']}")
            continue
        key = (corpus, sp)
        c = result.counts.setdefault(key, {"utterances": 0, "speakers": set(), "seconds": 0.0})
        c["utterances"] += 1
        c["speakers"].add(r["ok"]["speaker"])
        c["seconds"] += r["ok"]["seconds"]
        if rel.as_posix() not in lists[sp]:
            lists[sp].append(rel.as_posix())
    if not any(lists.values()):
        raise BadInput(sources[0], "no usable utterances (see the skip reasons: "
                       + ", ".join(f"{k}: {v}" for k, v in result.skipped.most_common(3)) + ")")
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        write_text_atomic(out / f"{s}.txt", "".join(f"{p}\n" for p in lists[s]))
    old_skips = (out / "skipped.tsv").read_text(encoding="utf-8") if (out / "skipped.tsv").exists() else ""
    write_text_atomic(out / "skipped.tsv", old_skips + "".join(f"{line}\n" for line in skipped_lines))
    write_text_atomic(meta_path, json.dumps(header, ensure_ascii=False, indent=2) + "\n")
    return result


def _safe_name(uid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uid).lstrip(".") or "utt"


# ----------------------------------------------------------------------------------------------- loading

def read_header(root: Path) -> dict:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise BadInput(root, "not a prepared pinyin dataset (no dataset.json; run `voxtool prep ...` first)")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInput(path, f"not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != DATASET_FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise BadInput(path, f"not a pinyin dataset (format {fmt!r})")
    try:
        from voxtool.audio.mel import MelConfig

        MelConfig.model_validate(header["features"]["mel"])
        Vocab.from_dict(header["vocab"])
    except Exception as e:  # KeyError, pydantic.ValidationError, a garbled vocab
        text = str(e).strip().splitlines()
        raise BadInput(path, f"garbled dataset header ({type(e).__name__}: {text[0][:100] if text else ''})") from None
    if not isinstance(header.get("text", {}), dict) or not isinstance(header.get("sources", []), list):
        raise BadInput(path, "garbled dataset header ('text' must be a table and 'sources' a list)")
    return header


def read_list(root: Path, split: str) -> list[str]:
    path = Path(root) / f"{split}.txt"
    if not path.is_file():
        return []
    entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    base = Path(root).resolve()
    for e in entries:
        if Path(e).is_absolute() or not (base / e).resolve().is_relative_to(base):
            raise BadInput(path, f"entry leaves the dataset folder: {e}")
    return entries


@dataclass
class Item:
    mel: np.ndarray  # (F, T) float16 as stored (collate makes float32 batches): halves the item cache
    tokens: np.ndarray  # (L,) int64
    text: str
    pinyin: str
    speaker: str


ITEM_KEYS = ("mel", "tokens", "text", "pinyin", "speaker")


def load_item(path: Path, n_mels: int | None = None, n_tokens: int | None = None) -> Item:
    """One `.npz` -> Item; a missing, corrupt or wrongly shaped item (mel not (n_mels, T), tokens not 1-D integers
    in [0, n_tokens)) is a BadInput naming the file."""
    if not Path(path).is_file():
        raise BadInput(path, "listed in the split but missing; re-run prep")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ITEM_KEYS if k not in z.files]
            if missing:
                raise BadInput(path, f"dataset item lacks the '{missing[0]}' array; re-run prep")
            mel, tokens = z["mel"], z["tokens"]
            text, pinyin, speaker = str(z["text"]), str(z["pinyin"]), str(z["speaker"])
    except BadInput:
        raise
    except Exception as e:  # BadZipFile, EOFError, OSError, ValueError (object arrays), zlib.error, ...
        msg = str(e).strip().splitlines()
        raise BadInput(path, f"unreadable dataset item ({msg[0][:80] if msg else type(e).__name__})") from None
    if mel.ndim != 2 or mel.shape[1] == 0 or not np.issubdtype(mel.dtype, np.floating) or (
            n_mels is not None and mel.shape[0] != n_mels):
        want = f"({n_mels if n_mels is not None else 'n_mels'}, frames)"
        raise BadInput(path, f"'mel' has shape {mel.shape} and dtype {mel.dtype}; {want} floats expected")
    if tokens.ndim != 1 or len(tokens) == 0 or not np.issubdtype(tokens.dtype, np.integer):
        raise BadInput(path, f"'tokens' has shape {tokens.shape} and dtype {tokens.dtype}; 1-D integers expected")
    tokens = tokens.astype(np.int64)
    if n_tokens is not None and (tokens.min() < 0 or tokens.max() >= n_tokens):
        raise BadInput(path, f"'tokens' holds ids outside the inventory [0, {n_tokens})")
    return Item(mel, tokens, text, pinyin, speaker)


class PinyinDataset:
    """One split of a prepared dataset; items are cached in memory up to `cache_items` of them."""

    def __init__(self, root: Path, split: str, cache_items: int = 4000):
        self.root = Path(root)
        self.header = read_header(self.root)
        self.vocab = Vocab.from_dict(self.header["vocab"])
        if self.vocab.tokens != Vocab().tokens:
            raise BadInput(self.root, f"token inventory {self.vocab.version} differs from this voxtool's")
        self.n_mels = int(self.header["features"]["mel"]["n_mels"])
        self.split = split
        self.entries = read_list(self.root, split)
        self._cache: dict[int, Item] = {}
        self.cache_items = cache_items

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Item:
        item = self._cache.get(i)
        if item is None:
            item = load_item(self.root / self.entries[i], self.n_mels, len(self.vocab.tokens))
            if len(self._cache) < self.cache_items:
                self._cache[i] = item
        return item


def collate(items: list[Item], pad_frames: int = 0):
    """Items -> (feats (B, F, T) float32, feat_lens (B,), targets (B, L) int64 padded with 0, target_lens (B,)).

    `pad_frames` > 0 adds that many silence frames (the utterance's minimum log-mel per bin) at both ends."""
    import torch

    mels = []
    for it in items:
        m = it.mel.astype(np.float32, copy=False)
        if pad_frames:
            floor = m.min(axis=1, keepdims=True).repeat(pad_frames, axis=1)
            m = np.concatenate([floor, m, floor], axis=1)
        mels.append(m)
    F = mels[0].shape[0]
    T = max(m.shape[1] for m in mels)
    L = max(len(it.tokens) for it in items)
    feats = np.zeros((len(items), F, T), dtype=np.float32)
    targets = np.zeros((len(items), L), dtype=np.int64)
    for b, (m, it) in enumerate(zip(mels, items, strict=True)):
        feats[b, :, : m.shape[1]] = m
        targets[b, : len(it.tokens)] = it.tokens
    return (torch.from_numpy(feats), torch.tensor([m.shape[1] for m in mels]),
            torch.from_numpy(targets), torch.tensor([len(it.tokens) for it in items]))


def split_counts(root: Path) -> dict[str, int]:
    return {s: len(read_list(root, s)) for s in SPLITS}


def speakers_of(root: Path, split: str) -> set[str]:
    ds = PinyinDataset(root, split)
    return {ds[i].speaker for i in range(len(ds))}

