"""Inputs for batch commands: files, directories and globs -> (source, destination) jobs.

Rules (DESIGN.md, shell-script friendly):
- one file and `--out x.csv` -> exactly that file;
- one file and no `--out` -> `<stem><ext>` next to the input;
- otherwise `--out` is a directory: a directory input mirrors into it (`a/b/song.wav` -> `OUT/a/b/song.csv`),
  a file (or a glob match) goes to `OUT/<stem><ext>`;
- a missing input, or a glob that matches nothing, is a BadInput; two inputs mapping to the same output too.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from voxtool.audio.io import is_audio_file
from voxtool.errors import BadInput


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _collect(inputs: list[str], accept) -> list[tuple[Path, Path | None]]:
    """(file, directory root it was found under or None)."""
    found: list[tuple[Path, Path | None]] = []
    for text in inputs:
        if _is_glob(text):
            matches = sorted(glob.glob(text, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file() and accept(Path(m))]
            if not files:
                raise BadInput(text, "pattern matches no input files")
            found.extend((f, None) for f in files)
            continue
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and accept(p))
            if not files:
                raise BadInput(path, "directory holds no input files")
            found.extend((f, path) for f in files)
        elif path.is_file():
            found.append((path, None))
        else:
            raise BadInput(path, "no such file or directory")
    return found


def expand_inputs(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike | None,
    ext: str,
    skip_existing: bool = False,
    accept=is_audio_file,
) -> list[Job]:
    """Expand inputs into jobs; `ext` is the output suffix (e.g. '.csv')."""
    if not inputs:
        raise BadInput(None, "no inputs given")
    texts = [os.fspath(i) for i in inputs]
    found = _collect(texts, accept)
    out_path = None if out is None else Path(out)
    single = len(texts) == 1 and len(found) == 1 and found[0][1] is None and not _is_glob(texts[0])
    jobs: list[Job] = []
    if single:
        src = found[0][0]
        if out_path is None:
            dst = src.with_suffix(ext)
        elif out_path.is_dir() or (not out_path.suffix and not out_path.exists()):
            dst = out_path / f"{src.stem}{ext}"
        else:
            dst = out_path
        jobs.append(Job(src, dst))
    else:
        if out_path is not None and out_path.exists() and not out_path.is_dir():
            raise BadInput(out_path, "several inputs need --out to be a directory")
        for src, root in found:
            if out_path is None:
                dst = src.with_suffix(ext)
            elif root is None:
                dst = out_path / f"{src.stem}{ext}"
            else:
                dst = out_path / src.relative_to(root).with_suffix(ext)
            jobs.append(Job(src, dst))
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.dst.resolve()
        if key in seen:
            raise BadInput(job.src, f"writes the same output as {seen[key]} ({job.dst}); use a directory input")
        seen[key] = job.src
    if skip_existing:
        jobs = [j for j in jobs if not j.dst.exists()]
    return jobs
