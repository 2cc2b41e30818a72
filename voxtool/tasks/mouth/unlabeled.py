"""Unlabeled vocals -> log-mel dataset for semi-supervised training (`voxtool prep unlabeled DIR OUT`).

Every audio file soundfile can read under DIR, any rate and channel count, becomes 16 kHz mono and one `.npz` with
`mel` (T, 80) only, with the labeled dataset's exact feature settings (`--like DATA` reads them from its
`dataset.json`, so the two can never disagree). Files that are nearly all silence, or shorter than one training
crop, are skipped with the reason. Long files are kept whole: crops are taken at training time.

Layout: `OUT/dataset.json` (kind "unlabeled", mel settings, items), `OUT/train.txt`, `OUT/items/<rel>.npz`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.errors import BadInput
from voxtool.tasks.mouth.data import DATASET_FORMAT, DATASET_VERSION, ITEMS_DIR, BadTake

SILENCE_FLOOR_DB = -50.0  # a frame quieter than this (RMS, dBFS) counts as silent
MAX_SILENT_FRACTION = 0.95  # a file with more silent frames than this is skipped


@dataclass
class UnlabeledSummary:
    out: Path
    files: int = 0
    seconds: float = 0.0
    frames: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def find_audio(root: Path) -> list[Path]:
    """Every file under `root` that libsndfile can open (by content, not by extension)."""
    import soundfile as sf

    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.suffix.lower() in (".npz", ".txt", ".json", ".csv", ".ass"):
            continue
        try:
            sf.info(str(path))
        except Exception:  # not audio (or a format this libsndfile lacks): not a candidate
            continue
        found.append(path)
    return found


def mel_settings_like(data: Path | None):
    """The MelConfig of a prepared labeled dataset, or the default mouth settings."""
    from voxtool.tasks.mouth.config import default_mel
    from voxtool.tasks.mouth.data import MouthDataset

    return default_mel() if data is None else MouthDataset(data).mel_cfg


def build_unlabeled_item(path: Path, rel: str, mel_cfg, min_frames: int) -> dict[str, Any]:
    """Load, check and featurise one file -> {"mel" (T, n_mels) as stored, "meta"}; raises BadTake (silent, too
    short, unreadable)."""
    from voxtool.audio.framing import log_mel
    from voxtool.audio.io import load_audio

    try:
        audio = load_audio(path, sr=mel_cfg.sample_rate)
    except BadInput as e:
        raise BadTake(path, e.problem) from None
    frames = mel_cfg.n_frames(len(audio))
    if frames < min_frames:
        raise BadTake(path, f"too short ({len(audio) / mel_cfg.sample_rate:.2f} s; one training crop is "
                            f"{min_frames} frames = {min_frames * mel_cfg.hop_length / mel_cfg.sample_rate:.2f} s)")  # fmt: skip
    hop = mel_cfg.hop_length
    n = len(audio) // hop
    rms_db = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    silent = float(np.mean(rms_db < SILENCE_FLOOR_DB))
    if silent > MAX_SILENT_FRACTION:
        raise BadTake(path, f"silent ({silent:.0%} of frames below {SILENCE_FLOOR_DB:.0f} dBFS)")
    mel = np.ascontiguousarray(log_mel(audio, mel_cfg).T)
    meta = {"id": rel, "source": rel, "frames": int(mel.shape[0]), "seconds": len(audio) / mel_cfg.sample_rate,
            "silent_fraction": silent}  # fmt: skip
    return {"mel": mel, "meta": meta}


def _npz_rel(rel: str) -> str:
    return f"{ITEMS_DIR}/{rel.rsplit('.', 1)[0]}.npz"


def _process(path: Path, rel: str, out: Path, mel_cfg, min_frames: int, overwrite: bool):
    from voxtool.fileio import atomic_write
    from voxtool.tasks.mouth.data import read_item_meta

    dst = out / _npz_rel(rel)
    if dst.is_file() and not overwrite:
        try:
            meta = read_item_meta(dst)
            meta["reused"] = True
            return rel, meta, None
        except Exception:
            pass
    try:
        item = build_unlabeled_item(path, rel, mel_cfg, min_frames)
    except BadTake as e:
        if dst.is_file():
            dst.unlink()
        return rel, None, e.reason
    with atomic_write(dst) as f:
        np.savez(f, mel=item["mel"], meta=np.array(json.dumps(item["meta"])))
    return rel, item["meta"], None


def prepare_unlabeled(
    src_dir: Path,
    out: Path,
    like: Path | None = None,
    min_frames: int = 128,
    workers: int = 1,
    overwrite: bool = False,
    advance: Callable[..., None] | None = None,
) -> UnlabeledSummary:
    """Prepare every audio file under `src_dir` into `out` (see the module docstring)."""
    from voxtool import __version__
    from voxtool.fileio import check_output_dir, ensure_output_dir, write_text_atomic
    from voxtool.prep_pool import map_items

    src_dir, out = Path(src_dir), Path(out)
    if not src_dir.is_dir():
        raise BadInput(src_dir, "not a directory")
    check_output_dir(out)
    mel_cfg = mel_settings_like(like)
    files = find_audio(src_dir)
    if not files:
        raise BadInput(src_dir, "no audio files found")
    old = out / "dataset.json"
    if old.is_file() and not overwrite:
        try:
            old_mel = json.loads(old.read_text()).get("mel")
        except (OSError, ValueError):
            old_mel = None
        if old_mel != mel_cfg.model_dump():
            raise BadInput(out, "holds a dataset with other mel settings; use --overwrite or another folder")
    results: dict[str, dict] = {}
    bad: list[tuple[str, str]] = []
    jobs = [(p, p.relative_to(src_dir).as_posix()) for p in files]
    ensure_output_dir(out)  # also removes temporary files that killed runs left behind

    def collect(rel, meta, reason):
        if reason is None:
            results[rel] = meta
        else:
            bad.append((rel, reason))
        if advance:
            advance(1)

    for r in map_items(lambda job: _process(*job, out, mel_cfg, min_frames, overwrite), jobs, workers,
                       ordered=False, torch_threads=1):
        collect(*r)
    good = [rel for _, rel in jobs if rel in results]
    if not good:
        raise BadInput(out, f"no usable files ({len(bad)} skipped; first: {bad[0][0]}: {bad[0][1]})")
    write_text_atomic(out / "train.txt", "".join(f"{_npz_rel(r)}\n" for r in good))
    meta = {
        "format": DATASET_FORMAT, "format_version": DATASET_VERSION, "voxtool_version": __version__,
        "kind": "unlabeled", "mel": mel_cfg.model_dump(), "min_frames": min_frames,
        "counts": {"train": len(good)}, "skipped": [{"path": p, "reason": r} for p, r in bad],
        "items": {_npz_rel(r): {"source": r, "frames": results[r]["frames"],
                                "seconds": round(results[r]["seconds"], 4)} for r in good},
    }  # fmt: skip
    write_text_atomic(out / "dataset.json", json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return UnlabeledSummary(
        out=out, files=len(good), seconds=sum(results[r]["seconds"] for r in good),
        frames=sum(results[r]["frames"] for r in good), reused=sum(1 for r in good if results[r].get("reused")),
        skipped=bad,
    )  # fmt: skip
