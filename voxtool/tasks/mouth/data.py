"""LipsSync takes -> prepared mouth dataset, and reading it back for training.

Prepared dataset layout (DESIGN.md):

    OUT/dataset.json          feature settings, target, value ranges, speakers, per-item frames and split
    OUT/speakers.json         speaker name -> id
    OUT/spk_mapping.json      the same, under the original's name (its training reads singer ids from it)
    OUT/train.txt valid.txt unseen.txt   .npz paths relative to OUT
    OUT/items/<rel>.npz       mel (T, 80) float32 log-mel, curve (T,) float32 target, meta (JSON string)

Items are (T, n_mels) on disk (as the original's); in memory, as everywhere in voxtool, mels are (n_mels, T).

Timing. The CSV's `TimeStamp` is seconds from the start of the wav. The audio is cropped to the capture span
[t_first, t_last] (after dropping a frozen-tracker run at the start) and the curve is interpolated at the *true
centre time* of every mel frame: `crop_start + MelConfig.frame_times()`. The features are the config's `[mel]`
(`voxtool.tasks.mouth.config.default_mel`, the original's front-end). The original assumed the frames span
[0, duration] evenly, which skews labels by up to a frame (the reflect padding puts frame 0 at -22 ms).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.audio.mel_config import MelConfig
from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import default_mel

DATASET_FORMAT = "voxtool-mouth-dataset"
DATASET_VERSION = 1
ITEMS_DIR = "items"
SPLITS = ("train", "valid", "unseen")
CAPTURE_TOLERANCE_S = 0.05  # a capture may end this much after the audio (clock rounding) before it is "longer"
MIN_CAPTURE_S = 0.2

IPHONE_COLUMNS = ("TimeStamp", "jawOpen", "mouthClose")
IPHONE_LIPS = ("LipsDistance", "lipsDistance")
ANDROID_COLUMNS = ("timestamp_ms", "jaw_open", "mouth_close")
EXPECTED_HEADERS = (
    "TimeStamp,jawOpen,mouthClose[,LipsDistance|lipsDistance] (iPhone) or timestamp_ms,jaw_open,mouth_close (Android)"
)


# --------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """How one curve value is made from the blendshapes, and its normalisation range (vmin, vmax)."""

    name: str
    description: str
    norm_range: tuple[float, float] | None  # None: taken from the data (lips distance is in cm)
    needs_lips: bool = False

    def compute(self, jaw: np.ndarray, close: np.ndarray, lips: np.ndarray | None) -> np.ndarray:
        if self.name == "jaw-minus-close":
            return jaw - close
        if self.name == "jaw":
            return jaw
        if self.name == "close":
            return close
        if self.name == "jaw-times-open":
            return jaw * (1.0 - close)
        if self.name == "lips-distance":
            assert lips is not None
            return lips
        raise ValueError(self.name)


TARGETS = {
    t.name: t
    for t in (
        # jawOpen - mouthClose may go slightly negative (the original's HEAD uses vmin -0.15, no clipping)
        Target("jaw-minus-close", "jawOpen - mouthClose (the original's default)", (-0.15, 1.0)),
        Target("jaw", "jawOpen", (0.0, 1.0)),
        Target("close", "mouthClose", (0.0, 1.0)),
        Target("jaw-times-open", "jawOpen * (1 - mouthClose)", (0.0, 1.0)),
        Target("lips-distance", "LipsDistance (cm)", None, needs_lips=True),
    )
}


# --------------------------------------------------------------------------------------------- reading a take


class BadTake(Exception):
    """A take that cannot be used; `reason` is one line for the summary."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Capture:
    """Tracker rows of one take. times (R,) s; jaw, close (R,); lips (R,) or None."""

    times: np.ndarray
    jaw: np.ndarray
    close: np.ndarray
    lips: np.ndarray | None
    schema: str
    frozen_dropped: int = 0


