"""hifigan test fixtures: synthetic harmonic clips (tones with vibrato and noise) and a prepared tiny dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import seeded, torch_threads

torch.set_num_threads(torch_threads())  # OMP_NUM_THREADS, 1 unless set (tests/conftest.py)

SR = 16000


def harmonic_clip(rng: np.random.Generator, seconds: float, sr: int = SR) -> np.ndarray:
    """(N,) float32: a voiced tone (f0 110-300 Hz, 4-6 Hz vibrato, decaying harmonics, an amplitude envelope)
    plus a little white noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(110, 300) * 2 ** (rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(4, 6) * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tilt = rng.uniform(0.6, 1.2)
    wav = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**tilt for k in range(1, 12) if k * f0.max() < sr / 2)
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)  # 50 ms fades
    wav = 0.3 * wav * envelope + rng.uniform(0.002, 0.02) * rng.standard_normal(len(t))
    return wav.astype(np.float32)


def write_clips(folder: Path, n: int, seed: int, sr: int = SR, seconds: tuple[float, float] = (1.0, 2.0)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sf.write(folder / f"clip{i:02d}.wav", harmonic_clip(rng, rng.uniform(*seconds), sr), sr)
    return folder


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips") / "wavs", 10, seeded(0))


@pytest.fixture(scope="session")
def tiny_data(clips, tmp_path_factory) -> Path:
    """A prepared hifigan-tiny dataset of the synthetic clips (in-process), 3 held out."""
    from voxtool.presets import load_config
    from voxtool.tasks.hifigan import data
    from voxtool.tasks.hifigan.config import HifiganConfig

    out = tmp_path_factory.mktemp("hifigan") / "data"
    config = load_config(HifiganConfig, "hifigan-tiny", task="hifigan")
    data.write_dataset(data.collect_audio([clips]), out, config, valid_fraction=0.3, seed=seeded(0))
    return out
