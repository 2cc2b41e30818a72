"""File inference reads audio in blocks (memory flat in duration) and equals inference on the decoded file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.errors import BadInput


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.presets import load_config
    from voxtool.tasks.rmvpe.infer import load_model
    from voxtool.tasks.rmvpe.train import RmvpeConfig
    from voxtool.training.modelfile import save_model_file

    cfg = load_config(RmvpeConfig, "rmvpe-tiny", [], task="rmvpe")
    torch.manual_seed(0)
    net = E2E0(cfg.model.arch())
    path = tmp_path_factory.mktemp("stream") / "model.pt"
    save_model_file(path, "rmvpe", cfg.model_dump(mode="json"), net.state_dict(), {})
    return load_model(path, device="cpu")


@pytest.mark.parametrize("seconds,rate,channels", [(9.37, 44100, 2), (4.0, 16000, 1), (0.02, 16000, 1)])
@pytest.mark.parametrize("settings", [
    dict(chunk_frames=64, context_frames=16, batch_size=3),
    dict(chunk_frames=200, context_frames=40, batch_size=1),
    dict(chunk_frames=64, context_frames=16, batch_size=2, decoder="viterbi"),
])
def test_file_equals_decoded_file(model, tmp_path, seconds, rate, channels, settings):
    from voxtool.audio.io import load_audio
    from voxtool.tasks.rmvpe.infer import predict, predict_from_file

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))
    path = tmp_path / "clip.wav"
    sf.write(path, np.repeat(x[:, None], channels, axis=1).astype(np.float32), rate, subtype="FLOAT")
    whole = predict(load_audio(path, 16000), 16000, model, **settings)
    streamed = predict_from_file(path, model, block_seconds=0.9, **settings)
    assert streamed.f0.shape == whole.f0.shape
    assert np.abs(streamed.f0 - whole.f0).max() <= 1e-6
    assert np.abs(streamed.confidence - whole.confidence).max() <= 1e-6


def test_bad_file_names_itself(model, tmp_path):
    from voxtool.tasks.rmvpe.infer import predict_from_file

    x = np.zeros(16000 * 4, np.float32)
    x[50000] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(BadInput, match="NaN or infinite") as err:
        predict_from_file(tmp_path / "inf.wav", model, chunk_frames=64, context_frames=16, block_seconds=1.0)
    assert err.value.where == str(tmp_path / "inf.wav")