def read_capture(path: Path) -> Capture:
    """Parse a LipsSync `mouth_data.csv` (iPhone or Android schema). Raises BadTake with the reason."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BadTake(path, f"cannot read ({e.strerror})") from None
    if not raw.strip():
        raise BadTake(path, "empty file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadTake(path, "not a UTF-8 text CSV") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    hset = set(header)
    if hset.issuperset(IPHONE_COLUMNS) or any(h in hset for h in ("TimeStamp", "jawOpen", "mouthClose")):
        schema = "iphone"
        lips_names = [h for h in header if h in IPHONE_LIPS]
        wanted = list(IPHONE_COLUMNS) + lips_names[:1]
    elif any(h in hset for h in ANDROID_COLUMNS):
        schema = "android"
        wanted = list(ANDROID_COLUMNS)
    else:
        raise BadTake(path, f"unrecognised CSV header (found: {', '.join(header) or 'nothing'}); "
                            f"expected {EXPECTED_HEADERS}")  # fmt: skip
    missing = [c for c in wanted if c not in hset]
    extra = [h for h in header if h not in wanted]
    if missing or extra or len(header) != len(hset):
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected column(s) {', '.join(extra)}")
        if len(header) != len(hset):
            problems.append("duplicate column names")
        raise BadTake(path, f"{'; '.join(problems)} (found: {', '.join(header)}; expected {EXPECTED_HEADERS})")
    rows = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BadTake(path, f"line {line_no}: {len(row)} fields, header has {len(header)}")
        try:
            rows.append([float(c) for c in row])
        except ValueError:
            raise BadTake(path, f"line {line_no}: non-numeric value") from None
    if not rows:
        raise BadTake(path, "no data rows (header only)")
    table = np.asarray(rows, dtype=np.float64)
    cols = {name: table[:, i] for i, name in enumerate(header)}
    if np.isnan(table).any() or np.isinf(table).any():
        bad_row = int(np.where(~np.isfinite(table).all(axis=1))[0][0]) + 2
        raise BadTake(path, f"NaN or infinite value (first at line {bad_row})")
    if schema == "iphone":
        times, jaw, close = cols["TimeStamp"], cols["jawOpen"], cols["mouthClose"]
        lips = cols[wanted[3]] if len(wanted) == 4 else None
    else:
        times, jaw, close, lips = cols["timestamp_ms"] / 1000.0, cols["jaw_open"], cols["mouth_close"], None
    if (times < 0).any():
        raise BadTake(path, f"negative timestamp (first at line {int(np.argmax(times < 0)) + 2})")
    steps = np.diff(times)
    if (steps < 0).any():
        raise BadTake(path, f"timestamps go backwards (first at line {int(np.argmax(steps < 0)) + 3})")
    return Capture(times, jaw, close, lips, schema)


def drop_frozen_start(cap: Capture) -> Capture:
    """Drop the run of rows at the start whose values equal the first row (a tracker not locked on yet).

    Rows with duplicate timestamps are also removed (the first one kept), so the curve is a function of time.
    """
    values = np.stack([v for v in (cap.jaw, cap.close, cap.lips) if v is not None], axis=1)
    same = np.all(values == values[0], axis=1)
    n_frozen = int(np.argmin(same)) if not same.all() else len(same)
    if n_frozen == 1:
        n_frozen = 0  # a single first row is not a frozen run
    keep = np.arange(n_frozen, len(cap.times))
    if len(keep):
        t = cap.times[keep]
        keep = keep[np.concatenate([[True], np.diff(t) > 0])]
    sel = lambda a: None if a is None else a[keep]  # noqa: E731
    return Capture(cap.times[keep], cap.jaw[keep], cap.close[keep], sel(cap.lips), cap.schema, n_frozen)


_ASS_TIME = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def _ass_seconds(text: str) -> float | None:
    m = _ASS_TIME.match(text)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def read_mask_ass(path: Path) -> list[tuple[float, float]]:
    """`Dialogue:` spans (start, end) in seconds of audio time from an Aegisub `mask.ass` (regions to silence)."""
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as e:
        raise BadTake(path, f"cannot read mask ({e.strerror})") from None
    spans = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("Dialogue:"):
            continue
        fields = line[len("Dialogue:") :].split(",")
        start = _ass_seconds(fields[1]) if len(fields) > 2 else None
        end = _ass_seconds(fields[2]) if len(fields) > 2 else None
        if start is None or end is None or end < start:
            raise BadTake(path, f"line {line_no}: cannot read the Dialogue start/end times")
        spans.append((start, end))
    return spans


# --------------------------------------------------------------------------------------------- finding takes


@dataclass(frozen=True)
class TakeSource:
    """One wav with its capture CSV. `rel` is the wav path relative to the source root (posix)."""

    wav: Path
    csv: Path
    rel: str
    speaker: str

    @property
    def item_id(self) -> str:
        return self.rel.rsplit(".", 1)[0]

    @property
    def npz_rel(self) -> str:
        return f"{ITEMS_DIR}/{self.item_id}.npz"


def find_takes(root: Path) -> tuple[list[TakeSource], list[tuple[str, str]], str]:
    """Every take folder under `root` holding `mouth_data.csv` and a wav.

    Returns (takes, problems as (path, reason), layout). Speaker = first path component under root; in the flat
    layout (`<take>/` directly under root) every take is its own speaker. Every `*.wav` in a take folder is
    an item against that folder's CSV, as in the original.
    """
    takes: list[TakeSource] = []
    problems: list[tuple[str, str]] = []
    depths = set()
    for csv_path in sorted(root.rglob("mouth_data.csv")):
        folder = csv_path.parent
        wavs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
        rel_folder = folder.relative_to(root)
        if not wavs:
            problems.append((str(rel_folder / "mouth_data.csv"), "no .wav next to mouth_data.csv"))
            continue
        parts = rel_folder.parts
        depths.add(len(parts))
        speaker = parts[0] if parts else root.name
        for wav in wavs:
            takes.append(TakeSource(wav, csv_path, wav.relative_to(root).as_posix(), speaker))
    layout = "flat" if depths == {1} else ("speaker/take" if depths and min(depths) >= 2 else "mixed")
    return takes, problems, layout


def read_path_list(list_path: Path, root: Path) -> list[str]:
    """Audio paths (relative to `root`) from a list file in utf-8, utf-8-sig or gbk -> posix paths relative to root.

    A path that does not exist or leaves `root` is a BadInput.
    """
    try:
        raw = list_path.read_bytes()
    except OSError as e:
        raise BadInput(list_path, f"cannot read list ({e.strerror})") from None
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise BadInput(list_path, "list is neither UTF-8 nor GBK text")
    root_resolved = root.resolve()
    out = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entry = entry.replace("\\", "/")
        target = (root / entry).resolve()
        try:
            rel = target.relative_to(root_resolved)
        except ValueError:
            raise BadInput(list_path, f"line {line_no}: '{entry}' leaves {root}") from None
        if not target.exists():
            raise BadInput(list_path, f"line {line_no}: '{entry}' does not exist under {root}")
        out.append(rel.as_posix())
    return out


def read_speaker_map(path: Path, root: Path) -> dict[str, str]:
    """`--speaker-map`: a JSON object {take folder or wav path relative to `root`: singer name} -> the same with
    posix paths; a path that does not exist or leaves `root` is a BadInput."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise BadInput(path, f"cannot read the speaker map ({type(e).__name__}); expected a JSON object "
                             "{take folder or wav: singer}") from None  # fmt: skip
    if not isinstance(doc, dict) or not all(isinstance(v, str) and v.strip() for v in doc.values()):
        raise BadInput(path, "a speaker map is a JSON object {take folder or wav (relative to the source): singer}")
    root_resolved = root.resolve()
    out = {}
    for entry, singer in doc.items():
        target = (root / str(entry).replace("\\", "/")).resolve()
        try:
            rel = target.relative_to(root_resolved).as_posix()
        except ValueError:
            raise BadInput(path, f"'{entry}' leaves {root}") from None
        if not target.exists():
            raise BadInput(path, f"'{entry}' does not exist under {root}")
        out[rel] = singer.strip()
    return out


