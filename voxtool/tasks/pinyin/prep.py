"""`voxtool prep aishell|...|tsv`: corpus -> prepared pinyin dataset (16 kHz, trimmed, log-mel + tokens per
utterance). The folder layout is described in `data.py`, which reads it back.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput
from voxtool.fileio import atomic_write, check_output_dir, ensure_output_dir, write_text_atomic
from voxtool.prep_pool import map_items
from voxtool.tasks.pinyin.config import FeaturesSection, TextSection
from voxtool.tasks.pinyin.corpora import OFFICIAL_SPLIT, Utterance, read_corpus
from voxtool.tasks.pinyin.data import DATASET_FORMAT, DATASET_VERSION, SPLITS, read_header, read_list
from voxtool.tasks.pinyin.decode import min_frames
from voxtool.tasks.pinyin.tokens import (
    TextError,
    Vocab,
    pinyin_to_units,
    text_to_units,
    units_to_pinyin,
    units_to_tokens,
)

# ----------------------------------------------------------------------------------------------- one utterance

def trim_silence(wav: np.ndarray, top_db: float) -> tuple[np.ndarray, int]:
    """Leading/trailing silence removed (librosa.effects.trim) -> (trimmed audio, first kept sample)."""
    import librosa

    if wav.size == 0:
        return wav, 0
    trimmed, (start, _end) = librosa.effects.trim(wav, top_db=top_db)
    return trimmed, int(start)


def utterance_units(utt: Utterance, text_cfg: TextSection):
    """Units of an utterance: its own pinyin when the corpus gives one, else pypinyin over the text."""
    if utt.pinyin:
        return pinyin_to_units(utt.pinyin, utt.text or None)
    return text_to_units(utt.text, latin=text_cfg.latin, tone_sandhi=text_cfg.tone_sandhi)


_MEL_CACHE: dict[str, object] = {}


def log_mel(wav: np.ndarray, feat: FeaturesSection) -> np.ndarray:
    """(N,) float32 16 kHz -> (F, T) float32 log-mel (F = n_mels) with the preset's settings."""
    import torch

    from voxtool.audio.mel import LogMel

    key = feat.mel.model_dump_json()
    mel = _MEL_CACHE.get(key)
    if mel is None:  # one filter bank per process (and per forked worker), not one per utterance
        mel = _MEL_CACHE[key] = LogMel(feat.mel)
    with torch.no_grad():
        return mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))).numpy()


@dataclass
class Job:
    utt: Utterance
    dst: Path
    corpus: str


def process_utterance(job: Job, feat: FeaturesSection, text_cfg: TextSection, stride: int,
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


def _run_job(args) -> dict:  # module level: the process pool pickles it
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


def _dataset_header(feat: FeaturesSection, text_cfg: TextSection) -> dict:
    import voxtool

    return {"format": DATASET_FORMAT, "version": DATASET_VERSION,
            "voxtool_version": getattr(voxtool, "__version__", "0"), "features": feat.model_dump(),
            "text": text_cfg.model_dump(), "vocab": Vocab().to_dict(), "sources": []}


def prepare(corpus: str, sources: list[Path], out: Path, *, feat: FeaturesSection, text_cfg: TextSection,
            stride: int = 2, add: bool = False, workers: int = 1, seed: int = 0, split: str = "auto",
            valid_frac: float = 0.05, test_frac: float = 0.05, max_seconds: float = 16.7,
            limit: int = 0, advance=None) -> PrepResult:
    """Read `sources` of one corpus format, write/extend the dataset at `out`; returns counts for the table.
    `advance(1)` is called per utterance."""
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
    # processes: tokenising and trimming hold the GIL; one torch thread each, as many small STFTs run in parallel
    results = list(map_items(_run_job, args, workers, kind="process", chunksize=8, advance=advance,
                             torch_threads=1 if workers > 1 else None))

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
