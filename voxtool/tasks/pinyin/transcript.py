"""What `transcribe pinyin` produces: a Transcript of timed segments (with per-phone times), and its files;
the lyrics files `--text` reads.

Formats (`--format`, else the suffix of `--out`, else csv):
- csv: `start,end,pinyin` per segment (`start,end,pinyin,text` when aligned to lyrics), times in s to 3 decimals;
- json: {"file", "duration", "pinyin", "aligned", "segments": [{start, end, pinyin, text, score, phones}]};
- textgrid: Praat long TextGrid with tiers [characters (aligned only),] pinyin, phones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from voxtool import outputs
from voxtool.errors import BadInput
from voxtool.fileio import atomic_path

FORMATS = outputs.OutputFormats(("csv", "json", "textgrid"), extensions={"textgrid": ".TextGrid"})


@dataclass
class Phone:
    start: float
    end: float
    phone: str


@dataclass
class Segment:
    start: float
    end: float
    pinyin: str
    text: str = ""
    score: float = 0.0  # mean log-probability of its tokens on their own frames (low = suspicious)
    phones: list[Phone] = field(default_factory=list)


@dataclass
class Transcript:
    duration: float
    segments: list[Segment]
    aligned: bool = False  # True: segments come from given lyrics

    @property
    def pinyin(self) -> str:
        return " ".join(s.pinyin for s in self.segments)

    def to_dict(self) -> dict:
        return {"duration": round(self.duration, 4), "pinyin": self.pinyin, "aligned": self.aligned,
                "segments": [asdict(s) for s in self.segments]}


def write_csv(tr: Transcript, path: Path) -> None:
    header = ["start", "end", "pinyin"] + (["text"] if tr.aligned else [])
    specs = ["{:.3f}", "{:.3f}", "{}"] + (["{}"] if tr.aligned else [])
    rows = [[s.start, s.end, s.pinyin] + ([s.text] if tr.aligned else []) for s in tr.segments]
    outputs.write_csv(path, header, rows, specs)


def write_json(tr: Transcript, path: Path, source: Path | None = None) -> None:
    d = tr.to_dict()
    if source is not None:
        d = {"file": str(source), **d}
    outputs.write_json(path, d, indent=1, ensure_ascii=False, trailing_newline=True)


def _tier_entries(items: list[tuple[float, float, str]], duration: float) -> list[tuple[float, float, str]]:
    """Non-overlapping, non-empty intervals within [0, duration] (praatio rejects anything else)."""
    out = []
    last = 0.0
    for start, end, label in items:
        start = max(start, last)
        end = min(end, duration)
        if end - start > 1e-4:
            out.append((start, end, label))
            last = end
    return out


def write_textgrid(tr: Transcript, path: Path) -> None:
    from praatio import textgrid

    dur = max(tr.duration, max((s.end for s in tr.segments), default=0.0), 1e-3)
    tg = textgrid.Textgrid()
    tiers = [("pinyin", [(s.start, s.end, s.pinyin) for s in tr.segments])]
    if tr.aligned:
        tiers.insert(0, ("characters", [(s.start, s.end, s.text) for s in tr.segments]))
    tiers.append(("phones", [(p.start, p.end, p.phone) for s in tr.segments for p in s.phones]))
    for name, entries in tiers:
        tg.addTier(textgrid.IntervalTier(name, _tier_entries(entries, dur), 0, dur))
    with atomic_path(path) as tmp:
        tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True)


def write_transcript(tr: Transcript, path: Path, fmt: str, source: Path | None = None) -> None:
    """Write `tr` to `path` in `fmt` (one of FORMATS); `source` (the audio) goes into JSON as "file"."""
    if fmt == "json":
        write_json(tr, path, source)
    elif fmt == "textgrid":
        write_textgrid(tr, path)
    else:
        write_csv(tr, path)


# ----------------------------------------------------------------------------------------------- lyrics in

def read_lyrics(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(path, f"cannot read lyrics ({e})") from None


def lyrics_for(src: Path, inputs: list[str], text: Path, n_jobs: int) -> str:
    """The lyrics of `src`: `text` itself (a file), or text/<path relative to its input folder>.txt."""
    if text.is_file():
        if n_jobs != 1:
            raise BadInput(text, "one lyrics file for several inputs; give a folder mirroring the inputs")
        return read_lyrics(text)
    if not text.is_dir():
        raise BadInput(text, "lyrics file or folder not found")
    rel = Path(src.name)
    for i in inputs:
        root = Path(i)
        if root.is_dir():
            try:
                rel = src.resolve().relative_to(root.resolve())
                break
            except ValueError:
                continue
    path = text / rel.with_suffix(".txt")
    if not path.is_file():
        raise BadInput(path, f"no lyrics for {src}")
    return read_lyrics(path)
