"""voxtool.pitch: estimate_f0 with WORLD harvest (no model) and RMVPE (a tiny random-weight model), and the layer's
import boundaries (no task imported; no allocator side effect when loading a model)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from voxtool.pitch import estimate_f0

SR = 16000


def tone(seconds: float = 1.0, f0: float = 220.0, silence: float = 0.3) -> tuple[np.ndarray, float]:
    """A harmonic tone at `f0` Hz followed by `silence` seconds of near silence -> (audio (N,), voiced seconds)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * f0 * t
    rng = np.random.default_rng(0)
    # a little noise: harvest calls a mathematically perfect periodic signal unvoiced
    voiced = 0.4 * np.sin(phase) + 0.2 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase) + 0.01 * rng.standard_normal(len(t))
    rest = 1e-4 * rng.standard_normal(int(silence * SR))
    return np.concatenate([voiced, rest]).astype(np.float32), seconds


def test_harvest_finds_the_pitch_of_a_tone_within_50_cents():
    audio, voiced_s = tone(1.0, 220.0)
    times, f0, voicing = estimate_f0(audio, SR, method="harvest", hop_ms=10.0)
    assert times.shape == f0.shape == voicing.shape and len(f0) >= len(audio) // 160
    assert np.allclose(np.diff(times), 0.01)
    inside = (times > 0.1) & (times < voiced_s - 0.1)  # away from the onset and the end of the tone
    assert np.all(voicing[inside] == 1.0) and np.all(f0[inside] > 0)
    cents = np.abs(1200 * np.log2(f0[inside] / 220.0))
    assert cents.max() < 50
    assert np.array_equal(voicing, (f0 > 0).astype(np.float32))
    assert np.mean(f0[times > voiced_s + 0.1] > 0) < 0.5  # the silence is mostly unvoiced


def test_rmvpe_runs_with_a_tiny_random_model_and_returns_the_hop_grid():
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.pitch.runtime import TorchPitchModel
    from voxtool.pitch.settings import RmvpeArch, published_mel_config

    torch.manual_seed(0)
    arch = RmvpeArch(n_blocks=1, n_levels=3, n_inter=1, base_channels=4, gru_hidden=8)
    model = TorchPitchModel(E2E0(arch), published_mel_config())
    audio, _ = tone(1.0, 220.0)
    times, f0, confidence = estimate_f0(audio, SR, method="rmvpe", model=model)
    assert times.shape == f0.shape == confidence.shape == (len(audio) // 160 + 1,)
    assert f0.dtype == np.float32 and np.all(f0 >= 0) and np.all((confidence >= 0) & (confidence <= 1))
    times5, f05, _ = estimate_f0(audio, 22050, method="rmvpe", model=model, hop_ms=5.0, chunk_frames=16,
                                 context_frames=8)
    assert np.allclose(np.diff(times5), 0.005) and len(f05) == len(times5)


def test_rmvpe_loads_a_published_layout_file(tmp_path):
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.pitch.settings import RmvpeArch

    torch.manual_seed(0)
    net = E2E0(RmvpeArch(n_blocks=1, n_levels=3, n_inter=1, base_channels=4, gru_hidden=8))
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, tmp_path / "r.pt")
    times, f0, confidence = estimate_f0(tone(0.5)[0], SR, model=tmp_path / "r.pt")
    assert times.shape == f0.shape == confidence.shape


def test_bad_requests_are_refused():
    audio, _ = tone(0.2)
    with pytest.raises(ValueError, match="needs a model"):
        estimate_f0(audio, SR, method="rmvpe")
    with pytest.raises(ValueError, match="unknown f0 method"):
        estimate_f0(audio, SR, method="crepe")
    with pytest.raises(TypeError, match="apply to method 'rmvpe' only"):
        estimate_f0(audio, SR, method="harvest", decoder="viterbi")


def test_the_layer_imports_no_task_and_loading_sets_no_allocator_option(monkeypatch):
    code = (
        "import sys, voxtool.pitch, voxtool.pitch.rmvpe, voxtool.pitch.world, voxtool.pitch.checkpoint;"
        "print([m for m in sys.modules if m.startswith('voxtool.tasks')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # the package itself imports nothing heavy (its modules are imported when estimate_f0 runs)
    out = subprocess.run([sys.executable, "-c", "import sys, voxtool.pitch; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

    import voxtool.runtime
    from voxtool.pitch import runtime
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.pitch.settings import RmvpeArch, published_mel_config

    calls = []
    monkeypatch.setattr(voxtool.runtime, "limit_mmap_threshold", lambda: calls.append(1))
    assert not hasattr(runtime, "limit_mmap_threshold")  # a process-wide setting lives in voxtool.runtime
    runtime.TorchPitchModel(E2E0(RmvpeArch(n_blocks=1, n_levels=3, n_inter=1, base_channels=4, gru_hidden=8)),
                            published_mel_config())
    assert calls == []
