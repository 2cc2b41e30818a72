"""Inference speed options keep the output (issue 15): batched windows, bf16, the onnxruntime backend."""

from __future__ import annotations

import numpy as np
import pytest

from voxtool.audio.framing import log_mel
from voxtool.audio.io import load_audio
from voxtool.tasks.mouth.infer import load_model, predict
from voxtool.tasks.mouth.runtime import predict_mel

MOUTH_TOLERANCE = 0.005  # issue 15: a speed option may move the curve by at most this (target units)


@pytest.fixture(scope="module")
def long_mel(corpus, trained):
    audio = load_audio(corpus.unseen_wav, sr=16000)
    mel = log_mel(np.concatenate([audio, audio[::-1], audio]), load_model(trained).mel_cfg)  # 30 s
    return mel


def test_batched_windows_equal_one_window_at_a_time(trained, long_mel):
    model = load_model(trained, precision="32")
    one = predict_mel(model, long_mel, chunk_frames=300, context_frames=60, batch_size=1)
    batched = predict_mel(model, long_mel, chunk_frames=300, context_frames=60, batch_size=8)
    assert long_mel.shape[1] > 1400 and len(batched) == long_mel.shape[1]
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-5)


def test_bf16_stays_within_tolerance_of_fp32(trained, long_mel):
    fp32 = predict_mel(load_model(trained, precision="32"), long_mel, chunk_frames=10**6)
    bf16 = predict_mel(load_model(trained, precision="bf16"), long_mel)  # default windows too
    worst = float(np.abs(bf16 - fp32).max())
    print(f"mouth bf16 vs fp32 whole file: max {worst:.5f}")
    assert worst < MOUTH_TOLERANCE
    # the curve moves far more than the tolerance, so the test can fail (std 0.0996 at seed 1 on an Intel AMX CPU)
    assert np.std(fp32) > 10 * MOUTH_TOLERANCE


def test_onnx_backend_equals_torch(trained, long_mel, corpus):
    torch_model = load_model(trained, precision="32")
    onnx_model = load_model(trained, precision="32", backend="onnx", threads=1)
    np.testing.assert_allclose(predict_mel(onnx_model, long_mel), predict_mel(torch_model, long_mel),
                               rtol=0, atol=1e-5)  # fmt: skip
    audio = load_audio(corpus.unseen_wav, sr=16000)  # one window: GroupNorm of the input itself
    np.testing.assert_allclose(predict(audio, 16000, onnx_model).curve, predict(audio, 16000, torch_model).curve,
                               rtol=0, atol=1e-5)  # fmt: skip


def test_speed_options_on_the_command_line(trained, corpus, tmp_path, capsys):
    from voxtool.cli import main

    wav = str(corpus.unseen_wav)
    out32, out_onnx = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["infer", "mouth", wav, "-m", str(trained), "-o", str(out32), "--precision", "32", "--threads", "1",
                 "--batch-size", "2", "--chunk-seconds", "3", "--context-seconds", "1"]) == 0  # fmt: skip
    assert main(["infer", "mouth", wav, "-m", str(trained), "-o", str(out_onnx), "--backend", "onnx"]) == 0  # auto: 32
    np.testing.assert_allclose(np.load(out_onnx), np.load(out32), rtol=0, atol=0.01)  # other windows, same curve
    capsys.readouterr()
    for bad in (["--backend", "tensorrt"], ["--precision", "fp8"], ["--backend", "onnx", "--precision", "bf16"]):
        assert main(["infer", "mouth", wav, "-m", str(trained), "-o", str(tmp_path / "c.npy"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert not (tmp_path / "c.npy").exists()
