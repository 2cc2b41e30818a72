"""Vocal-tract length normalisation: the warp itself, and factors fitted to voices whose tract lengths are known."""

from __future__ import annotations

import numpy as np
import pytest

from voxtool.tasks.diffvc import vtln

CENTERS = vtln.mel_centers_hz(80, 0.0, 8000.0)  # the HiFi-GAN 22.05 kHz mel bank


def _envelope(freqs: np.ndarray, formants=(700.0, 1200.0, 2600.0, 3500.0)) -> np.ndarray:
    """A ln-spectrum with formant peaks (Gaussians 120 Hz wide) over a floor."""
    return np.log(1e-3 + sum(0.8**k * np.exp(-0.5 * ((freqs - f) / 120.0) ** 2) for k, f in enumerate(formants)))


def test_warp_is_the_identity_at_one_and_moves_a_peak_down_by_alpha():
    spectrum = _envelope(CENTERS, (1500.0,))
    np.testing.assert_array_equal(vtln.warp_mel(spectrum, 1.0, CENTERS), spectrum)
    warped = vtln.warp_mel(spectrum, 1.2, CENTERS)  # bin b shows the value at 1.2 f_b: the 1500 Hz peak at 1250
    assert abs(CENTERS[np.argmax(warped)] - 1250.0) < 40.0  # bins are ~38 Hz apart there
    frames = np.stack([spectrum, spectrum + 1.0], axis=1)  # [n_mels, F]: every frame warped alike
    np.testing.assert_allclose(vtln.warp_mel(frames, 1.2, CENTERS), np.stack([warped, warped + 1.0], axis=1),
                               atol=1e-12)


def test_active_sum_leaves_out_silence():
    loud = np.full((80, 30), -2.0)
    quiet = np.full((80, 70), -11.5)  # ~80 dB down: a pause
    total, n = vtln.active_sum(np.concatenate([loud, quiet], axis=1))
    assert n == 30 and np.allclose(total / n, -2.0)


def test_fitted_factors_follow_the_tract_lengths():
    """Voices whose formants sit at s x the base formants, each with its own level and spectral tilt: the fitted
    alpha is s over the voices' geometric mean (the grid is 1.2 % apart), and a held-out voice is fitted to the
    reference without moving the others."""
    rng = np.random.default_rng(0)
    scales = {"a": 0.86, "b": 0.97, "c": 1.08, "d": 1.19}
    x = np.arange(80)

    def voice(s: float) -> np.ndarray:
        return _envelope(CENTERS / s) + rng.uniform(-3, 3) + rng.uniform(-0.03, 0.03) * x

    alphas, reference = vtln.fit_warps({n: voice(s) for n, s in scales.items()}, CENTERS)
    mean = np.exp(np.mean(np.log(list(scales.values()))))
    for name, s in scales.items():
        assert alphas[name] == pytest.approx(s / mean, rel=0.025)
    assert np.exp(np.mean(np.log(list(alphas.values())))) == pytest.approx(1.0)
    assert vtln.fit_warp(voice(1.13), reference, CENTERS) == pytest.approx(1.13 / mean, rel=0.025)
    assert vtln.fit_warps({"only": voice(1.1)}, CENTERS)[0] == {"only": 1.0}
