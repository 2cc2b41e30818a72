"""Preset loading: base inheritance, overrides with coercion, errors with the key path, wheel contents."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT
from voxtool.errors import BadInput
from voxtool.presets import dump_toml, find_preset, list_presets, load_config, parse_override, resolve_preset


@pytest.fixture
def toy_cfg(toy_on_path):
    from voxtool_toy.task import ToyConfig

    return ToyConfig


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_and_overrides(tmp_path, toy_cfg):
    write(tmp_path, "base.toml", 'task = "toy"\n[model]\nhidden = 32\n[train]\nsteps = 5\nlr = 0.1\n')
    child = write(tmp_path, "child.toml", 'base = "base.toml"\n[train]\nsteps = 9\n')
    cfg = load_config(toy_cfg, child, ["train.lr=1e-3", "model.dropout=0.5", "train.betas=[0.8, 0.99]"], task="toy")
    assert cfg.model.hidden == 32 and cfg.train.steps == 9
    assert cfg.train.lr == 1e-3 and cfg.model.dropout == 0.5 and cfg.train.betas == (0.8, 0.99)


@pytest.mark.parametrize(
    "override, path",
    [("train.lr=-1", "train.lr"), ("model.nope=1", "model.nope"), ("train.steps=abc", "train.steps"),
     ("train.optimizer=rmsprop", "train.optimizer"), ("model.dropout=1.5", "model.dropout")],
)
def test_errors_name_the_key_path(tmp_path, toy_cfg, override, path):
    preset = write(tmp_path, "p.toml", 'task = "toy"\n')
    with pytest.raises(BadInput) as e:
        load_config(toy_cfg, preset, [override])
    assert path in str(e.value)


def test_wrong_task_and_bad_toml(tmp_path, toy_cfg):
    with pytest.raises(BadInput, match="not 'toy'"):
        load_config(toy_cfg, write(tmp_path, "m.toml", 'task = "mouth"\n'), task="toy")
    with pytest.raises(BadInput, match="invalid TOML"):
        resolve_preset(write(tmp_path, "bad.toml", "[train\n"))
    with pytest.raises(BadInput, match="unknown preset"):
        resolve_preset("no-such-preset")


def test_parse_override_types():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=hello world") == (["a"], "hello world")
    with pytest.raises(BadInput):
        parse_override("novalue")


def test_wheel_ships_presets(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("voxtool-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/")[-1] for n in names if n.startswith("voxtool/presets/") and n.endswith(".toml")}
    in_tree = {p.name for p in (ROOT / "presets").glob("*.toml")}
    assert in_tree and shipped == in_tree


# ------------------------------------------------------------------ preset names vs. files in the working folder


def test_folder_named_like_a_preset_does_not_shadow_it(tmp_path, monkeypatch):
    """A dataset folder `pinyin/` (or `mouth/`) in the working folder used to be taken for the preset file and the
    default preset failed with 'preset file not found'. Only `*.toml` or a path with a separator is a file."""
    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.pinyin.config import PinyinConfig

    for name in ("pinyin", "mouth", "rmvpe.toml"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_preset("pinyin")["task"] == "pinyin"
    assert load_config(PinyinConfig, "pinyin", task="pinyin").model.block_repeat == 3
    assert load_config(MouthConfig, "mouth", task="mouth").train.best_metric == "valid/pearson"
    assert find_preset("mouth") == list_presets()["mouth"]
    # spelled as a path it is the folder, and a folder is not a preset file
    for spelled in ("./pinyin", "pinyin/", str(tmp_path / "mouth"), "rmvpe.toml"):
        with pytest.raises(BadInput, match="is a directory, not a preset file"):
            find_preset(spelled)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine").write_text('task = "toy"\n')  # a path without .toml is still a file
    assert resolve_preset("sub/mine") == {"task": "toy"}
    with pytest.raises(BadInput, match="unknown preset 'mine'"):
        resolve_preset("mine")


def test_cli_default_preset_with_a_same_named_folder(tmp_path, monkeypatch, capsys):
    from voxtool.cli import main

    (tmp_path / "pinyin").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["presets", "show", "pinyin"]) == 0
    assert 'task = "pinyin"' in capsys.readouterr().out


@pytest.mark.parametrize("name", ["hubert-tiny", "diffvc-encoder-tiny"])
def test_presets_show_fills_defaults_of_a_plugins_second_task(name, capsys):
    """A plugin that trains two things (softvc: hubert-soft; diffvc: diffvc-encoder) names both configs."""
    import tomllib

    from voxtool.cli import main

    assert main(["presets", "show", name]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    task = shown.pop("task")
    cls = _task_configs()[task]
    assert shown == tomllib.loads(dump_toml(load_config(cls, name, task=task)))
    assert "train" in shown and "lr" in shown["train"]  # defaults filled in, not the preset's few lines


# ------------------------------------------------------------------ broken preset files: one line, exit 2


def _broken(tmp_path, kind):
    """A preset file broken in one way -> (path to pass, file the error must name, words of the problem)."""
    if kind == "latin-1":
        p = tmp_path / "latin.toml"
        p.write_bytes('task = "toy"\n# caf\xe9\n'.encode("latin-1"))
        return p, p, "not UTF-8 text"
    if kind == "binary":
        p = tmp_path / "blob.toml"
        p.write_bytes(bytes(range(256)) * 4)
        return p, p, "binary file"
    if kind == "nul":
        p = tmp_path / "nul.toml"
        p.write_bytes(b'task = "toy"\n\x00\x00\n')
        return p, p, "binary file"
    if kind == "directory":
        p = tmp_path / "x.toml"
        p.mkdir()
        return p, p, "is a directory"
    if kind == "invalid":
        p = write(tmp_path, "bad.toml", "[train\n")
        return p, p, "invalid TOML"
    if kind == "deep":
        p = write(tmp_path, "deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
        return p, p, "invalid TOML"
    if kind == "missing":
        return tmp_path / "nope.toml", tmp_path / "nope.toml", "preset file not found"
    if kind == "cycle":
        a = write(tmp_path, "a.toml", 'base = "b.toml"\n')
        write(tmp_path, "b.toml", f'base = "{(tmp_path / "a.toml").as_posix()}"\n')  # absolute and relative mix
        return a, a, "inherits from itself"
    if kind == "self-base":
        p = write(tmp_path, "me.toml", 'base = "me.toml"\n')
        return p, p, "inherits from itself"
    if kind == "base-missing":
        p = write(tmp_path, "child.toml", 'base = "gone.toml"\n')
        return p, p, "base 'gone.toml': preset file not found"
    if kind == "base-unknown":
        p = write(tmp_path, "child.toml", 'base = "no-such-preset"\n')
        return p, p, "base 'no-such-preset': unknown preset"
    if kind == "base-not-a-string":
        p = write(tmp_path, "child.toml", "base = 3\n")
        return p, p, "'base' must be a preset name or path"
    if kind == "base-broken":
        write(tmp_path, "parent.toml", "[oops\n")
        p = write(tmp_path, "child.toml", 'base = "parent.toml"\n')
        return p, tmp_path / "parent.toml", "invalid TOML"
    raise AssertionError(kind)


BROKEN = ["latin-1", "binary", "nul", "directory", "invalid", "deep", "missing", "cycle", "self-base",
          "base-missing", "base-unknown", "base-not-a-string", "base-broken"]


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_preset_is_bad_input_naming_the_file(tmp_path, kind):
    path, named, problem = _broken(tmp_path, kind)
    with pytest.raises(BadInput) as e:
        resolve_preset(path)
    assert e.value.where == str(named) and problem in e.value.problem


@pytest.mark.parametrize("kind", ["latin-1", "binary", "directory", "cycle", "base-missing"])
def test_broken_preset_on_the_cli_is_one_error_line_exit_2(tmp_path, kind, capsys):
    from voxtool.cli import main

    path, named, problem = _broken(tmp_path, kind)
    assert main(["presets", "show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {named}: ") and problem in err and "\n" not in err, err
    assert "unexpected" not in err


def test_unreadable_preset(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.toml", 'task = "toy"\n')
    real_open = open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(BadInput) as e:
        resolve_preset(path)
    assert e.value.where == str(path) and e.value.problem == "cannot read: Permission denied"


def test_utf8_with_bom_and_non_ascii_text_are_fine(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes('\ufefftask = "toy"\nnote = "café 你好"\n'.encode())
    assert resolve_preset(path) == {"task": "toy", "note": "café 你好"}


# ------------------------------------------------------------------ non-finite numbers and ranges


@pytest.mark.parametrize(
    "override, path",
    [("train.lr=inf", "train.lr"), ("train.lr=nan", "train.lr"), ("train.lr=-inf", "train.lr"),
     ("train.lr=1e999", "train.lr"), ('train.lr="Infinity"', "train.lr"), ("train.betas=[0.9, nan]", "train.betas.1"),
     ("train.grad_clip=inf", "train.grad_clip"), ("train.ema_decay=nan", "train.ema_decay"),
     ("model.dropout=nan", "model.dropout"), ("train.steps=inf", "train.steps")],
)
def test_non_finite_numbers_are_refused_with_the_key_path(tmp_path, toy_cfg, override, path):
    preset = write(tmp_path, "p.toml", 'task = "toy"\n')
    with pytest.raises(BadInput) as e:
        load_config(toy_cfg, preset, [override])
    assert e.value.problem.startswith(f"{path}: ") and "finite" in e.value.problem


def test_non_finite_in_a_preset_file_and_on_the_cli(tmp_path, toy_cfg, capsys):
    from voxtool.cli import main

    preset = write(tmp_path, "p.toml", 'task = "toy"\n[train]\nlr = nan\n')
    with pytest.raises(BadInput, match="train.lr: Input should be a finite number"):
        load_config(toy_cfg, preset)
    assert main(["presets", "show", "mouth", "--set", "train.lr=inf"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: preset mouth: train.lr: Input should be a finite number"
    assert main(["presets", "show", "rmvpe", "--set", "mel.f_max=nan"]) == 2
    assert "mel.f_max: Input should be a finite number" in capsys.readouterr().err


def _task_configs():
    from voxtool.tasks.diffvc.config import DiffvcConfig, DiffvcEncoderConfig
    from voxtool.tasks.hifigan.config import HifiganConfig
    from voxtool.tasks.mouth.config import MouthConfig, MouthSSLConfig
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.rmvpe.config import RmvpeConfig
    from voxtool.tasks.softvc.config import HubertSoftConfig, SoftvcConfig

    return {"mouth": MouthConfig, "mouth-ssl": MouthSSLConfig, "pinyin": PinyinConfig, "rmvpe": RmvpeConfig,
            "hifigan": HifiganConfig, "softvc": SoftvcConfig, "hubert-soft": HubertSoftConfig,
            "diffvc": DiffvcConfig, "diffvc-encoder": DiffvcEncoderConfig}


def _numeric_leaves(model_cls, prefix=()):
    """(dotted path, kind) of every number in a config class: kind is 'int', 'float' or 'pair' (2-tuple)."""
    import types
    import typing

    from pydantic import BaseModel

    def leaves(ann, path):
        if typing.get_origin(ann) is typing.Annotated:
            ann = typing.get_args(ann)[0]
        if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
            ann = next(a for a in typing.get_args(ann) if a is not type(None))
        origin = typing.get_origin(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _numeric_leaves(ann, path)
        elif origin is list:  # a list of sections: entry 0
            yield from leaves(typing.get_args(ann)[0], (*path, 0))
        elif origin is dict:  # a table keyed by name: entry "x"
            yield from leaves(typing.get_args(ann)[1], (*path, "x"))
        elif origin is tuple:
            yield path, "pair"
        elif ann is int or ann is float:
            yield path, ann.__name__
        elif ann not in (bool, str) and origin is not typing.Literal:
            raise AssertionError(f"unhandled field type {ann} at {'.'.join(map(str, path))}")

    for name, field in model_cls.model_fields.items():
        yield from leaves(field.annotation, (*prefix, name))


def _nested(path, value):
    from voxtool.tasks.pinyin.config import BlockSection

    out = value
    for key in reversed(path):
        if isinstance(key, int):  # a list of sections: one valid entry carrying the value
            out = [{**BlockSection(filters=8, kernel=3).model_dump(), **out}]
        else:
            out = {key: out}
    return out


@pytest.mark.parametrize("task", ["mouth", "mouth-ssl", "pinyin", "rmvpe", "hifigan", "softvc", "hubert-soft",
                                  "diffvc", "diffvc-encoder"])
def test_every_number_of_every_task_config_has_a_range(task):
    """Absurdly large or negative values of any numeric field are refused at validation, naming the field."""
    from pydantic import ValidationError

    cls = _task_configs()[task]
    leaves = list(_numeric_leaves(cls))
    assert len(leaves) > 20
    for path, kind in leaves:
        dotted = ".".join(map(str, path))
        for bad in (1e12, -1e12):
            value = int(bad) if kind == "int" else [bad, bad] if kind == "pair" else bad
            with pytest.raises(ValidationError) as e:
                cls.model_validate(_nested(path, value))
            locs = {".".join(map(str, err["loc"])) for err in e.value.errors()}
            assert any(loc == dotted or loc.startswith(dotted + ".") or dotted.startswith(loc) for loc in locs), \
                (dotted, bad, locs)


def test_train_config_bounds():
    from pydantic import ValidationError

    from voxtool.training.config import TrainConfig

    TrainConfig(steps=10_000_000, batch_size=65536, lr=10, seed=0)
    for field, value in [("steps", 10_000_001), ("batch_size", 65537), ("lr", 10.5), ("seed", -1),
                         ("seed", 2**32), ("betas", (0.9, 1.0)), ("best_metric", ""), ("grad_accum", 0)]:
        with pytest.raises(ValidationError):
            TrainConfig(**{field: value})


def test_every_shipped_preset_validates():
    configs = _task_configs()
    for name in list_presets():
        data = resolve_preset(name)
        task = data["task"]
        cls = configs["mouth-ssl" if name.startswith("mouth-ssl") else task]
        assert isinstance(load_config(cls, name, task=task), cls), name
