"""Reading back a prepared dataset folder: `dataset.json` and its split lists, with one set of checks.

Every task's `voxtool prep ...` writes the same shape of folder:

    OUT/dataset.json        {"format": "voxtool-<task>-dataset", "voxtool_version": ..., [version key], ...}
    OUT/<split>.txt         item paths relative to OUT, one per line (train, valid, unseen, test)
    OUT/items/...           the items (task-specific)

    ds = PreparedDataset(root, format="voxtool-mouth-dataset", task="mouth", prep="voxtool prep lipsync",
                         version_key="format_version", max_version=1)
    ds.meta                          # the parsed dataset.json (a dict)
    ds.entries("valid")              # ["items/a.npz", ...]: relative, checked to stay inside the folder
    ds.paths("train", required=True) # [root / "items/a.npz", ...]; a missing list is then a BadInput

Every problem is a one-line BadInput naming the file: no dataset.json, bad JSON, another format, a format
version newer than this voxtool reads, a missing required split list, an entry that is absolute or leaves the
folder (`..`, or a symlink pointing out of it: paths are resolved before the check).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxtool.errors import BadInput

SPLITS = ("train", "valid", "unseen", "test")
META_NAME = "dataset.json"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; an unreadable or invalid one is a one-line BadInput naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInput(path, f"invalid JSON ({_first_line(e)})") from None


def read_split_list(root: str | Path, list_path: str | Path) -> list[str]:
    """The non-empty lines of a split list (stripped), each refused when absolute or resolving outside `root`."""
    base = Path(root).resolve()
    list_path = Path(list_path)
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as e:
        raise BadInput(list_path, f"cannot read the split list ({_first_line(e)})") from None
    entries = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        # strictly inside: the folder itself ('.') is no item either
        if Path(line).is_absolute() or base not in (base / line).resolve().parents:
            raise BadInput(list_path, f"entry {line!r} leaves the dataset folder")
        entries.append(line)
    return entries


class PreparedDataset:
    """A prepared dataset folder of one task (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        *,
        format: str,
        task: str,
        prep: str = "voxtool prep ...",
        version_key: str | None = None,
        max_version: int | None = None,
        splits: Sequence[str] = SPLITS,
    ):
        """`format`: the expected "format" field; `task` and `prep` (the command that writes it) make the
        messages; with `version_key` and `max_version` a dataset.json whose integer `meta[version_key]` is above
        `max_version` (written by a newer voxtool) is refused; a missing version key is accepted (older files)."""
        self.root = Path(root)
        self.task = task
        self.splits = tuple(splits)
        self.meta_path = self.root / META_NAME
        if not self.meta_path.is_file():
            raise BadInput(self.root, f"not a prepared {task} dataset (no {META_NAME}; run `{prep}` first)")
        meta = read_json(self.meta_path)
        found = meta.get("format") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or found != format:
            raise BadInput(self.meta_path, f"not a prepared {task} dataset (format {found!r}, not {format!r})")
        self.meta: dict[str, Any] = meta
        if version_key is not None and max_version is not None and version_key in meta:
            version = meta[version_key]
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise BadInput(self.meta_path, f"'{version_key}' must be a positive integer, not {version!r}")
            if version > max_version:
                by = meta.get("voxtool_version", "?")
                raise BadInput(
                    self.meta_path,
                    f"dataset format version {version} (written by voxtool {by}) is newer "
                    f"than this voxtool reads ({max_version}); upgrade voxtool or re-run prep",
                )

    @property
    def voxtool_version(self) -> str | None:
        """The voxtool version that wrote the dataset (None for files without one)."""
        v = self.meta.get("voxtool_version")
        return None if v is None else str(v)

    def list_path(self, split: str) -> Path:
        if split not in self.splits:
            raise BadInput(None, f"unknown split {split!r} (choose from {', '.join(self.splits)})")
        return self.root / f"{split}.txt"

    def has_split(self, split: str) -> bool:
        return self.list_path(split).is_file()

    def entries(self, split: str, *, required: bool = False) -> list[str]:
        """Relative item paths of `split` in list order; a missing list is [] (or a BadInput when `required`)."""
        path = self.list_path(split)
        if not path.is_file():
            if required:
                raise BadInput(path, f"split list not found (the dataset has no {split} split)")
            return []
        return read_split_list(self.root, path)

    def paths(self, split: str, *, required: bool = False) -> list[Path]:
        """`root / entry` for every entry of `split` (not resolved: they read as the folder was given)."""
        return [self.root / e for e in self.entries(split, required=required)]

    def counts(self) -> dict[str, int]:
        """Entries per split present on disk."""
        return {s: len(self.entries(s)) for s in self.splits if self.has_split(s)}


@dataclass
class PrepReport:
    """What a prep wrote per split (items, minutes of audio) and what it skipped, with the reason."""

    written: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})
    seconds: dict[str, float] = field(default_factory=lambda: {"train": 0.0, "valid": 0.0})
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def rows(self) -> list[list]:
        """[split, items, minutes] per split, for the summary table."""
        return [[s, self.written[s], round(self.seconds[s] / 60, 2)] for s in ("train", "valid")]


def split_names(names: list[str], valid_fraction: float, seed: int) -> dict[str, str]:
    """name -> 'train'/'valid': a seeded permutation; at least one item each when there are two or more (a prep's
    validation list when the corpus does not bring one)."""
    import numpy as np

    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_valid = int(round(valid_fraction * len(names)))
    if valid_fraction > 0 and len(names) >= 2:
        n_valid = min(max(n_valid, 1), len(names) - 1)
    return {name: ("valid" if i < n_valid else "train") for i, name in enumerate(order)}

