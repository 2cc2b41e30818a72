"""Regression tests for Trainer and run-folder defects: accelerator resume, loss scaling per device, run names,
one last.pt per step, metrics after kill -9, a failed --resume, and batch prefetching."""

from __future__ import annotations

import json
import os
import types

import pytest
import torch

from tests.conftest import fit_until_interrupted, run_voxtool
from tests.foundation.test_trainer import make, weights
from voxtool import devices
from voxtool.errors import BadInput
from voxtool.options import TrainOptions
from voxtool.training import trainer as trainer_module
from voxtool.training.task import RunEnv
from voxtool.training.trainer import Trainer


@pytest.mark.filterwarnings("ignore:for net.*a meta parameter")
def test_resume_on_another_device_loads_the_checkpoint_on_the_cpu(toy_on_path, tmp_path):
    """On an accelerator, map_location=device turned the saved CPU RNG state into a device tensor, which
    torch.set_rng_state refuses. The meta device shows the same without a GPU."""
    from voxtool_toy.task import ToyConfig, ToyTask

    done = make(toy_on_path, tmp_path)
    done.fit()
    cfg = ToyConfig(train=done.cfg)
    env = RunEnv(device=torch.device("meta"), seed=cfg.train.seed)
    elsewhere = Trainer(ToyTask(cfg, tmp_path, env), cfg.train, env, tmp_path, cfg.model_dump(mode="json"))
    elsewhere.resume()
    assert elsewhere.step == 24
    assert torch.equal(torch.get_rng_state(), done.state_dict()["rng"]["torch"])
    assert next(elsewhere.task.model.parameters()).device.type == "meta"  # modules stay on their device


def test_fp16_needs_a_loss_scaler_on_the_device(monkeypatch):
    assert not devices.grad_scaler(devices.Device("cpu"), "32").is_enabled()
    assert not devices.grad_scaler(devices.Device("cpu"), "bf16").is_enabled()
    assert devices.grad_scaler(devices.Device("cpu"), "16").is_enabled()

    class VendorScaler:
        pass

    backends = {"npu": types.SimpleNamespace(amp=types.SimpleNamespace(GradScaler=VendorScaler)),
                "sdaa": types.SimpleNamespace()}
    monkeypatch.setattr(devices, "_import_backend", lambda kind: backends[kind])
    assert isinstance(devices.grad_scaler(devices.Device("npu", 0), "16"), VendorScaler)
    with pytest.raises(BadInput, match="--precision 16 on sdaa: this backend has no gradient scaler"):
        devices.grad_scaler(devices.Device("sdaa", 0), "16")


def test_last_checkpoint_is_written_once_per_step(toy_on_path, tmp_path, monkeypatch):
    written = []
    real = trainer_module.save_torch_atomic
    monkeypatch.setattr(trainer_module, "save_torch_atomic",
                        lambda obj, path: (written.append((path.name, obj["step"])), real(obj, path)))
    make(toy_on_path, tmp_path).fit()  # 24 steps, validation every 8
    assert [step for name, step in written if name == "last.pt"] == [8, 16, 24]


def test_metrics_rows_after_the_checkpoint_are_dropped_on_resume(toy_on_path, tmp_path):
    first = make(toy_on_path, tmp_path)

    fit_until_interrupted(first, 11)
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:  # what a kill -9 after step 11's checkpoint leaves: later rows, a cut one
        f.write(json.dumps({"step": 12, "train/loss": 9.0, "ghost": 1}) + "\n")
        f.write('{"step": 13, "train/lo')
    make(toy_on_path, tmp_path).fit(resume=True)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert not [r for r in rows if "ghost" in r]
    seen = [(r["step"], k) for r in rows for k in r if k not in ("step", "time")]
    assert len(seen) == len(set(seen))  # every (step, metric) once
    assert max(r["step"] for r in rows) == 24


def test_prefetching_batches_does_not_change_the_run(toy_on_path, tmp_path):
    on = make(toy_on_path, tmp_path / "on", prefetch=True)
    off = make(toy_on_path, tmp_path / "off", prefetch=False)
    on.fit()
    off.fit()
    a, b = weights(on), weights(off)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_runs_in_one_process_get_their_own_names(toy_on_path, tmp_path):
    from voxtool_toy.plugin import PRESET
    from voxtool_toy.task import ToyConfig, ToyTask

    from voxtool.training.run import train_from_options

    for _ in range(2):
        opts = TrainOptions(runs_dir=tmp_path, steps=2, quiet=True, device="cpu")
        assert train_from_options(ToyTask, ToyConfig, tmp_path, opts, default_preset=str(PRESET))["step"] == 2
    assert len([p for p in tmp_path.iterdir() if (p / "model.pt").is_file()]) == 2
    assert "VOXTOOL_RUN_NAME" not in os.environ


def test_a_failed_resume_changes_nothing(toy_site, tmp_path):
    base = ["train", "toy", "--runs-dir", str(tmp_path), "--exp", "r"]
    assert run_voxtool(*base, "--steps", "10", extra_path=[toy_site]).returncode == 0
    run = tmp_path / "r"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    gan_preset = toy_site / "voxtool_toy" / "toygan.toml"
    for bad in (["--set", "model.hidden=32"], ["--preset", str(gan_preset)]):
        out = run_voxtool(*base, "--resume", "--steps", "20", *bad, extra_path=[toy_site])
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: "), out.stderr
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    out = run_voxtool(*base, "--resume", "--steps", "20", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 20


def test_runs_dir_that_is_a_file_is_bad_input(toy_site, tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    out = run_voxtool("train", "toy", "--runs-dir", str(runs), "--steps", "2", extra_path=[toy_site])
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {runs}: --runs-dir is a file, not a folder"
    assert runs.read_text() == "not a folder"


def test_validation_audio_reaches_tensorboard(toy_on_path, tmp_path):
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make(toy_on_path, tmp_path)
    tone = np.sin(2 * np.pi * 440 * np.arange(1600) / 16000).astype(np.float32)
    trainer.task.validation_audio = lambda model: {"valid/tone": (tone, 16000)}
    trainer.fit()
    events = EventAccumulator(str(tmp_path), size_guidance={"audio": 0})
    events.Reload()
    clips = events.Audio("valid/tone")
    assert [c.step for c in clips] == [8, 16, 24]
    assert clips[0].sample_rate == 16000 and clips[0].length_frames == 1600
