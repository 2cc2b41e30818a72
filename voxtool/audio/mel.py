"""One parametrised log-mel front-end on torch.stft with librosa's filter banks.

Each task's published setting is a `MelConfig` (see the presets). For example
- mouth (R^3-MOE): 16 kHz, n_fft 1024, hop 320, 80 slaney mels, magnitude, extra reflect pad 352, ln clamp 1e-5
- RMVPE: 16 kHz, n_fft 1024, hop 160, 128 HTK-scale mels 30-8000 Hz (slaney norm), magnitude, centred,
  ln clamp 1e-5
- Soft-VC/HiFi-GAN: 16 kHz, n_fft 1024, hop 160, 128 slaney mels, magnitude, center=False + 432 reflect pad
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from voxtool.presets import StrictModel


class MelConfig(StrictModel):
    sample_rate: int = Field(16000, gt=0, le=768_000)
    n_fft: int = Field(1024, gt=0, le=65536)
    win_length: int | None = Field(None, gt=0, le=65536)  # None = n_fft
    hop_length: int = Field(160, gt=0, le=65536)
    n_mels: int = Field(80, gt=0, le=1024)
    f_min: float = Field(0.0, ge=0, le=384_000)
    f_max: float | None = Field(None, gt=0, le=384_000)  # None = sample_rate / 2
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    power: float = Field(1.0, gt=0, le=4)  # 1 = magnitude, 2 = power
    center: bool = True
    pad_mode: Literal["reflect", "constant"] = "reflect"
    pad: int = Field(0, ge=0, le=65536)  # extra reflect padding per side before the STFT
    log_floor: float = Field(1e-5, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> MelConfig:
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        if self.f_max is not None and self.f_max > nyquist:
            raise ValueError(f"f_max ({self.f_max:g}) must not exceed sample_rate / 2 ({nyquist:g})")
        if self.f_min >= (self.f_max if self.f_max is not None else nyquist):
            raise ValueError(f"f_min ({self.f_min:g}) must be below f_max ({self.f_max or nyquist:g})")
        return self

    @property
    def win(self) -> int:
        return self.win_length or self.n_fft

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for `n_samples` of audio."""
        padded = n_samples + 2 * self.pad + (2 * (self.n_fft // 2) if self.center else 0)
        return max(0, 1 + (padded - self.n_fft) // self.hop_length)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each frame in the unpadded signal."""
        offset = (0 if self.center else self.n_fft / 2) - self.pad
        return (np.arange(n_frames) * self.hop_length + offset) / self.sample_rate


def mel_filters(cfg: MelConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.f_min,
        fmax=cfg.f_max,
        htk=cfg.mel_scale == "htk",
        norm=cfg.norm,
    ).astype(np.float32)


class LogMel(torch.nn.Module):
    """Waveform (B, N) or (N,) -> log-mel (B, n_mels, T) [or (n_mels, T)]."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mel_basis", torch.from_numpy(mel_filters(cfg)), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> magnitude**power STFT (B, n_fft//2+1, T)."""
        cfg = self.cfg
        if cfg.pad:
            wav = torch.nn.functional.pad(wav.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            wav,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win,
            window=self.window,
            center=cfg.center,
            pad_mode=cfg.pad_mode,
            return_complex=True,
        ).abs()
        return spec if cfg.power == 1 else spec.pow(cfg.power)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav.unsqueeze(0)
        mel = torch.matmul(self.mel_basis, self.spectrogram(wav.float()))
        out = torch.log(torch.clamp(mel, min=self.cfg.log_floor))
        return out.squeeze(0) if squeeze else out
