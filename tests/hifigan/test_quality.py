"""Copy-synthesis scores (MCD with DTW, PESQ, STOI, f0 RMSE) on known inputs; eval through the library with a
trained-free vocoder (Griffin-Lim) and with a random generator; streaming/precision options of load_model."""

from __future__ import annotations

import numpy as np
import pytest

from voxtool.errors import BadInput
from voxtool.tasks.hifigan.metrics import f0_rmse_cents, mcd_dtw, pesq_wb, quality_scores, stoi

from .conftest import harmonic_clip


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return harmonic_clip(np.random.default_rng(0), 1.5)


def test_identical_signals_score_perfectly(clip):
    scores = quality_scores(clip, clip.copy(), 16000)
    assert scores["mcd"] == pytest.approx(0.0, abs=1e-9)
    assert scores["f0_rmse_cents"] == pytest.approx(0.0, abs=1e-9)
    assert scores["stoi"] > 0.999
    assert scores["pesq"] > 4.5


def test_degraded_signals_score_worse(clip):
    rng = np.random.default_rng(1)
    noisy = clip + 0.05 * rng.standard_normal(len(clip)).astype(np.float32)
    clean = quality_scores(clip, clip, 16000)
    worse = quality_scores(clip, noisy, 16000)
    assert worse["mcd"] > clean["mcd"] + 1 and worse["pesq"] < clean["pesq"] - 0.3 and worse["stoi"] < 0.9
    # 3 % faster playback: the pitch rises by 1200 log2(1.03) = 51 cents; DTW absorbs the timing for MCD
    sharp = np.interp(np.arange(len(clip)) * 1.03, np.arange(len(clip)), clip).astype(np.float32)
    assert f0_rmse_cents(clip, sharp, 16000) == pytest.approx(51.2, abs=6)
    # a 30 ms delay: MCD with DTW stays small, frame-by-frame it would not
    delayed = np.concatenate([np.zeros(480, np.float32), clip[:-480]])
    assert mcd_dtw(clip, delayed, 16000) < 0.5 * mcd_dtw(clip, noisy, 16000)


def test_other_rates_and_silence(clip):
    import soxr

    clip22 = soxr.resample(clip, 16000, 22050).astype(np.float32)
    assert pesq_wb(clip22, clip22, 22050) > 4.5 and stoi(clip22, clip22, 22050) > 0.999
    silence = np.zeros(16000, np.float32)
    assert np.isnan(f0_rmse_cents(silence, silence, 16000))


def test_eval_reports_every_metric(tiny_data):
    """Griffin-Lim on the held-out tones (hifigan-tiny's mel = hifigan-16k's): all five scores, per item and mean;
    against a random (untrained) generator every score is better."""
    import torch

    from tests.conftest import seeded
    from voxtool.tasks.hifigan.infer import Vocoder, evaluate_dataset, load_model
    from voxtool.vocoders.hifigan import HIFIGAN_TINY, Generator

    gl = evaluate_dataset("griffinlim", tiny_data, preset="hifigan-tiny", limit=2)
    assert set(gl.metrics) == {"mel_l1", "mcd", "pesq", "stoi", "f0_rmse_cents"} and len(gl.items) == 2
    for row in gl.items:
        assert {"name", "seconds", *gl.metrics} <= set(row)
    assert gl.metrics["mcd"] == pytest.approx(np.mean([r["mcd"] for r in gl.items]))
    torch.manual_seed(seeded(0))
    mel = load_model("griffinlim", preset="hifigan-tiny").mel
    random = Vocoder(Generator(HIFIGAN_TINY).eval().remove_weight_norm(), mel, torch.device("cpu"))
    rnd = evaluate_dataset(random, tiny_data, limit=2)
    print(f"Griffin-Lim {gl.metrics}\nrandom generator {rnd.metrics}")
    assert gl.metrics["mel_l1"] < rnd.metrics["mel_l1"] and gl.metrics["mcd"] < rnd.metrics["mcd"]
    assert gl.metrics["stoi"] > rnd.metrics["stoi"]
    assert gl.metrics["f0_rmse_cents"] < 50
    fast = evaluate_dataset(random, tiny_data, limit=2, quality=False)
    assert set(fast.metrics) == {"mel_l1"} and fast.metrics["mel_l1"] == pytest.approx(rnd.metrics["mel_l1"])


def test_load_model_options():
    from voxtool.tasks.hifigan.infer import load_model, predict

    gl = load_model("griffinlim", preset="hifigan-22k")
    assert gl.is_griffinlim and gl.sample_rate == 22050 and gl.precision == "32" and gl.chunk_frames == 500
    assert predict(np.full((80, 12), -5.0, np.float32), gl).shape == (12 * 256,)
    with pytest.raises(BadInput, match="chunk_frames"):
        load_model("griffinlim", chunk_frames=-1)
    with pytest.raises(BadInput, match="precision"):
        load_model("griffinlim", precision="8")
