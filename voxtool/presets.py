"""Typed TOML presets.

A preset is a TOML file in `presets/` (shipped inside the wheel as `voxtool/presets/`) with a top-level
`task = "<name>"`, an optional `base = "<other preset>"` that it deep-merges over, and the sections of the
task's pydantic config. `--set a.b=value` overrides any field; values are parsed as TOML literals when they
can be (`1`, `0.5`, `true`, `[1, 2]`) and as plain strings otherwise, then pydantic coerces them.
Every problem (unknown key, wrong type, out-of-range or non-finite value) is a `BadInput` naming the dotted key
path.

`--preset X` names a file when X ends in `.toml` or contains a path separator, and a shipped preset otherwise (so
a dataset folder called `pinyin/` in the working directory does not shadow the `pinyin` preset).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from voxtool.errors import BadInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated, and inf/nan are refused
    in every float (also inside tuples and lists): a non-finite lr or weight would only train garbage."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def preset_dirs() -> list[Path]:
    """Where named presets live: inside the installed package first, then the source tree's `presets/`."""
    package = Path(__file__).resolve().parent
    return [d for d in (package / "presets", package.parent / "presets") if d.is_dir()]


def list_presets() -> dict[str, Path]:
    """Preset name -> file, the first directory winning."""
    found: dict[str, Path] = {}
    for directory in preset_dirs():
        for path in sorted(directory.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def is_preset_path(name_or_path: str | Path) -> bool:
    """A preset argument names a file when it ends in `.toml` or contains a path separator; else a preset name."""
    text = str(name_or_path)
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return text.lower().endswith(".toml") or any(sep in text for sep in seps)


def find_preset(name_or_path: str | Path) -> Path:
    if is_preset_path(name_or_path):
        candidate = Path(name_or_path)
        if candidate.is_dir():
            raise BadInput(candidate, "is a directory, not a preset file")
        if not candidate.is_file():
            raise BadInput(candidate, "preset file not found")
        return candidate
    presets = list_presets()
    if str(name_or_path) not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise BadInput(None, f"unknown preset '{name_or_path}' (known: {known})")
    return presets[str(name_or_path)]


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML file; any way it cannot be read or parsed is a one-line `BadInput` naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise BadInput(path, "is a directory, not a preset file") from None
    except OSError as e:
        raise BadInput(path, f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM (some Windows editors write one) is harmless
    except UnicodeDecodeError as e:
        kind = "a binary file" if b"\0" in raw else "not UTF-8 text"
        raise BadInput(path, f"{kind} (invalid byte 0x{raw[e.start]:02x} at offset {e.start}); "
                             "a preset must be UTF-8 TOML") from None
    if "\0" in text:
        raise BadInput(path, "a binary file (NUL bytes); a preset must be UTF-8 TOML")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(path, f"invalid TOML: {e}") from None
    except RecursionError:
        raise BadInput(path, "invalid TOML: nested too deeply") from None


def resolve_preset(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset as a plain dict with its `base` chain merged in (the `base` key removed)."""
    path = find_preset(name_or_path)
    key = str(path.resolve())
    if key in _seen:
        raise BadInput(path, "preset inherits from itself through 'base'")
    data = read_toml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise BadInput(path, "'base' must be a preset name or path")
    target: str | Path = base
    if is_preset_path(base) and not Path(base).is_absolute():
        target = path.parent / base  # a relative base file is relative to the preset that names it
    try:
        base_path = find_preset(target)
    except BadInput as e:  # name the preset that refers to the missing base
        raise BadInput(path, f"base {base!r}: {e.problem}") from None
    return deep_merge(resolve_preset(base_path, (*_seen, key)), data)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"train.lr=1e-3"` -> (["train", "lr"], 0.001)."""
    if "=" not in text:
        raise BadInput(None, f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=1e-3")
    key, raw = text.split("=", 1)
    keys = [k.strip() for k in key.strip().split(".")]
    if not all(keys):
        raise BadInput(None, f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = deep_merge({}, data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise BadInput(None, f"--set {text!r}: '{k}' is not a section")
            node = child
        node[keys[-1]] = value
    return data


def validate(config_cls: type[ConfigT], data: dict[str, Any], source: str) -> ConfigT:
    try:
        return config_cls.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise BadInput(source, f"{where}: {first['msg']}{more}") from None


def load_config(
    config_cls: type[ConfigT],
    preset: str | Path,
    overrides: list[str] | None = None,
    task: str | None = None,
) -> ConfigT:
    """Resolve a preset (name or path), apply `--set` overrides and validate it as `config_cls`."""
    data = resolve_preset(preset)
    preset_task = data.pop("task", None)
    if task is not None and preset_task is not None and preset_task != task:
        raise BadInput(find_preset(preset), f"preset is for task '{preset_task}', not '{task}'")
    data = apply_overrides(data, overrides or [])
    return validate(config_cls, data, f"preset {preset}")


def dump_toml(config: BaseModel, task: str | None = None) -> str:
    """The fully resolved config as TOML (None values are left out; they are the defaults)."""
    import tomli_w

    body = config.model_dump(mode="json", exclude_none=True)
    if task is not None:
        body = {"task": task, **body}
    return tomli_w.dumps(body)
