"""`MelConfig`: the settings of one log-mel front-end, torch-free.

Task configs (`voxtool/tasks/*/config.py`) hold a `MelConfig` and must import without torch, so the settings
live here and the torch module that computes them (`voxtool.audio.mel.LogMel`) lives beside it.
"""

from __future__ import annotations

from typing import Literal

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

    def frame_times(self, n_frames: int):
        """Centre time (s) of each frame in the unpadded signal: (n_frames,) float64 array."""
        import numpy as np

        offset = (0 if self.center else self.n_fft / 2) - self.pad
        return (np.arange(n_frames) * self.hop_length + offset) / self.sample_rate
