"""Chunked emissions (overlapping windows over the receptive field) equal the whole-file pass.

A pinyin-tiny network with random weights (eval mode, fp32): its receptive field is 81 feature frames a side
(context 82), so a core of 2 s cuts a ~40 s signal into ~20 windows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxtool.audio.mel import LogMel
from voxtool.presets import load_config
from voxtool.tasks.pinyin import chunked
from voxtool.tasks.pinyin.config import PinyinConfig
from voxtool.tasks.pinyin.infer import LoadedModel, emissions
from voxtool.tasks.pinyin.model import build_model
from voxtool.tasks.pinyin.tokens import Vocab


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model(cfg).eval()
        for m in net.modules():  # random running statistics too, so batch norm is not an identity
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return LoadedModel(net, Vocab(), cfg, torch.device("cpu"), LogMel(cfg.features.mel), precision="32")


def signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise under a slow, uneven envelope with a tone: unlike stationary noise, whole-file statistics matter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.05 + 0.5 * np.abs(np.sin(2 * np.pi * t / 7.3)) * (t / t[-1])
    wav = env * (rng.standard_normal(n) + np.sin(2 * np.pi * 220 * t))
    return wav.astype(np.float32)


def test_receptive_field_from_config(model):
    cfg = model.config.model
    # pinyin-tiny: C1 kernel 11 (5 frames) + 2 x [1 x 2 x (5 + 7) + 2 x 7] output frames = 5 + 2 x 38
    assert chunked.receptive_field(cfg) == 81
    assert chunked.context_frames(cfg) == 82
    # the published 15x5: 16 + 2 x (3 x 5 x (16 + 19 + 25 + 31 + 37) + 2 x 43) = 4028 frames (40.3 s)
    big = load_config(PinyinConfig, "pinyin", [], task="pinyin").model
    assert chunked.receptive_field(big) == 4028


def test_receptive_field_is_the_gradient_support(model):
    """Output frame t of the layers after normalisation depends on exactly features 2t - rf .. 2t + rf."""
    rf = chunked.receptive_field(model.config.model)
    T = 4 * rf
    x = torch.randn(1, model.config.features.mel.n_mels, T, requires_grad=True)
    lp = model.net.forward_normalized(x, torch.tensor([T]))
    t = T // 4
    lp[0, t].sum().backward()
    support = torch.nonzero(x.grad[0].abs().sum(0)).flatten()
    assert int(support.min()) == 2 * t - rf and int(support.max()) == 2 * t + rf


@pytest.mark.parametrize("seconds", [41.3, 40.0])  # odd and even feature-frame counts
def test_chunked_equals_whole(model, seconds):
    wav = signal(seconds)
    whole = emissions(model, wav, 16000, chunk_seconds=0)
    n_frames = model.config.features.mel.n_frames(wav.size)
    windows = chunked.plan(n_frames, model.config.model, 200)
    assert len(windows) > 10
    parts = emissions(model, wav, 16000, chunk_seconds=2.0)
    assert parts.shape == whole.shape == (-(-n_frames // 2), len(Vocab()))
    diff = float(np.abs(parts - whole).max())
    print(f"chunked vs whole, {seconds} s in {len(windows)} windows: max |diff| {diff:.2e}")
    assert diff < 1e-4


def test_windows_cover_every_output_frame_once(model):
    cfg = model.config.model
    ctx = chunked.context_frames(cfg)
    for n_frames in (4131, 4000, 401, 999):
        seen = np.zeros(-(-n_frames // 2), dtype=int)
        for start, stop, w in chunked.plan(n_frames, cfg, 200):
            assert start % 2 == 0 and 0 <= start <= w.core_start < w.core_stop <= stop <= n_frames
            assert start == 0 or w.core_start - start >= ctx  # real context, or the file's start
            assert stop == n_frames or stop - w.core_stop >= ctx
            seen[w.core_start // 2 : -(-w.core_stop // 2)] += 1
        assert (seen == 1).all()


def test_mel_in_blocks_equals_whole(model):
    wav = torch.from_numpy(signal(12.34, seed=1))
    whole = model.mel(wav)
    for block in (100, 333, 1234):
        assert torch.allclose(chunked.log_mel(model.mel, wav, block), whole, atol=1e-4, rtol=0)


def test_short_input_is_one_piece_and_unchanged(model):
    wav = signal(1.5)
    n_frames = model.config.features.mel.n_frames(wav.size)
    assert len(chunked.plan(n_frames, model.config.model, 200)) == 1
    default = emissions(model, wav, 16000)  # default core (120 s): one piece
    assert np.array_equal(emissions(model, wav, 16000, chunk_seconds=2.0), default)
    assert np.array_equal(emissions(model, wav, 16000, chunk_seconds=0), default)
    # the one-piece path is the network's own forward, as before
    feats = model.mel(torch.from_numpy(wav))[None]
    with torch.no_grad():
        lp, _ = model.net(feats, torch.tensor([feats.shape[-1]]))
    assert np.array_equal(lp[0].numpy(), default)
