"""One parametrised log-mel front-end on torch.stft with librosa's filter banks.

Each task's published setting is a `MelConfig` (see the presets). For example
- mouth (R^3-MOE): 16 kHz, n_fft 1024, hop 320, 80 slaney mels, magnitude, extra reflect pad 352, ln clamp 1e-5
- RMVPE: 16 kHz, n_fft 1024, hop 160, 128 HTK-scale mels 30-8000 Hz (slaney norm), magnitude, centred,
  ln clamp 1e-5
- Soft-VC/HiFi-GAN: 16 kHz, n_fft 1024, hop 160, 128 slaney mels, magnitude, center=False + 432 reflect pad
"""

from __future__ import annotations

import numpy as np
import torch

from voxtool.audio.mel_config import MelConfig

__all__ = ["LogMel", "MelConfig", "mel_filters"]  # MelConfig lives in the torch-free mel_config


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
