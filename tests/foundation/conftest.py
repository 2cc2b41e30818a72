"""Fixtures for the foundation tests: the toy plugin installed into a temporary site directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TOY_SRC = Path(__file__).parent / "toyplugin" / "voxtool_toy"


def make_site(root: Path, with_broken: bool = True) -> Path:
    """A directory that, on sys.path/PYTHONPATH, holds an installed third-party plugin distribution."""
    site = root / "site"
    shutil.copytree(TOY_SRC, site / "voxtool_toy")
    dist = site / "voxtool_toy-0.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: voxtool-toy\nVersion: 0.3.1\n")
    eps = "[voxtool.tasks]\ntoy = voxtool_toy.plugin:plugin\n"
    if with_broken:
        eps += "broken = voxtool_toy.broken:plugin\n"
    (dist / "entry_points.txt").write_text(eps)
    return site


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory) -> Path:
    return make_site(tmp_path_factory.mktemp("toy"))


@pytest.fixture
def toy_on_path(toy_site, monkeypatch):
    """The toy plugin importable in this process too."""
    monkeypatch.syspath_prepend(str(toy_site))
    yield toy_site
    for name in [m for m in sys.modules if m.startswith("voxtool_toy")]:
        del sys.modules[name]
