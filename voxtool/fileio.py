"""Atomic file writing and safe checkpoint loading.

Everything voxtool writes goes through `atomic_write`: the data lands in a temporary file in the same
directory, is fsynced, and is renamed over the target only when complete. A killed process therefore
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from voxtool.errors import BadInput


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; finished outputs get the permissions a plain open() would give them
_FILE_MODE = 0o666 & ~_read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (same directory, same suffix) for libraries that want a filename; renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it over `path` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load_torch(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True; a missing file or a pickle needing code is a BadInput."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise BadInput(path, f"refusing to load: the file needs code to unpickle ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise BadInput(path, f"not a readable checkpoint ({str(e).splitlines()[0][:160]})") from None
