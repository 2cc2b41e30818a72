"""Mel front-end of the published RMVPE checkpoints and its frame bookkeeping.

Settings (yxlllc/RVC): 16 kHz, n_fft = win = 1024, hop 160, 128 HTK mel bins 30..8000 Hz with librosa's
default Slaney area norm, periodic Hann, magnitude, ln(clamp 1e-5), centred (reflect pad n_fft/2).

Every path (training crops, chunked inference, whole-file inference, ONNX) computes frames the same way:
the signal is reflect-padded by n_fft/2 on both sides once (``pad_signal``), then frame t covers padded
samples ``[t*hop, t*hop + n_fft)`` and the STFT runs with ``center=False`` on slices of that array. Frames past
the end see zeros, i.e. the U-Net's multiple-of-32 padding happens on the audio, not in log-mel space
(log-mel 0 would mean a loud signal; silence is ln(1e-5)).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from voxtool.audio.mel import LogMel, MelConfig, mel_filters

SAMPLE_RATE = 16000


def published_mel_config(**changes) -> MelConfig:
    """MelConfig of the published checkpoints (``center`` True; see ``frame_mel`` for the un-centred twin)."""
    base = dict(
        sample_rate=SAMPLE_RATE,
        n_fft=1024,
        win_length=1024,
        hop_length=160,
        n_mels=128,
        f_min=30.0,
        f_max=8000.0,
        mel_scale="htk",
        norm="slaney",
        power=1.0,
        center=True,
        pad_mode="reflect",
        pad=0,
        log_floor=1e-5,
    )
    base.update(changes)
    return MelConfig(**base)


def uncentred(cfg: MelConfig) -> MelConfig:
    return cfg.model_copy(update={"center": False, "pad": 0})


def n_frames(n_samples: int, hop: int) -> int:
    """Frames of a centred analysis of ``n_samples`` samples (``N // hop + 1``)."""
    return n_samples // hop + 1


def pad_signal(wav: np.ndarray, n_fft: int) -> np.ndarray:
    """Reflect-pad ``[N]`` by n_fft/2 per side (zero-extending first when N is too short to reflect)."""
    half = n_fft // 2
    if len(wav) <= half:
        wav = np.concatenate([wav, np.zeros(half + 1 - len(wav), dtype=wav.dtype)])
    return np.pad(wav, (half, half), mode="reflect").astype(np.float32, copy=False)


def frame_slice(padded: np.ndarray, start: int, count: int, hop: int, n_fft: int) -> np.ndarray:
    """Samples of the padded signal that frames ``[start, start+count)`` cover, zero-filled past the end."""
    lo = start * hop
    hi = (start + count - 1) * hop + n_fft
    out = padded[lo:hi]
    if len(out) < hi - lo:
        out = np.concatenate([out, np.zeros(hi - lo - len(out), dtype=np.float32)])
    return out


def frame_slice_from_audio(audio: np.ndarray, start: int, count: int, hop: int, n_fft: int) -> np.ndarray:
    """``frame_slice(pad_signal(audio), ...)`` without materialising the padded copy of a long signal."""
    half = n_fft // 2
    n = len(audio)
    if n <= half:
        return frame_slice(pad_signal(audio, n_fft), start, count, hop, n_fft)
    lo = start * hop - half  # in unpadded sample coordinates
    hi = (start + count - 1) * hop + n_fft - half
    if lo >= 0 and hi <= n:
        return np.ascontiguousarray(audio[lo:hi], dtype=np.float32)
    idx = np.arange(lo, hi)
    idx = np.where(idx < 0, -idx, idx)  # reflect without repeating the edge sample (np.pad 'reflect')
    idx = np.where((idx >= n) & (idx < n + half), 2 * (n - 1) - idx, idx)
    out = np.zeros(hi - lo, dtype=np.float32)
    inside = (idx >= 0) & (idx < n)
    out[inside] = audio[idx[inside]]
    return out


class FrameMel(nn.Module):
    """Un-centred log-mel: pre-padded waveform ``[B, (T-1)*hop + n_fft]`` -> ``[B, n_mels, T]``."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = uncentred(cfg)
        self.mel = LogMel(self.cfg)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.mel(wav)


class ConvStftLogMel(nn.Module):
    """Export-friendly twin of ``FrameMel``: the STFT is a conv1d with fixed windowed DFT kernels.

    Pre-padded waveform ``[B, N]`` -> log-mel ``[B, n_mels, T]`` with ``T = 1 + (N - n_fft) // hop``.
    Only conv1d / matmul / sqrt / log ops, so it exports to any ONNX opset without an STFT operator.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        n_fft, win = cfg.n_fft, cfg.win
        window = torch.hann_window(win, dtype=torch.float64)
        lpad = (n_fft - win) // 2
        window = nn.functional.pad(window, (lpad, n_fft - win - lpad))
        n_bins = n_fft // 2 + 1
        t = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64).unsqueeze(1)
        angle = 2 * torch.pi * k * t / n_fft
        real = torch.cos(angle) * window
        imag = -torch.sin(angle) * window
        kernels = torch.cat([real, imag]).unsqueeze(1).float()  # [2*n_bins, 1, n_fft]
        self.register_buffer("kernels", kernels, persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filters(cfg)), persistent=False)
        self.n_bins = n_bins

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = nn.functional.conv1d(wav.unsqueeze(1), self.kernels, stride=self.cfg.hop_length)
        re, im = spec[:, : self.n_bins], spec[:, self.n_bins :]
        mag = torch.sqrt(re * re + im * im)
        if self.cfg.power != 1:
            mag = mag.pow(self.cfg.power)
        mel = torch.matmul(self.mel_basis, mag)
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor))