def assign_speakers(takes: list[TakeSource], mapping: dict[str, str]) -> list[TakeSource]:
    """Takes with the singer of the longest matching `mapping` entry (a wav, or a folder above it)."""
    from dataclasses import replace

    out = []
    for t in takes:
        best = max((p for p in mapping if t.rel == p or t.rel.startswith(p.rstrip("/") + "/") or p == "."),
                   key=len, default=None)  # fmt: skip
        out.append(t if best is None else replace(t, speaker=mapping[best]))
    return out


def _expand_list(entries: list[str], takes: list[TakeSource]) -> set[str]:
    """List entries (wav files or take folders) -> the `rel` of matching takes."""
    by_rel = {t.rel for t in takes}
    chosen = set()
    for entry in entries:
        if entry in by_rel:
            chosen.add(entry)
        else:  # a folder: every take under it
            prefix = entry.rstrip("/") + "/"
            chosen.update(r for r in by_rel if r.startswith(prefix))
    return chosen


# --------------------------------------------------------------------------------------------- one take


def build_item(src: TakeSource, target_name: str, cfg: MelConfig | None = None) -> dict[str, Any]:
    """Read, check, crop and featurise one take with `cfg` (default: the original's features)
    -> {"mel" (T, n_mels) as stored, "curve", "meta"}. Raises BadTake."""
    from voxtool.audio.framing import log_mel
    from voxtool.audio.io import load_audio

    target = TARGETS[target_name]
    cfg = cfg or default_mel()
    cap = read_capture(src.csv)
    if target.needs_lips and cap.lips is None:
        raise BadTake(src.csv, f"target '{target_name}' needs a LipsDistance column, which this CSV lacks")
    cap = drop_frozen_start(cap)
    if len(cap.times) < 2:
        raise BadTake(src.csv, "no tracked rows after the frozen start")
    try:
        audio = load_audio(src.wav, sr=cfg.sample_rate)
    except BadInput as e:
        raise BadTake(src.wav, e.problem) from None
    duration = len(audio) / cfg.sample_rate
    t_first, t_last = float(cap.times[0]), float(cap.times[-1])
    if t_last > duration + CAPTURE_TOLERANCE_S:
        raise BadTake(src.csv, f"capture runs to {t_last:.2f} s but the audio is only {duration:.2f} s long")
    t_last = min(t_last, duration)
    if t_last - t_first < MIN_CAPTURE_S:
        raise BadTake(src.csv, f"capture span too short ({t_last - t_first:.3f} s)")
    start = int(round(t_first * cfg.sample_rate))
    stop = int(round(t_last * cfg.sample_rate))
    crop = audio[start:stop]
    mel = np.ascontiguousarray(log_mel(crop, cfg).T)  # the chunked front-end of inference, exactly
    frame_t = start / cfg.sample_rate + cfg.frame_times(mel.shape[0])  # true centres, in wav time
    values = target.compute(cap.jaw, cap.close, cap.lips)
    curve = np.interp(frame_t, cap.times, values).astype(np.float32)
    mask_path = src.wav.parent / "mask.ass"
    masked = 0
    if mask_path.is_file():
        for a, b in read_mask_ass(mask_path):
            inside = (frame_t >= a) & (frame_t <= b)
            masked += int(inside.sum())
            curve[inside] = 0.0
    meta = {
        "id": src.item_id, "source": src.rel, "speaker": src.speaker, "schema": cap.schema,
        "frames": int(mel.shape[0]), "seconds": float(len(crop) / cfg.sample_rate),
        "crop_start": start / cfg.sample_rate, "crop_end": stop / cfg.sample_rate,
        "frozen_rows_dropped": cap.frozen_dropped, "masked_frames": masked,
        "min": float(curve.min()), "max": float(curve.max()), "target": target_name,
    }  # fmt: skip
    return {"mel": mel, "curve": curve, "meta": meta}


