"""Training through the CLI: the run folder, model.pt, Ctrl-C + resume, and 2-rank DDP on gloo."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_voxtool


def test_run_folder_and_model_file(toy_site, tmp_path):
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--exp", "r1", "--steps", "20",
                      extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    run = tmp_path / "r1"
    for name in ("config.toml", "last.pt", "best.pt", "model.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("valid/loss" in r for r in records) and any("train/loss" in r for r in records)
    out = run_voxtool("infer", "toy", "--model", str(run), "--json", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    best = min(r["valid/loss"] for r in records if "valid/loss" in r)
    assert abs(json.loads(out.stdout)["valid_loss"] - best) < 1e-5
    # an existing run is not overwritten
    again = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--exp", "r1", extra_path=[toy_site])
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.slow
def test_sigint_saves_then_resume_matches_uninterrupted(toy_site, tmp_path):
    args = ["train", "toy", "--runs-dir", str(tmp_path), "--steps", "30", "--set", "train.valid_every=100"]
    out = run_voxtool(*args, "--exp", "cut", env={"VOXTOOL_TOY_SIGINT_AT": "12"}, extra_path=[toy_site])
    assert out.returncode == 130, out.stderr
    assert "stopped at step 12" in out.stderr
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert state["step"] == 12
    out = run_voxtool(*args, "--exp", "cut", "--resume", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    out = run_voxtool(*args, "--exp", "straight", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    a = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["modules"]["model"]
    b = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["modules"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ddp_two_cpu_ranks(toy_site, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--exp", "ddp", "--steps", "15",
                      "--nproc-per-node", "2", "--device", "cpu", env={"VOXTOOL_TOY_DUMP": str(dump)},
                      extra_path=[toy_site], timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # gradients were all-reduced every step
    saved = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert saved["step"] == 15
    assert all(torch.equal(saved["modules"]["model"][k], r0[k]) for k in r0)
    assert not list((tmp_path / "ddp").glob("*.tmp*"))
