"""Griffin-Lim fallback: a harmonic tone survives the log-mel round trip (f0, mel L1 far below noise)."""

from __future__ import annotations

import numpy as np
import torch

from voxtool.vocoders.griffinlim import GriffinLim
from voxtool.vocoders.mel import MEL_16K_BSHALL, MEL_22K_JIK876, VocoderLogMel


def _tone(sr: int, f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)
    return (0.3 * wav).astype(np.float32)


def test_round_trip_keeps_f0_and_the_mel():
    import pyworld

    for settings, f0 in ((MEL_16K_BSHALL, 200.0), (MEL_22K_JIK876, 140.0)):
        wav = _tone(settings.sample_rate, f0)
        log_mel, loss_mel = VocoderLogMel(settings), VocoderLogMel(settings.for_loss())
        mel = log_mel(torch.from_numpy(wav))
        vocoder = GriffinLim(settings)
        out = vocoder(mel[None])
        assert out.shape == (1, 1, mel.shape[1] * settings.hop_length) and vocoder.hop_length == settings.hop_length
        out = out[0, 0]
        real = loss_mel(torch.from_numpy(wav[: len(out)]))
        l1 = float((loss_mel(out) - real).abs().mean())
        noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, len(out)).astype(np.float32))
        noise_l1 = float((loss_mel(noise) - real).abs().mean())
        f0s, _ = pyworld.harvest(out.numpy().astype(np.float64), settings.sample_rate)
        cents = 1200 * np.log2(np.median(f0s[f0s > 0]) / f0)
        print(f"{settings.sample_rate} Hz: mel L1 {l1:.3f} (noise {noise_l1:.3f}), f0 off by {cents:.1f} cents")
        assert abs(cents) < 50
        assert l1 < 0.2 * noise_l1
        assert np.abs(out.numpy()).max() < 1.0


def test_mel_to_linear_solves_the_nnls_problem():
    """The multiplicative-update solution fits at least as well as librosa's L-BFGS-B nnls, and is non-negative."""
    import librosa

    vocoder = GriffinLim(MEL_16K_BSHALL)
    mel = np.exp(VocoderLogMel(MEL_16K_BSHALL)(torch.from_numpy(_tone(16000, 180.0, 0.5))).numpy().astype(np.float64))
    ours = vocoder.mel_to_linear(mel)
    ref = librosa.util.nnls(vocoder.basis, mel)
    err = np.abs(vocoder.basis @ ours - mel).mean()
    assert ours.min() >= 0 and err <= 1.2 * np.abs(vocoder.basis @ ref - mel).mean()
    assert np.isfinite(vocoder.invert(np.full((128, 20), np.log(1e-5), np.float32))).all()  # silence