def save_item(path: Path, item: dict[str, Any]) -> None:
    from voxtool.fileio import atomic_write

    with atomic_write(path) as f:
        np.savez(f, mel=item["mel"], curve=item["curve"], meta=np.array(json.dumps(item["meta"])))


def read_item_meta(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def _process(src: TakeSource, out: Path, target: str, cfg: MelConfig, overwrite: bool
             ) -> tuple[str, dict | None, str | None]:
    """Worker: (rel, meta or None, bad reason or None). Skips a take whose .npz already exists."""
    dst = out / src.npz_rel
    if dst.is_file() and not overwrite:
        try:
            meta = read_item_meta(dst)
            if meta.get("target") == target:
                meta["reused"] = True
                return src.rel, meta, None
        except Exception:  # an unreadable old item is simply rebuilt
            pass
    try:
        item = build_item(src, target, cfg)
    except BadTake as e:
        if dst.is_file():  # a stale item for a take that is now bad must not stay in the dataset
            dst.unlink()
        return src.rel, None, f"{e.reason}"
    save_item(dst, item)
    return src.rel, item["meta"], None


# --------------------------------------------------------------------------------------------- whole dataset


@dataclass
class PrepSummary:
    out: Path
    takes: int = 0
    seconds: float = 0.0
    frames: int = 0
    speakers: int = 0
    layout: str = ""
    splits: dict[str, int] = field(default_factory=dict)
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def prepare_lipsync(
    src_dir: Path,
    out: Path,
    target: str = "jaw-minus-close",
    unseen_list: Path | None = None,
    valid_list: Path | None = None,
    speaker_map: Path | None = None,
    workers: int = 1,
    overwrite: bool = False,
    strict: bool = False,
    log: Callable[[str], None] = lambda s: None,
    advance: Callable[..., None] | None = None,
    mel: MelConfig | None = None,
) -> PrepSummary:
    """Prepare a LipsSync folder into `out`. `valid_list` defaults to `src_dir/valid.txt` when it exists; `mel`
    (a config's `[mel]`) defaults to the original's features; `speaker_map` (`read_speaker_map`) names the singer
    of takes whose first folder does not."""
    from voxtool.fileio import check_output_dir, ensure_output_dir
    from voxtool.prep_pool import map_items

    src_dir, out = Path(src_dir), Path(out)
    if target not in TARGETS:
        raise BadInput(None, f"unknown --target '{target}' (choose from {', '.join(TARGETS)})")
    check_output_dir(out)
    if not src_dir.is_dir():
        raise BadInput(src_dir, "not a directory")
    takes, problems, layout = find_takes(src_dir)
    if not takes:
        raise BadInput(src_dir, "no take folders with mouth_data.csv and a .wav found")
    if strict and problems:
        raise BadInput(problems[0][0], problems[0][1])
    if speaker_map is not None:
        takes = assign_speakers(takes, read_speaker_map(speaker_map, src_dir))
    elif layout == "flat":
        log("flat layout (<take>/ directly under the folder): every take counts as its own speaker")
    if valid_list is None and (src_dir / "valid.txt").is_file():
        valid_list = src_dir / "valid.txt"
    valid = _expand_list(read_path_list(valid_list, src_dir), takes) if valid_list else set()
    unseen = _expand_list(read_path_list(unseen_list, src_dir), takes) if unseen_list else set()
    both = valid & unseen
    if both:
        raise BadInput(unseen_list, f"'{sorted(both)[0]}' is in both the valid and the unseen list")
    old = out / "dataset.json"
    mel = mel or default_mel()
    if old.is_file() and not overwrite:
        try:
            old_meta = json.loads(old.read_text())
        except (OSError, ValueError):
            old_meta = {}
        if old_meta.get("target") != target or old_meta.get("mel") != mel.model_dump():
            raise BadInput(out, f"holds a dataset with other settings (target {old_meta.get('target')}); "
                                "use --overwrite or another output folder")  # fmt: skip

    results: dict[str, dict] = {}
    bad: list[tuple[str, str]] = list(problems)

    def collect(rel: str, meta: dict | None, reason: str | None) -> None:
        if reason is not None:
            if strict:
                raise BadInput(src_dir / rel, reason)
            bad.append((rel, reason))
        else:
            results[rel] = meta
        if advance:
            advance(1)

    ensure_output_dir(out)  # also removes temporary files that killed runs left behind
    # one STFT per take is too small for intra-op threads: parallelism is across takes
    for r in map_items(lambda s: _process(s, out, target, mel, overwrite), takes, workers, ordered=False,
                       torch_threads=1):
        collect(*r)
    return _write_dataset(out, takes, results, bad, valid, unseen, target, layout, mel, log)


def _write_dataset(out, takes, results, bad, valid, unseen, target, layout, mel, log) -> PrepSummary:
    from voxtool import __version__
    from voxtool.fileio import write_text_atomic

    good = [t for t in takes if t.rel in results]
    speakers = {name: i for i, name in enumerate(sorted({t.speaker for t in good}))}
    split_of = {t.rel: ("unseen" if t.rel in unseen else "valid" if t.rel in valid else "train") for t in good}
    if not good:
        raise BadInput(out, f"no usable takes ({len(bad)} skipped; first: {bad[0][0]}: {bad[0][1]})")
    items = {}
    for t in good:
        meta = results[t.rel]
        items[t.npz_rel] = {
            "source": t.rel, "speaker": t.speaker, "split": split_of[t.rel],
            "frames": meta["frames"], "seconds": round(meta["seconds"], 4),
        }  # fmt: skip
    tr = TARGETS[target]
    lo = min(results[t.rel]["min"] for t in good)
    hi = max(results[t.rel]["max"] for t in good)
    norm = tr.norm_range if tr.norm_range else (0.0, float(math.ceil(max(hi, 1e-3) * 10) / 10))
    counts = {s: sum(1 for t in good if split_of[t.rel] == s) for s in SPLITS}
    if counts["train"] == 0:
        raise BadInput(out, "every usable take is in the valid/unseen lists: nothing left to train on")
    for split in SPLITS:
        lines = [t.npz_rel for t in good if split_of[t.rel] == split]
        write_text_atomic(out / f"{split}.txt", "".join(f"{line}\n" for line in lines))
    for name in ("speakers.json", "spk_mapping.json"):  # voxtool's name and the original's
        write_text_atomic(out / name, json.dumps(speakers, indent=1, ensure_ascii=False) + "\n")
    meta = {
        "format": DATASET_FORMAT, "format_version": DATASET_VERSION, "voxtool_version": __version__,
        "kind": "lipsync", "mel": mel.model_dump(), "target": target, "target_description": tr.description,
        "norm_range": list(norm), "value_range": [lo, hi], "layout": layout, "speakers": speakers,
        "counts": counts, "skipped": [{"path": p, "reason": r} for p, r in bad], "items": items,
    }  # fmt: skip
    write_text_atomic(out / "dataset.json", json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return PrepSummary(
        out=out, takes=len(good), seconds=sum(results[t.rel]["seconds"] for t in good),
        frames=sum(results[t.rel]["frames"] for t in good), speakers=len(speakers), layout=layout,
        splits=counts, reused=sum(1 for t in good if results[t.rel].get("reused")), skipped=bad,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- reading back


@dataclass
class Item:
    """One prepared take: mel (n_mels, T) float32, curve (T,) float32 (None when unlabeled), speaker id."""

    path: str
    mel: np.ndarray
    curve: np.ndarray | None
    speaker: int


class MouthDataset:
    """A prepared dataset folder: its metadata and split lists."""

    def __init__(self, root: Path):
        from voxtool.datasets import PreparedDataset

        self.root = Path(root)
        self.prepared = PreparedDataset(root, format=DATASET_FORMAT, task="mouth", prep="voxtool prep lipsync",
                                        version_key="format_version", max_version=DATASET_VERSION, splits=SPLITS)
        self.meta = self.prepared.meta
        self._check_meta(self.prepared.meta_path)

    def _check_meta(self, meta_path: Path) -> None:
        """The fields training and evaluation read: valid mel settings and, when labeled, a 2-number norm_range."""
        try:
            self.mel_cfg = MelConfig.model_validate(self.meta.get("mel"))
        except Exception as e:  # pydantic.ValidationError
            raise BadInput(meta_path, f"no valid 'mel' settings ({str(e).splitlines()[0][:100]})") from None
        if self.kind == "lipsync":
            rng = self.meta.get("norm_range")
            if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, (int, float)) for v in rng)):
                raise BadInput(meta_path, f"'norm_range' must be two numbers, not {rng!r}")
        if not isinstance(self.meta.get("speakers", {}), dict) or not isinstance(self.meta.get("items", {}), dict):
            raise BadInput(meta_path, "'speakers' and 'items' must be tables")

    @property
    def kind(self) -> str:
        """'lipsync' (labeled) or 'unlabeled'."""
        return str(self.meta.get("kind", "lipsync"))

    @property
    def norm_range(self) -> tuple[float, float]:
        lo, hi = self.meta["norm_range"]
        return float(lo), float(hi)

    @property
    def speakers(self) -> dict[str, int]:
        return dict(self.meta.get("speakers", {}))

    def load_split(self, split: str, limit: int = 0) -> list[Item]:
        """The items of `split` in list order (the first `limit` when > 0); a missing list is no items."""
        items = []
        spk = self.speakers
        info = self.meta.get("items", {})
        entries = self.prepared.entries(split)
        for rel in entries[:limit] if limit > 0 else entries:
            path = self.root / rel
            if not path.is_file():
                raise BadInput(path, f"listed in {split}.txt but missing; re-run prep")
            mel, curve = self.read_item(path)
            entry = info.get(rel, {})
            items.append(Item(rel, mel, curve, spk.get(entry.get("speaker", "") if isinstance(entry, dict) else "", 0)))
        return items

    def read_item(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """One `.npz` (mel stored (T, n_mels)) -> (mel (n_mels, T) float32, curve (T,) float32 or None when
        unlabeled), checked against the dataset's settings; a corrupt, incomplete or wrongly shaped item is a
        BadInput naming the file."""
        labeled = self.kind == "lipsync"
        try:
            with np.load(path, allow_pickle=False) as z:
                for key in ("mel", "curve") if labeled else ("mel",):
                    if key not in z.files:
                        raise BadInput(path, f"dataset item lacks the '{key}' array; re-run prep")
                mel = z["mel"]
                curve = z["curve"] if "curve" in z.files else None
        except BadInput:
            raise
        except Exception as e:  # BadZipFile, EOFError, OSError, ValueError (object arrays), zlib.error, ...
            text = str(e).strip()
            raise BadInput(path, f"unreadable dataset item ({text.splitlines()[0][:80] if text else type(e).__name__})"
                           ) from None
        n_mels = self.mel_cfg.n_mels
        if mel.ndim != 2 or mel.shape[1] != n_mels or mel.shape[0] == 0 or not np.issubdtype(mel.dtype, np.floating):
            raise BadInput(path, f"'mel' has shape {mel.shape} and dtype {mel.dtype}; (frames, {n_mels}) floats expected")
        mel = np.ascontiguousarray(mel.T, dtype=np.float32)
        if not np.isfinite(mel).all():
            raise BadInput(path, "'mel' holds NaN or infinite values")
        if curve is not None:
            if curve.shape != (mel.shape[1],) or not np.issubdtype(curve.dtype, np.number):
                raise BadInput(path, f"'curve' has shape {curve.shape}; ({mel.shape[1]},) expected, one value per mel frame")
            curve = curve.astype(np.float32)
            if not np.isfinite(curve).all():
                raise BadInput(path, "'curve' holds NaN or infinite values")
        return mel, curve


# --------------------------------------------------------------------------------------------- training crops


class CropSampler:
    """Random fixed-length crops from a list of (n_mels, T_i) mels (and optional (T_i,) curves).

    Files are drawn with probability proportional to their frame count (the original's HEAD), so every frame is
    equally likely to be seen. Files shorter than the crop are padded with the log floor and masked out. Used
    for labeled batches now and reusable as is for unlabeled (curve-less) batches.
    """

    def __init__(self, mels: list[np.ndarray], curves: list[np.ndarray] | None, crop: int, pad_value: float):
        if not mels:
            raise ValueError("no items to sample from")
        self.mels = mels
        self.curves = curves
        self.crop = crop
        self.pad_value = pad_value
        lengths = np.array([m.shape[1] for m in mels], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        """-> mel (B, F, crop) float32, mask (B, crop) float32, curve (B, crop) float32 when labeled."""
        n_mels = self.mels[0].shape[0]
        mel = np.full((batch, n_mels, self.crop), self.pad_value, dtype=np.float32)
        mask = np.zeros((batch, self.crop), dtype=np.float32)
        curve = np.zeros((batch, self.crop), dtype=np.float32) if self.curves is not None else None
        picks = rng.choice(len(self.mels), size=batch, p=self.weights)
        for b, i in enumerate(picks):
            length = self.mels[i].shape[1]
            start = int(rng.integers(0, length - self.crop + 1)) if length > self.crop else 0
            n = min(self.crop, length)
            mel[b, :, :n] = self.mels[i][:, start : start + n]
            mask[b, :n] = 1.0
            if curve is not None:
                curve[b, :n] = self.curves[i][start : start + n]
        out = {"mel": mel, "mask": mask, "index": picks}
        if curve is not None:
            out["curve"] = curve
        return out


def augment_volume(mel: np.ndarray, rng: np.random.Generator, p: float, max_shift: float, floor: float) -> np.ndarray:
    """Random gain on log-mels (B, F, T): with probability p add U(-s, s) (natural-log units), then clip at floor.

    The original's ±3 in ln units is about ±26 dB of gain.
    """
    out = mel.copy()
    for b in range(mel.shape[0]):
        if rng.random() < p:
            out[b] += rng.uniform(-max_shift, max_shift)
    return np.maximum(out, floor)
