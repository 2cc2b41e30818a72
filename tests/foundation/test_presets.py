"""Preset loading: base inheritance, overrides with coercion, errors with the key path, wheel contents."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT
from voxtool.errors import BadInput
from voxtool.presets import load_config, parse_override, resolve_preset


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
