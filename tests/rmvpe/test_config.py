"""The rmvpe config is torch-free, and its model section is the pitch layer's network size (one set of fields)."""

from __future__ import annotations

import subprocess
import sys


def test_config_imports_no_torch_numpy_or_network():
    code = ("import sys, voxtool.tasks.rmvpe.config; "
            "print([m for m in ('torch', 'numpy', 'voxtool.pitch.rmvpe_model') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_model_section_is_the_arch_plus_training_settings():
    from voxtool.pitch.settings import RmvpeArch
    from voxtool.tasks.rmvpe.config import ModelSection

    section = ModelSection(base_channels=4, n_levels=3, init="x.pt")
    assert isinstance(section, RmvpeArch)
    assert section.arch() == RmvpeArch(base_channels=4, n_levels=3) and section.frame_multiple == 8
    assert set(section.to_dict()) == set(RmvpeArch.model_fields)
