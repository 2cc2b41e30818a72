"""File inference reads audio in blocks (memory flat in duration) and equals whole-file inference."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.errors import BadInput


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from voxtool.presets import load_config
    from voxtool.tasks.mouth.config import MouthConfig, default_mel
    from voxtool.tasks.mouth.infer import load_model
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    cfg = load_config(MouthConfig, "mouth-tiny", [], task="mouth")
    torch.manual_seed(0)
    net = BiLSTMCurveEstimator(cfg.model, -0.15, 1.0)
    path = tmp_path_factory.mktemp("stream") / "model.pt"
    save_model_file(path, "mouth", cfg.model_dump(mode="json"), net.state_dict(),
                    {"mel": default_mel().model_dump(), "value_range": [-0.15, 1.0]})
    return load_model(path)


def sung(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 220 * 2 ** (0.5 * np.sin(2 * np.pi * 0.3 * t))
    ph = 2 * np.pi * np.cumsum(f0) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t) ** 2
    x = env * (0.3 * np.sin(ph) + 0.1 * np.sin(2 * ph)) + 0.01 * rng.standard_normal(len(t))
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1)])
def test_file_inference_equals_whole_file(predictor, tmp_path, rate, channels):
    from voxtool.audio.io import load_audio
    from voxtool.tasks.mouth.infer import predict, predict_from_file

    path = tmp_path / "take.wav"
    sf.write(path, sung(9.3, rate, channels), rate, subtype="FLOAT")
    whole = predict(load_audio(path, 16000), 16000, predictor, chunk_frames=100, context_frames=30)
    streamed = predict_from_file(path, predictor, chunk_frames=100, context_frames=30, keep_mel=True,
                                 block_seconds=0.7)
    assert streamed.curve.shape == whole.curve.shape and len(whole.curve) > 400  # 5 chunks of 100 frames
    assert np.abs(streamed.curve - whole.curve).max() <= 1e-6
    assert np.abs(streamed.mel - whole.mel).max() <= 1e-6
    assert streamed.duration == whole.duration
    assert np.array_equal(streamed.frame_times, whole.frame_times)
    short = predict_from_file(path, predictor, chunk_frames=3000, block_seconds=0.7)  # one chunk, no mel kept
    assert short.mel is None
    assert np.abs(short.curve - predict(load_audio(path, 16000), 16000, predictor).curve).max() <= 1e-6


@pytest.mark.parametrize("n", [865, 866, 320 * 50 - 1728, 320 * 50, 16000 * 3 + 17])
def test_streamed_mel_chunks_equal_the_whole_signal_at_the_edges(predictor, n):
    """The mouth front-end (reflect pad 352 + centred n_fft 1024) streamed from blocks, at lengths around its
    padding width and chunk boundaries, equals the whole signal's log-mel exactly."""
    from voxtool.audio.framing import iter_log_mel_chunks, log_mel

    audio = sung(n / 16000 + 0.01, 16000, 1)[:n, 0]
    blocks = [audio[i : i + 700] for i in range(0, n, 700)]
    chunks = list(iter_log_mel_chunks(blocks, predictor.mel_cfg, chunk_frames=20))
    assert all(c.shape == (80, 20) for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks, axis=1), log_mel(audio, predictor.mel_cfg, 20))


def test_file_too_short_names_the_file(predictor, tmp_path):
    from voxtool.tasks.mouth.infer import predict_from_file

    path = tmp_path / "tick.wav"
    sf.write(path, np.zeros(300, np.float32), 16000)
    with pytest.raises(BadInput, match="audio too short") as err:
        predict_from_file(path, predictor)
    assert err.value.where == str(path)
