"""Atomic file writing, output folders, and safe checkpoint loading.

Everything voxtool writes goes through `atomic_write`/`atomic_path`: the data lands in a temporary file in the
same directory, is fsynced, and is renamed over the target only when complete. A killed process therefore
leaves either the old file or the new one, never half of one.

A process killed with SIGKILL cannot remove its temporary file. Temporary names are therefore recognisable
(`.<name>.voxtool-tmp-<pid>-<random>.tmp<suffix>`), and the first write of a process into a folder removes the
ones whose writer is gone (`clean_stale_temps`): its pid is not alive, or the file is older than a day.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
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

TEMP_MARK = ".voxtool-tmp-"
_TEMP_RE = re.compile(r"^\..+\.voxtool-tmp-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")
# names of earlier versions (no pid): mkstemp's `.<stem>.XXXXXXXX.tmp<suffix>` and `.<name>.onnx.tmp`
_LEGACY_TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$|^\..+\.onnx\.tmp$")
STALE_AFTER_S = 24 * 3600.0  # a temp file this old is stale whoever wrote it (pid reuse, other hosts)
_PROCESS_START = time.time()
_swept: set[str] = set()
_swept_lock = threading.Lock()


def temp_prefix(path: Path) -> str:
    """Prefix of this process's temporary siblings of `path` (mkstemp appends 8 random characters)."""
    return f".{path.name}{TEMP_MARK}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows: rely on age there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """A temporary file of `atomic_path` whose writer is gone (dead pid, or older than STALE_AFTER_S)."""
    name = path.name
    m = _TEMP_RE.match(name)
    legacy = m is None and _LEGACY_TEMP_RE.match(name) is not None
    if m is None and not legacy:
        return False
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        return False
    now = time.time() if now is None else now
    if now - mtime > STALE_AFTER_S:
        return True
    if legacy:  # written by an earlier voxtool that is not running any more, unless it is newer than us
        return mtime < _PROCESS_START
    return not _pid_alive(int(m.group("pid")))


def clean_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove stale temporary files (see `is_stale_temp`) in `folder` (and below it); returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    now = time.time()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if recursive and entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    path = Path(entry.path)
                    if is_stale_temp(path, now):
                        path.unlink()
                        removed.append(path)
            except OSError:  # raced with another cleaner, or not ours to remove
                continue
    with _swept_lock:
        _swept.add(str(folder.resolve()))
    return removed


def _sweep_once(folder: Path) -> None:
    """The first write of this process into `folder` removes stale temporary files there."""
    key = str(folder.resolve())
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    clean_stale_temps(folder)


def check_output_dir(path: str | os.PathLike) -> Path:
    """BadInput unless `path` is an existing folder or could be created as one (no part of it is a file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(path, "exists and is not a folder (an output folder is needed here)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(path, f"cannot create the folder: {parent} is a file")
            break
    return path


def ensure_output_dir(path: str | os.PathLike, clean: bool = True) -> Path:
    """Create the output folder `path` (and parents); BadInput when it, or a parent, is an existing file.

    With `clean`, stale temporary files left anywhere below it by killed runs are removed.
    """
    path = check_output_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInput(path, "cannot create the folder: a parent path is a file") from None
    except OSError as e:
        raise BadInput(path, f"cannot create the folder ({e.strerror})") from None
    if clean:
        clean_stale_temps(path, recursive=True)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (same directory, same suffix) for libraries that want a filename; renamed on success."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(path, "is a folder; a file path is needed here")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInput(path, "cannot create its folder: a parent path is a file") from None
    except OSError as e:
        raise BadInput(path, f"cannot create its folder ({e.strerror})") from None
    _sweep_once(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as e:
        raise BadInput(path, f"cannot write ({e.strerror})") from None
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


NOT_A_CHECKPOINT = "not a PyTorch checkpoint (unreadable or corrupt)"


def load_torch(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True. Every failure is a one-line BadInput naming `path`:
    missing, empty, unreadable or corrupt files, and pickles that would need code to load (refused unexecuted)."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    if path.is_dir():
        raise BadInput(path, "is a folder, not a checkpoint file")
    if not path.is_file():
        raise BadInput(path, "file not found")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BadInput(path, f"cannot read ({e.strerror})") from None
    if size == 0:
        raise BadInput(path, "empty file (0 bytes), not a PyTorch checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" on files that are not checkpoints
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        needed = _global_in_message(str(e)) or pickle_global(path)
        if needed:
            raise BadInput(path, f"refusing to load: the file needs code to unpickle ({needed}); "
                                 "only plain weights are loaded") from None
        raise BadInput(path, NOT_A_CHECKPOINT) from None
    except PermissionError as e:
        raise BadInput(path, f"cannot read ({e.strerror})") from None
    except Exception:  # RuntimeError (damaged zip), EOFError, KeyError, ValueError, ... from garbage input
        raise BadInput(path, NOT_A_CHECKPOINT) from None


def _global_in_message(message: str) -> str | None:
    m = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", message)
    return m.group(1) if m else None


def pickle_global(path: str | os.PathLike) -> str | None:
    """The first global (module.name) that the pickle stream(s) of a file would import, read with pickletools
    (nothing is executed); None for a file that is not a well-formed pickle (or names no global)."""
    import io
    import pickletools
    import zipfile

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                if not pkl:
                    return None
                stream: IO[bytes] = io.BytesIO(z.read(pkl[0]))
        else:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        with stream:
            for _ in range(8):  # torch's legacy format is a few pickles in a row (magic, version, info, object)
                strings: list[str] = []
                for op, arg, _pos in pickletools.genops(stream):
                    if op.name in ("GLOBAL", "INST"):
                        return str(arg).replace(" ", ".")
                    if op.name == "STACK_GLOBAL":
                        return ".".join(strings[-2:]) if len(strings) >= 2 else "a global"
                    if isinstance(arg, str):
                        strings.append(arg)
                if not stream.read(1):
                    break
                stream.seek(-1, io.SEEK_CUR)
    except Exception:  # not a pickle (pickletools raises ValueError on unknown opcodes, EOF, ...)
        return None
    return None


def few(names: list[str], n: int = 3) -> str:
    """The first `n` names, and how many there are in all when there are more (for one-line key reports)."""
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def nested_state_dict(obj: Any, wrappers: tuple[str, ...], what: str, where: Any = None, depth: int = 3) -> dict:
    """The flat {name: tensor} state dict inside a loaded checkpoint: follows the first of `wrappers` present (e.g.
    "generator", "model", "state_dict"), up to `depth` levels. Anything else (no tensors, a non-dict, entries that are
    not tensors) is one BadInput line naming `what` the file should have held."""
    import torch

    def holds_tensors(o: Any) -> bool:
        return isinstance(o, dict) and any(isinstance(v, torch.Tensor) for v in o.values())

    for _ in range(depth):
        if not isinstance(obj, dict) or holds_tensors(obj):
            break
        inner = next((obj[k] for k in wrappers if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not holds_tensors(obj):
        held = f"keys {few([str(k) for k in obj])}" if isinstance(obj, dict) and obj else type(obj).__name__
        raise BadInput(where, f"not a {what} checkpoint (holds {held})")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        verb = "is not a tensor" if len(bad) == 1 else "are not tensors"
        raise BadInput(where, f"not a {what} state dict: {len(bad)} of {len(obj)} entries {verb} ({few(bad)})")
    return obj
