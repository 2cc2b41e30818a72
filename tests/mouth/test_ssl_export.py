"""prep unlabeled, semi-supervised training (Mean Teacher), the conv_dropout refusal, ONNX export and inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.audio.io import load_audio, resample
from voxtool.cli import main
from voxtool.tasks.mouth.config import SSLSection
from voxtool.tasks.mouth.data import MouthDataset
from voxtool.tasks.mouth.ssl import consistency_ramp, mel_bin_hz, student_view, warp_formants
from voxtool.tasks.mouth.synth import make_singers, synth_take

FAST = ["--preset", "mouth-ssl-tiny", "--device", "cpu", "--quiet", "--set", "train.batch_size=4",
        "--set", "ssl.unlabeled_batch_size=4", "--set", "data.crop_frames=32"]  # fmt: skip


@pytest.fixture(scope="module")
def unlabeled(corpus, tmp_path_factory):
    """Unlabeled vocals of other singers: a 16 kHz mono file, a 44.1 kHz stereo FLAC, a silent and a short file."""
    root = tmp_path_factory.mktemp("unlabeled")
    src = root / "src"
    (src / "more").mkdir(parents=True)
    singers = make_singers(2, seed=21)
    takes = [synth_take(s, 4.0, seed=300 + i) for i, s in enumerate(singers)]
    sf.write(src / "a.wav", takes[0].audio, 16000)
    stereo = resample(takes[1].audio, 16000, 44100)
    sf.write(src / "more" / "b.flac", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    sf.write(src / "silent.wav", np.zeros(16000 * 4, np.float32), 16000)
    sf.write(src / "short.wav", takes[0].audio[:16000], 16000)
    (src / "readme.txt").write_text("not audio")
    out = root / "data"
    assert main(["prep", "unlabeled", str(src), str(out), "--like", str(corpus.data), "--quiet"]) == 0
    return out


def test_prep_unlabeled_keeps_good_files_and_skips_silent_and_short(unlabeled, corpus):
    meta = json.loads((unlabeled / "dataset.json").read_text())
    assert meta["kind"] == "unlabeled"
    assert meta["mel"] == MouthDataset(corpus.data).meta["mel"]  # --like: the same features by construction
    assert sorted(meta["items"]) == ["items/a.npz", "items/more/b.npz"]
    reasons = {s["path"]: s["reason"] for s in meta["skipped"]}
    assert set(reasons) == {"silent.wav", "short.wav"}
    assert reasons["silent.wav"].startswith("silent") and reasons["short.wav"].startswith("too short")
    with np.load(unlabeled / "items" / "more" / "b.npz") as z:
        assert "curve" not in z and z["mel"].shape[1] == 80
        # 4 s at 44.1 kHz stereo -> 16 kHz mono -> 1 + (64000 + 704) // 320 frames
        assert z["mel"].shape[0] == 1 + (64000 + 704) // 320


def test_ramp_and_views():
    assert consistency_ramp(0, 0.12, 100) == pytest.approx(0.12 * np.exp(-5))
    assert consistency_ramp(50, 0.12, 100) == pytest.approx(0.12 * np.exp(-5 * 0.25))
    assert consistency_ramp(100, 0.12, 100) == consistency_ramp(1000, 0.12, 100) == pytest.approx(0.12)
    rng = np.random.default_rng(0)
    clean = np.random.default_rng(1).uniform(-8, 0, (64, 80, 32)).astype(np.float32)  # (B, n_mels, T)
    s = SSLSection(view_noise_p=1.0, view_mask_p=1.0)
    v1, v2 = student_view(clean, rng, s, -12.0), student_view(clean, rng, s, -12.0)
    assert v1.shape == clean.shape and not np.allclose(v1, v2) and v1.min() >= -12.0
    assert np.all((v1 == -12.0).any(axis=(1, 2)))  # every view has a masked region


def test_formant_warp_moves_spectral_peaks_by_the_scale():
    hz = mel_bin_hz(80)
    mel = np.full((80, 3), -10.0, np.float32)  # (n_mels, T)
    k = int(np.argmin(np.abs(hz - 1500)))
    mel[k] = 0.0
    for alpha in (0.9, 1.12):
        warped = warp_formants(mel, alpha)
        centre = np.sum(hz * np.exp(warped[:, 0])) / np.sum(np.exp(warped[:, 0]))  # energy centroid of the peak
        assert centre / hz[k] == pytest.approx(alpha, rel=0.03)
    np.testing.assert_allclose(warp_formants(mel, 1.0), mel)


def test_ssl_trains_and_saves_the_teacher(corpus, unlabeled, tmp_path):
    args = ["ssl", "mouth", str(corpus.data), "--unlabeled", str(unlabeled), "--exp", "ssl", "--runs-dir",
            str(tmp_path), *FAST, "--steps", "4"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "ssl"
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*logged)
    assert {"train/supervised", "train/r_drop", "train/consistency", "train/consistency_w", "unseen/pearson"} <= keys
    last = torch.load(run / "last.pt", weights_only=True)
    model_file = torch.load(run / "model.pt", weights_only=True)
    assert model_file["meta"]["teacher"] is True
    for key, value in model_file["state_dict"].items():  # model.pt holds the EMA teacher, not the student
        torch.testing.assert_close(value, last["ema"][key])
    assert any(not torch.equal(v, last["modules"]["model"][k]) for k, v in model_file["state_dict"].items())
    assert 'unlabeled = "' in (run / "config.toml").read_text()  # kept for --resume
    assert main([*args[:-2], "--steps", "6", "--resume"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 6


def test_ssl_refuses_zero_dropout_and_bad_unlabeled(corpus, unlabeled, tmp_path, capsys):
    base = ["ssl", "mouth", str(corpus.data), "--runs-dir", str(tmp_path), *FAST, "--steps", "2"]
    capsys.readouterr()
    assert main([*base, "--unlabeled", str(unlabeled), "--exp", "a", "--set", "model.conv_dropout=0"]) == 2
    assert "dropout" in capsys.readouterr().err
    assert main([*base, "--unlabeled", str(corpus.data), "--exp", "b"]) == 2  # a labeled set is not unlabeled
    assert main([*base, "--exp", "c"]) == 2  # --unlabeled missing


@pytest.mark.parametrize("rate", [16000, 44100])
def test_onnx_export_parity_and_inference(corpus, trained, tmp_path, rate):
    onnx_path = tmp_path / f"model{rate}.onnx"
    assert main(["export", "mouth", "--model", str(trained), "--out", str(onnx_path), "--sample-rate", str(rate),
                 "--quiet"]) == 0  # fmt: skip
    from voxtool.tasks.mouth.export import OnnxMouthModel, verify_onnx
    from voxtool.tasks.mouth.infer import load_model

    parity = verify_onnx(trained, onnx_path)
    assert parity < 1e-4  # onnxruntime vs torch on the same graph
    onnx_model = load_model(onnx_path)
    assert isinstance(onnx_model, OnnxMouthModel) and onnx_model.sample_rate == rate
    wav = str(corpus.unseen_wav)
    assert main(["infer", "mouth", wav, "--model", str(onnx_path), "--out", str(tmp_path / "onnx.csv"), "--fps", "30",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["infer", "mouth", wav, "--model", str(trained), "--out", str(tmp_path / "pt.csv"), "--fps", "30",
                 "--quiet"]) == 0  # fmt: skip
    a = np.loadtxt(tmp_path / "onnx.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(tmp_path / "pt.csv", delimiter=",", skiprows=1)
    duration = len(load_audio(corpus.unseen_wav, sr=16000)) / 16000
    assert a.shape == b.shape == (int(np.floor(duration * 30)) + 1, 2)
    np.testing.assert_array_equal(a[:, 0], b[:, 0])
    # same model; at 44.1 kHz the graph's sinc resampler differs slightly from soxr near the edges
    tol = 1e-3 if rate == 16000 else 0.05
    print(f"mouth onnx {rate} Hz: verify_onnx {parity:.2e}, max |onnx - torch| {np.abs(a[:, 1] - b[:, 1]).max():.5f}")
    assert np.abs(a[:, 1] - b[:, 1]).max() < tol
    assert main(["infer", "mouth", wav, "--model", str(tmp_path / "none.onnx"), "--quiet"]) == 2


@pytest.mark.slow
def test_ssl_two_rank_ddp(corpus, unlabeled, tmp_path):
    """Mean Teacher under `--nproc-per-node 2`: each rank keeps its own teacher copy of the same student."""
    from tests.conftest import run_voxtool

    proc = run_voxtool("ssl", "mouth", str(corpus.data), "--unlabeled", str(unlabeled), "--exp", "ddp",
                       "--runs-dir", str(tmp_path), *FAST, "--steps", "3", "--nproc-per-node", "2",
                       timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert last["step"] == 3 and last["ema"] is not None
    assert torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)["meta"]["teacher"] is True
