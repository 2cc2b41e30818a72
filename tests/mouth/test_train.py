"""Training variants, the r-drop refusal, exact resume and a 2-rank DDP run of mouth-tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import run_voxtool
from voxtool.cli import main
from voxtool.tasks.mouth.train import masked_loss

FAST = ["--preset", "mouth-tiny", "--device", "cpu", "--quiet", "--set", "train.batch_size=4",
        "--set", "data.crop_frames=32"]  # fmt: skip


def _train(data, runs, exp, *extra):
    return main(["train", "mouth", str(data), "--exp", exp, "--runs-dir", str(runs), *FAST, *extra])


def test_masked_loss_ignores_padding():
    pred = torch.tensor([[0.2, 0.4, 9.0]])
    target = torch.tensor([[0.0, 0.4, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(masked_loss(pred, target, mask, "mse")) == pytest.approx(0.02)
    assert float(masked_loss(pred, target, mask, "huber")) == pytest.approx(0.01)


@pytest.mark.parametrize("variant", ["mse", "r-drop"])
def test_variants_train(corpus, tmp_path, variant):
    assert _train(corpus.data, tmp_path, variant, "--variant", variant, "--steps", "3") == 0
    config = (tmp_path / variant / "config.toml").read_text()
    assert f'variant = "{variant}"' in config
    logged = [json.loads(line) for line in (tmp_path / variant / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*logged)
    assert "unseen/pearson" in keys
    if variant == "r-drop":
        assert {"train/supervised", "train/r_drop"} <= keys
    assert (tmp_path / variant / "model.pt").is_file()


def test_r_drop_refuses_zero_dropout_and_unknown_variant(corpus, tmp_path):
    assert _train(corpus.data, tmp_path, "a", "--variant", "r-drop", "--set", "model.conv_dropout=0",
                  "--steps", "2") == 2  # fmt: skip
    assert _train(corpus.data, tmp_path, "b", "--variant", "kl", "--steps", "2") == 2
    assert _train(tmp_path / "no-such-data", tmp_path, "c", "--steps", "2") == 2


def test_resume_reaches_the_same_weights(corpus, tmp_path):
    assert _train(corpus.data, tmp_path, "straight", "--steps", "6") == 0
    assert _train(corpus.data, tmp_path, "split", "--steps", "3") == 0
    assert _train(corpus.data, tmp_path, "split", "--steps", "6", "--resume") == 0
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for key, value in a["modules"]["model"].items():
        np.testing.assert_allclose(value.numpy(), b["modules"]["model"][key].numpy(), atol=1e-6, err_msg=key)


def test_two_rank_ddp_run(corpus, tmp_path):
    proc = run_voxtool("train", "mouth", str(corpus.data), "--exp", "ddp", "--runs-dir", str(tmp_path), *FAST,
                       "--steps", "4", "--nproc-per-node", "2", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "ddp"
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 4
    model_file = torch.load(run / "model.pt", weights_only=True)
    assert model_file["task"] == "mouth" and model_file["meta"]["value_range"] == [-0.15, 1.0]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("unseen/pearson" in m for m in logged)
