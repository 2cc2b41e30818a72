"""Vocoder mels against an independent librosa computation, and the refusal of a mel made with other settings."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from voxtool.audio.mel import LogMel, MelConfig
from voxtool.errors import BadInput
from voxtool.vocoders.hifigan import VOCODER_16K, VOCODER_22K, VocoderConfig
from voxtool.vocoders.mel import (
    MEL_16K_BSHALL,
    MEL_22K_JIK876,
    MelSettings,
    VocoderLogMel,
    check_mel_settings,
    check_mel_tensor,
)


def _test_signal(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp plus noise with a silent stretch (exercises the log floor and the magnitude epsilon)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    wav = 0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.05 * rng.standard_normal(t.size)
    wav[len(wav) // 3: len(wav) // 2] = 0.0
    return wav.astype(np.float32)


def _librosa_log_mel(wav: np.ndarray, sr: int, n_fft: int, hop: int, win: int, n_mels: int, fmin: float,
                     fmax: float, eps: float) -> np.ndarray:
    """The published recipe written out with numpy/librosa in float64: reflect pad (n_fft - hop) / 2, uncentred
    Hann STFT, amplitude sqrt(|X|^2 + eps), Slaney mel filters, ln(max(mel, 1e-5))."""
    pad = (n_fft - hop) // 2
    padded = np.pad(wav.astype(np.float64), (pad, pad), mode="reflect")
    spec = librosa.stft(padded, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=False)
    amplitude = np.sqrt(np.abs(spec) ** 2 + eps)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return np.log(np.maximum(basis @ amplitude, 1e-5))


@pytest.mark.parametrize(("settings", "eps"), [(MEL_16K_BSHALL, 0.0), (MEL_22K_JIK876, 1e-9)])
def test_mel_matches_librosa_recipe(settings: MelSettings, eps: float) -> None:
    wav = _test_signal(settings.sample_rate, 0.6)
    ours = VocoderLogMel(settings)(torch.from_numpy(wav)).numpy()
    ref = _librosa_log_mel(wav, settings.sample_rate, 1024, settings.hop_length, 1024, settings.n_mels, 0.0,
                           8000.0, eps)
    assert ours.shape == ref.shape == (settings.n_mels, len(wav) // settings.hop_length)
    assert np.abs(ours - ref).max() < 1e-4
    assert ref.min() == pytest.approx(np.log(1e-5))  # the silent stretch reaches the floor


def test_published_mel_fields() -> None:
    assert (MEL_16K_BSHALL.sample_rate, MEL_16K_BSHALL.n_mels, MEL_16K_BSHALL.hop_length, MEL_16K_BSHALL.pad) == \
        (16000, 128, 160, 432)
    assert (MEL_22K_JIK876.sample_rate, MEL_22K_JIK876.n_mels, MEL_22K_JIK876.hop_length, MEL_22K_JIK876.pad,
            MEL_22K_JIK876.f_max) == (22050, 80, 256, 384, 8000.0)
    for settings in (MEL_16K_BSHALL, MEL_22K_JIK876):
        assert settings.n_frames(10 * settings.hop_length + 7) == 10
        assert settings.for_loss().f_max is None


def test_batched_input_and_logmel_agreement() -> None:
    """Batch rows are independent, and the bshall setting equals the shared LogMel front-end."""
    wav = torch.from_numpy(np.stack([_test_signal(16000, 0.3, seed) for seed in (1, 2)]))
    mel = VocoderLogMel(MEL_16K_BSHALL)
    batched = mel(wav)
    assert batched.shape == (2, 128, 30)
    assert torch.allclose(batched[1], mel(wav[1]), atol=1e-5)
    shared = LogMel(MEL_16K_BSHALL.to_mel_config())(wav)
    assert torch.allclose(batched, shared, atol=1e-5)


def test_mel_mismatch_is_refused_naming_both() -> None:
    check_mel_settings(MEL_16K_BSHALL, MEL_16K_BSHALL.model_copy())
    check_mel_settings(MEL_16K_BSHALL, MEL_16K_BSHALL.to_mel_config())
    with pytest.raises(BadInput) as err:
        check_mel_settings(MEL_22K_JIK876, MEL_16K_BSHALL, where="mels/")
    text = str(err.value)
    assert "jik876-22k" in text and "bshall-16k" in text and "hop_length 256 vs 160" in text
    assert "\n" not in text and err.value.where == "mels/"
    # a subtle difference (centred STFT instead of the manual pad) is refused too
    centred = MelConfig(sample_rate=16000, n_fft=1024, hop_length=160, n_mels=128, f_max=8000, center=True)
    with pytest.raises(BadInput, match="center False vs True"):
        check_mel_settings(MEL_16K_BSHALL, centred)
    with pytest.raises(BadInput, match="power-2"):
        check_mel_settings(MEL_16K_BSHALL, MEL_16K_BSHALL.to_mel_config().model_copy(update={"power": 2.0}))


def test_mel_tensor_shape_check() -> None:
    check_mel_tensor(torch.zeros(2, 80, 10), MEL_22K_JIK876)
    check_mel_tensor(torch.zeros(80, 10), MEL_22K_JIK876)
    with pytest.raises(BadInput, match="expects \\(n_mels=80"):
        check_mel_tensor(torch.zeros(1, 128, 10), MEL_22K_JIK876)


def test_vocoder_config_requires_agreeing_mel() -> None:
    assert VOCODER_16K.mel == MEL_16K_BSHALL and VOCODER_22K.mel == MEL_22K_JIK876
    with pytest.raises(ValueError, match="mels"):
        VocoderConfig(generator=VOCODER_22K.generator, mel=MEL_16K_BSHALL)
