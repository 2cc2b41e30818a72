"""`LogMel` with the STFT as a conv1d of fixed windowed-DFT kernels, for graphs exported to ONNX.

`ConvLogMel(cfg)` computes what `voxtool.audio.mel.LogMel(cfg)` computes (within float32 rounding, ~1e-5 on
log-mels) from any `MelConfig`: the extra reflect `pad`, the centring pad of n_fft/2 (`pad_mode`), a periodic
Hann window of `win_length` centred in n_fft, magnitude (** `power`), the librosa mel matrix, ln(clamp
`log_floor`). It only uses Pad / Conv / Mul / Add / Sqrt / MatMul / Log / Clip, so it exports to any opset without
an STFT operator (torch.stft does not export before opset 17 and not at all for some runtimes).

For chunked or pre-padded input give it `voxtool.audio.framing.frame_config(cfg)` (no padding of its own):
frame t then covers input samples [t*hop, t*hop + n_fft).

Shapes: waveform (B, N) -> log-mel (B, n_mels, T); (N,) -> (n_mels, T), T = `cfg.n_frames(N)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxtool.audio.mel import MelConfig, mel_filters


def dft_kernels(n_fft: int, win_length: int | None = None) -> torch.Tensor:
    """Windowed DFT kernels (2 * (n_fft//2 + 1), 1, n_fft) float32: cosines (real parts) then -sines (imaginary).

    Built in float64 and rounded once, so exported graphs of every task hold bit-identical kernels."""
    win = win_length or n_fft
    window = torch.zeros(n_fft, dtype=torch.float64)
    left = (n_fft - win) // 2  # torch.stft centres a shorter window inside n_fft
    window[left : left + win] = torch.hann_window(win, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * n / n_fft
    basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2F, n_fft)
    return basis.float()[:, None, :]


class ConvLogMel(nn.Module):
    """Waveform (B, N) or (N,) -> log-mel (B, n_mels, T) or (n_mels, T); export-friendly twin of `LogMel`."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        self.n_bins = cfg.n_fft // 2 + 1
        # not persistent: rebuilt from cfg, so state_dicts of models holding a front-end stay as they were
        self.register_buffer("kernels", dft_kernels(cfg.n_fft, cfg.win), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filters(cfg)), persistent=False)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> magnitude ** power (B, n_fft//2 + 1, T)."""
        cfg = self.cfg
        x = wav[:, None, :]
        if cfg.pad:
            x = nn.functional.pad(x, (cfg.pad, cfg.pad), mode="reflect")
        if cfg.center:
            half = cfg.n_fft // 2
            x = nn.functional.pad(x, (half, half), mode="reflect" if cfg.pad_mode == "reflect" else "constant")
        spec = nn.functional.conv1d(x, self.kernels, stride=cfg.hop_length)  # (B, 2F, T)
        real, imag = spec[:, : self.n_bins], spec[:, self.n_bins :]
        mag = torch.sqrt(real * real + imag * imag)
        return mag if cfg.power == 1 else mag.pow(cfg.power)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1  # a Python branch: fixed when traced, so the exported graph has none
        if squeeze:
            wav = wav.unsqueeze(0)
        mel = torch.matmul(self.mel_basis, self.spectrogram(wav.float()))
        out = torch.log(torch.clamp(mel, min=self.cfg.log_floor))
        return out.squeeze(0) if squeeze else out
