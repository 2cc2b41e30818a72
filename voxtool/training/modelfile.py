"""The deployable `model.pt`: weights plus the config inference needs, loadable with weights_only=True."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxtool import __version__
from voxtool.errors import BadInput
from voxtool.fileio import load_torch, save_torch_atomic

FORMAT = "voxtool-model"


@dataclass
class Component:
    """One deployed part of a model file beside the main model: its weights and the config that builds it."""

    state_dict: dict[str, Any]
    config: dict[str, Any]


@dataclass
class ModelFile:
    task: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    voxtool_version: str = __version__
    path: Path | None = None
    components: dict[str, Component] = field(default_factory=dict)  # further deployed parts by name

    def component(self, name: str) -> Component:
        """A further deployed part (e.g. DiffVC's 'encoder'); BadInput naming what the file holds otherwise."""
        if name not in self.components:
            held = ", ".join(sorted(self.components)) or "none"
            raise BadInput(self.path, f"model file has no '{name}' component (it holds: {held})")
        return self.components[name]


def save_model_file(path: str | os.PathLike, task: str, config: dict, state_dict: dict, meta: dict | None = None,
                    components: dict[str, tuple[dict, dict]] | None = None) -> None:
    """`state_dict` is the main model; `components` maps further part names to (state_dict, config)."""
    payload = {
        "format": FORMAT,
        "task": task,
        "voxtool_version": __version__,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": meta or {},
    }
    if components:
        payload["components"] = {name: {"state_dict": {k: v.detach().cpu() for k, v in sd.items()}, "config": cfg}
                                 for name, (sd, cfg) in components.items()}
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
    check_layout(p, obj)
    if task is not None and obj["task"] != task:
        raise BadInput(p, f"model is for task '{obj['task']}', not '{task}'")
    components = {name: Component(c["state_dict"], c.get("config", {}))
                  for name, c in (obj.get("components") or {}).items()}
    return ModelFile(obj["task"], obj["config"], obj["state_dict"], obj.get("meta", {}),
                     obj.get("voxtool_version", "?"), p, components)


def _check_weights(path: Path, state_dict: Any, where: str) -> None:
    import torch

    if not isinstance(state_dict, dict):
        raise BadInput(path, f"garbled model file: {where} is a {type(state_dict).__name__}, not a dict of weights")
    for k, v in state_dict.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise BadInput(path, f"garbled model file: {where} entry {k!r} is a {type(v).__name__}, not a tensor")


def check_layout(path: Path, obj: dict) -> None:
    """The fields of a voxtool model file have the types inference relies on; BadInput otherwise."""
    if not isinstance(obj.get("task"), str):
        raise BadInput(path, "garbled model file: no task name")
    for key in ("config", "meta"):
        if not isinstance(obj.get(key, {}), dict):
            raise BadInput(path, f"garbled model file: '{key}' is a {type(obj[key]).__name__}, not a table")
    if "config" not in obj or "state_dict" not in obj:
        raise BadInput(path, f"garbled model file: no '{'config' if 'config' not in obj else 'state_dict'}'")
    _check_weights(path, obj["state_dict"], "'state_dict'")
    components = obj.get("components") or {}
    if not isinstance(components, dict):
        raise BadInput(path, "garbled model file: 'components' is not a table")
    for name, comp in components.items():
        if not isinstance(comp, dict) or "state_dict" not in comp or not isinstance(comp.get("config", {}), dict):
            raise BadInput(path, f"garbled model file: component {name!r} lacks its weights or config")
        _check_weights(path, comp["state_dict"], f"component {name!r}")


def key_report(expected: Iterable[str], got: Iterable[str], *, ignore_unexpected: tuple[str, ...] = (),
               shown: int = 3, template: str = "{count} {kind} ({names})") -> str | None:
    """None when `got` holds exactly the `expected` keys, else one line such as
    "2 missing (fc.weight, fc.bias); 1 unexpected (speaker_embedding)" (in the orders given; past `shown` names
    a part ends in ", ... (N in all)"). Unexpected keys starting with one of `ignore_unexpected` do not count;
    `template` words each part (fields count, kind = "missing" / "unexpected", names).

    The one key report of weight loading: `load_weights`, `voxtool.vocoders.checkpoint.load_generator_state` and
    `voxtool.pitch.checkpoint.load_state_dict_any` all use it.
    """
    expected, got = list(expected), list(got)
    expected_set, got_set = set(expected), set(got)
    missing = [k for k in expected if k not in got_set]
    unexpected = [k for k in got if k not in expected_set and not k.startswith(ignore_unexpected)]
    parts = []
    for kind, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            names = ", ".join(keys[:shown]) + (f", ... ({len(keys)} in all)" if len(keys) > shown else "")
            parts.append(template.format(count=len(keys), kind=kind, names=names))
    return "; ".join(parts) or None


def _shape(t) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def load_weights(model, state_dict: dict[str, Any], path: str | os.PathLike | None,
                 ignore_unexpected: tuple[str, ...] = ()) -> None:
    """Load `state_dict` into `model` strictly. A missing or unexpected key (unexpected ones starting with one of
    `ignore_unexpected` are dropped) or a weight of the wrong shape is one BadInput line naming `path`, the first
    bad keys (`key_report`) and, for shapes, both shapes."""
    own = model.state_dict()
    report = key_report(own, state_dict, ignore_unexpected=ignore_unexpected)
    if report:
        raise BadInput(path, f"weights do not match the model's keys: {report}")
    for k, v in own.items():
        got = state_dict[k]
        if tuple(got.shape) != tuple(v.shape):
            raise BadInput(path, f"weight '{k}' has shape {_shape(got)} in the file; the model expects {_shape(v)}")
    try:
        model.load_state_dict({k: state_dict[k] for k in own}, strict=True)
    except (RuntimeError, TypeError) as e:
        raise BadInput(path, f"weights do not load ({str(e).strip().splitlines()[-1].strip()[:160]})") from None
