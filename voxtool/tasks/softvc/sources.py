"""The audio files `voxtool prep softvc` reads: files, folders (searched recursively) and globs -> `Source`s with
unique item names (the item path under OUT/items keeps each file's path relative to its input folder)."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from voxtool.errors import BadInput


@dataclass(frozen=True)
class Source:
    path: Path  # the audio file
    rel: str  # item path relative to OUT/items, without suffix (posix)


def collect_sources(inputs: list[str | Path]) -> list[Source]:
    """Files, folders (searched recursively; relative paths kept) and globs -> sources with unique item names."""
    from voxtool.audio.io import is_audio_file

    found: list[tuple[Path, str]] = []
    for text in map(str, inputs):
        if any(ch in text for ch in "*?["):
            files = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            files = [p for p in files if is_audio_file(p)]
            if not files:
                raise BadInput(text, "pattern matches no audio files")
            found += [(p, p.stem) for p in files]
        elif Path(text).is_dir():
            root = Path(text)
            files = sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p))
            if not files:
                raise BadInput(root, "directory holds no audio files")
            found += [(p, p.relative_to(root).with_suffix("").as_posix()) for p in files]
        elif Path(text).is_file():
            found.append((Path(text), Path(text).stem))
        else:
            raise BadInput(text, "no such file or directory")
    used: set[str] = set()
    sources = []
    for path, rel in found:
        rel = "/".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part).strip(".") or "item" for part in rel.split("/"))
        base, k = rel, 1
        while rel in used:
            k += 1
            rel = f"{base}_{k}"
        used.add(rel)
        sources.append(Source(path, rel))
    return sources
