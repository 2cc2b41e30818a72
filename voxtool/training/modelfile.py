"""The deployable `model.pt`: weights plus the config inference needs, loadable with weights_only=True."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxtool import __version__
from voxtool.errors import BadInput
from voxtool.fileio import load_torch, save_torch_atomic

FORMAT = "voxtool-model"


@dataclass
class ModelFile:
    task: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    voxtool_version: str = __version__
    path: Path | None = None


def save_model_file(path: str | os.PathLike, task: str, config: dict, state_dict: dict, meta: dict | None = None) -> None:
    payload = {
        "format": FORMAT,
        "task": task,
        "voxtool_version": __version__,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": meta or {},
    }
    save_torch_atomic(payload, path)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """A model file, or a run folder (its model.pt)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise BadInput(path, "model not found (expected a model.pt file or a run folder holding one)")
    return p


def is_model_file(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_model_file(path: str | os.PathLike, task: str | None = None) -> ModelFile:
    p = resolve_model_path(path)
    obj = load_torch(p)
    if not is_model_file(obj):
        raise BadInput(p, "not a voxtool model file (no 'format: voxtool-model' header)")
    if task is not None and obj["task"] != task:
        raise BadInput(p, f"model is for task '{obj['task']}', not '{task}'")
    return ModelFile(obj["task"], obj["config"], obj["state_dict"], obj.get("meta", {}),
                     obj.get("voxtool_version", "?"), p)
