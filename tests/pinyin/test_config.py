"""The pinyin config is torch-free: `prep aishell|...|tsv` reads its preset without importing the model."""

from __future__ import annotations

import subprocess
import sys

# what `prep` runs before any audio: the CLI module, the config and the preset load
PRESET_LOAD = ("import sys, voxtool.tasks.pinyin.cli; from voxtool.presets import load_config; "
               "from voxtool.tasks.pinyin.config import PinyinConfig; "
               "cfg = load_config(PinyinConfig, 'pinyin-tiny', [], task='pinyin'); ")


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PRESET_LOAD + code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_preset_load_imports_no_model():
    mods = ("voxtool.tasks.pinyin.model", "voxtool.tasks.pinyin.train", "voxtool.tasks.pinyin.infer")
    assert _run(f"print(*[m in sys.modules for m in {mods!r}])") == ["False"] * 3


def test_preset_load_imports_no_torch():
    assert _run("print('torch' in sys.modules, 'numpy' in sys.modules)") == ["False", "False"]


def test_plugin_names_the_config_module():
    from voxtool.tasks.pinyin.cli import plugin

    assert plugin.config == "voxtool.tasks.pinyin.config:PinyinConfig"
