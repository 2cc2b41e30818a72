"""Inputs for batch commands: files, directories and globs -> (source, destination) jobs.

Rules (DESIGN.md, shell-script friendly):
- one file and `--out x.csv` -> exactly that file;
- one file and no `--out` -> `<stem><ext>` next to the input;
- otherwise `--out` is a directory: a directory input mirrors into it (`a/b/song.wav` -> `OUT/a/b/song.csv`),
  a file (or a glob match) goes to `OUT/<stem><ext>`;
- a missing input, or a glob that matches nothing, is a BadInput; two inputs mapping to the same output too;
- an output may never replace an input or a protected file (the model; every file of a run folder given as
  --model): `check_outputs` refuses that before any work, for every command that writes files.
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


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _role(path: Path) -> str:
    return "model" if path.suffix.lower() in (".pt", ".pth", ".ckpt", ".onnx", ".safetensors") else "input"


def protected_paths(*paths: str | os.PathLike | None) -> list[Path]:
    """The existing paths among `paths` (a model file, a run folder, a lyrics file...), for `protect=`."""
    return [Path(p) for p in paths if p is not None and os.fspath(p) and Path(p).exists()]


def check_outputs(
    outputs: list[Path],
    inputs: list[Path] = (),
    protect: list[Path] = (),
    option: str = "--out",
) -> None:
    """Refuse (BadInput) any output that is an input file or a protected path, compared as resolved paths and
    as the same file on disk (hard links, symlinks). A protected directory (a run folder) protects every file
    in it; new files may still be written there."""
    by_key: dict[tuple[int, int], tuple[str, Path]] = {}
    by_path: dict[Path, tuple[str, Path]] = {}

    def note(path: Path, role: str) -> None:
        key = _file_key(path)
        if key is not None:
            by_key.setdefault(key, (role, path))
        by_path.setdefault(path.resolve(), (role, path))

    for path in inputs:
        note(Path(path), "input")
    dirs: list[tuple[Path, Path]] = []
    for path in protect:
        path = Path(path)
        if path.is_dir():
            dirs.append((path.resolve(), path))
        else:
            note(path, _role(path))
    for out in outputs:
        out = Path(out)
        key = _file_key(out) if out.is_file() else None
        hit = (by_key.get(key) if key is not None else None) or by_path.get(out.resolve())
        if hit is None and out.exists():
            resolved = out.resolve()
            for root, _shown in dirs:
                if resolved.is_relative_to(root):
                    hit = (_role(out) if _role(out) == "model" else "run folder file", out)
                    break
        if hit is not None:
            role, what = hit
            raise BadInput(out, f"would overwrite the {role} {what}; choose another {option}")


def check_dataset_out(out: Path, inputs: list[Path | None]) -> None:
    """A prep command's OUT folder: not one of its input folders, and no input file inside it (prep rewrites
    list files such as train.txt/valid.txt there)."""
    out_r = Path(out).resolve()
    for path in inputs:
        if path is None or not Path(path).exists():
            continue
        path_r = Path(path).resolve()
        if path_r == out_r:
            raise BadInput(out, f"is the input {path} itself; choose another output folder")
        if Path(path).is_file() and path_r.is_relative_to(out_r):
            raise BadInput(path, f"lies inside the output folder {out}, which prep rewrites; "
                                 "move it or choose another output folder")


def expand_inputs(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike | None,
    ext: str,
    skip_existing: bool = False,
    accept=is_audio_file,
    protect: list[str | os.PathLike] = (),
) -> list[Job]:
    """Expand inputs into jobs; `ext` is the output suffix (e.g. '.csv').

    `protect`: files or folders no output may replace (the model, a run folder, a lyrics file); outputs are
    also checked against every input. Violations are a BadInput before any work starts."""
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
    check_outputs([j.dst for j in jobs], [j.src for j in jobs], [Path(p) for p in protect])
    if skip_existing:
        jobs = [j for j in jobs if not j.dst.exists()]
    return jobs
