"""Training variants, the r-drop refusal, exact resume and a 2-rank DDP run of mouth-tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import run_voxtool
from voxtool.cli import main
from voxtool.tasks.mouth.config import ModelSection, MouthConfig, MouthSSLConfig
from voxtool.tasks.mouth.model import build_model
from voxtool.tasks.mouth.ssl import MouthSSLTask
from voxtool.tasks.mouth.train import MouthTrainTask, masked_loss
from voxtool.training.task import RunEnv, StepContext

FAST = ["--preset", "mouth-tiny", "--device", "cpu", "--quiet", "--set", "train.batch_size=4",
        "--set", "data.crop_frames=32"]  # fmt: skip


def _train(data, runs, exp, *extra):
    return main(["train", "mouth", str(data), "--exp", exp, "--runs-dir", str(runs), *FAST, *extra])


def test_masked_loss_ignores_padding():
    pred = torch.tensor([[0.2, 0.4, 9.0]])
    target = torch.tensor([[0.0, 0.4, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(masked_loss(pred, target, mask, "mse", 1.0)) == pytest.approx(0.02)
    assert float(masked_loss(pred, target, mask, "huber", 1.0)) == pytest.approx(0.01)
    # delta 0.1: |0.2| > delta is linear, 0.1 * (0.2 - 0.05) = 0.015, averaged over 2 valid frames
    assert float(masked_loss(pred, target, mask, "huber", 0.1)) == pytest.approx(0.0075)


class RowOffsetModel(torch.nn.Module):
    """A stand-in network with known outputs: mean over mel bins (mels are (B, n_mels, T)) plus 0.1 x row index
    (so the two R-Drop passes and the two student views differ), and no parameters to train."""

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.mean(1) + 0.1 * torch.arange(mel.shape[0], dtype=mel.dtype)[:, None]


def huber(a: torch.Tensor, b: torch.Tensor, delta: float) -> float:
    return float(torch.nn.functional.huber_loss(a, b, delta=delta))


def _step(task_cls, config, batch: dict, step: int = 0) -> dict:
    """One training_step of a mouth task on a fixed batch with a stand-in model (no dataset needed)."""
    task = task_cls.__new__(task_cls)
    task.config, task.env = config, RunEnv(device=torch.device("cpu"))
    task.model = build_model(ModelSection(conv_dims=8, hidden_dims=8, n_layers=1, n_groups=4), 0.0, 1.0)
    stub = RowOffsetModel()
    ctx = StepContext(step=step, model=stub, modules={"model": stub}, ema=RowOffsetModel(), env=task.env)
    return {k: float(v) for k, v in task.training_step(batch, ctx).items()}


def _labeled(b=2, t=6, f=4):
    mel = torch.full((b, f, t), 0.9)
    return {"mel": mel, "curve": torch.full((b, t), 0.1), "mask": torch.ones(b, t)}


@pytest.mark.parametrize("variant", ["huber", "r-drop"])
def test_huber_delta_reaches_every_supervised_term(variant):
    """loss.huber_delta was ignored by the supervised term of r-drop (always delta 1): residuals of 0.8..0.9 give
    different losses for delta 1 and 0.05, and each equals the Huber loss with the configured delta."""
    batch = _labeled()
    pred = RowOffsetModel()(torch.cat([batch["mel"], batch["mel"]]) if variant == "r-drop" else batch["mel"])
    target = batch["curve"]
    out = {}
    for delta in (1.0, 0.05):
        cfg = MouthConfig.model_validate({"loss": {"variant": variant, "huber_delta": delta}})
        out[delta] = _step(MouthTrainTask, cfg, batch)
        if variant == "huber":
            assert out[delta]["loss"] == pytest.approx(huber(pred, target, delta))
        else:
            p1, p2 = pred.chunk(2)
            assert out[delta]["supervised"] == pytest.approx(0.5 * (huber(p1, target, delta) + huber(p2, target,
                                                                                                  delta)))
            assert out[delta]["r_drop"] == pytest.approx(huber(p1, p2, delta))
    key = "loss" if variant == "huber" else "supervised"
    assert out[1.0][key] > 5 * out[0.05][key]


def test_huber_delta_reaches_every_ssl_term():
    """Mean Teacher + R-Drop: the supervised, R-Drop and consistency terms all use loss.huber_delta."""
    batch = _labeled()
    u_clean = torch.full((3, 4, 6), 0.0)  # (B, n_mels, T)
    batch.update(u_clean=u_clean, u_view1=u_clean + 0.6, u_view2=u_clean + 0.9, u_mask=torch.ones(3, 6))
    out = {}
    for delta in (1.0, 0.05):
        cfg = MouthSSLConfig.model_validate({"loss": {"variant": "r-drop", "huber_delta": delta},
                                             "ssl": {"consistency_weight": 1.0, "rampup_steps": 0}})
        out[delta] = _step(MouthSSLTask, cfg, batch)
        stacked = RowOffsetModel()(torch.cat([batch["mel"], batch["mel"], batch["u_view1"], batch["u_view2"]]))
        p1, p2, s1, s2 = torch.split(stacked, [2, 2, 3, 3])
        teacher = RowOffsetModel()(u_clean)
        target = batch["curve"]
        assert out[delta]["supervised"] == pytest.approx(0.5 * (huber(p1, target, delta) + huber(p2, target, delta)))
        assert out[delta]["r_drop"] == pytest.approx(huber(p1, p2, delta))
        assert out[delta]["consistency"] == pytest.approx(0.5 * (huber(s1, teacher, delta)
                                                                 + huber(s2, teacher, delta)))
    for key in ("supervised", "consistency"):
        assert out[1.0][key] > 5 * out[0.05][key], key


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


@pytest.mark.slow
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


def test_best_metric_keeps_the_configured_mode():
    """best_mode was ignored for valid/pearson (always max); other metrics pass through unchanged."""
    task = MouthTrainTask.__new__(MouthTrainTask)
    for metric, mode, unseen, expected in [
        ("valid/pearson", "max", True, ("unseen/pearson", "max")),
        ("valid/pearson", "min", True, ("unseen/pearson", "min")),
        ("valid/pearson", "min", False, ("valid/pearson", "min")),
        ("valid/mae", "min", True, ("valid/mae", "min")),
    ]:
        task.config = MouthConfig.model_validate({"train": {"best_metric": metric, "best_mode": mode}})
        task.has_unseen = unseen
        assert task.best_metric() == expected


def test_ssl_refuses_a_loss_variant_it_would_ignore():
    """ssl used to switch loss.variant to r-drop silently (e.g. `--preset mouth` with variant huber)."""
    from voxtool.errors import BadInput

    cfg = MouthSSLConfig.model_validate({"loss": {"variant": "mse"}, "train": {"ema_decay": 0.9},
                                         "ssl": {"unlabeled": "somewhere"}})
    with pytest.raises(BadInput, match="loss.variant = 'mse' does not apply to ssl"):
        MouthSSLTask(cfg, None, RunEnv(device=torch.device("cpu")))


def test_model_config_checks_groups():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="divisible by n_groups"):
        ModelSection(conv_dims=50, n_groups=4)
