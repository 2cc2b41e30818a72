"""The mouth config module (torch-free; `[mel]` is the original's front-end and acts at prep time) and the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from voxtool.cli import main
from voxtool.errors import BadInput
from voxtool.presets import load_config
from voxtool.tasks.mouth.config import MouthConfig, default_mel


def test_cli_and_config_modules_import_no_torch():
    code = ("import sys, voxtool.tasks.mouth.cli, voxtool.tasks.mouth.config; "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_mel_is_the_originals_front_end_in_the_config_and_the_preset():
    cfg = default_mel()
    assert MouthConfig().mel == load_config(MouthConfig, "mouth", task="mouth").mel == cfg
    assert (cfg.sample_rate, cfg.n_fft, cfg.win, cfg.hop_length, cfg.n_mels, cfg.f_max) == (16000, 1024, 1024, 320,
                                                                                             80, None)
    assert (cfg.power, cfg.center, cfg.pad, cfg.log_floor) == (1.0, True, 352, 1e-5)
    assert cfg.n_frames(16000) == 1 + (16000 + 704) // 320  # the original's frame count


def test_model_and_mel_must_agree_on_n_mels():
    with pytest.raises(BadInput, match=r"model.n_mels 80 differs from mel.n_mels 64"):
        load_config(MouthConfig, "mouth-tiny", ["mel.n_mels=64"], task="mouth")


def test_mel_acts_at_prep_time_and_training_checks_it(corpus, tmp_path, capsys):
    """A dataset prepared with other `[mel]` settings trains only under a config that says so."""
    from voxtool.tasks.mouth.data import prepare_lipsync

    data = tmp_path / "hop160"
    prepare_lipsync(corpus.src, data, mel=default_mel().model_copy(update={"hop_length": 160}))
    assert json.loads((data / "dataset.json").read_text())["mel"]["hop_length"] == 160
    args = ["train", "mouth", str(data), "--preset", "mouth-tiny", "--runs-dir", str(tmp_path), "--device", "cpu",
            "--steps", "1", "--set", "train.batch_size=2", "--set", "data.crop_frames=32", "--quiet"]
    capsys.readouterr()
    assert main([*args, "--exp", "refused"]) == 2
    assert "hop_length = 160 (the preset says 320)" in capsys.readouterr().err
    assert main([*args, "--exp", "ok", "--set", "mel.hop_length=160"]) == 0
    meta = torch.load(tmp_path / "ok" / "model.pt", weights_only=True)["meta"]
    assert meta["mel"]["hop_length"] == 160 and meta["fps"] == 100


def test_voxtool_demo_runs_the_mouth_plugins_demo(monkeypatch, tmp_path):
    import voxtool.tasks.mouth.demo as demo

    calls = []
    monkeypatch.setattr(demo, "main", lambda out, quiet: calls.append((out, quiet)) or 3)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 3  # the demo's exit code
    assert calls == [(tmp_path / "d", True)]
