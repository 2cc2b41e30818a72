"""Torch-free settings of RMVPE: the network size (`RmvpeArch`) and the published mel front-end.

Config modules (`voxtool.tasks.rmvpe.config`) import these without importing the network, so `prep` and
`presets show` stay light.

Front-end of the published checkpoints (yxlllc/RVC): 16 kHz, n_fft = win = 1024, hop 160, 128 HTK mel bins
30..8000 Hz with librosa's default Slaney area norm, periodic Hann, magnitude, ln(clamp 1e-5), centred (reflect
pad n_fft/2). Every path (training crops, chunked inference, whole-file inference, ONNX) computes frames the same
way: the signal is reflect-padded by n_fft/2 per side once (`padding_config` describes that padding for
`voxtool.audio.framing`), then frame t covers padded samples [t*hop, t*hop + n_fft) and the STFT runs with
`frame_config(cfg)` (no padding of its own) on slices of that array. Frames past the end see zeros, i.e. the
U-Net's multiple-of-32 padding happens on the audio, not in log-mel space (log-mel 0 would mean a loud signal;
silence is ln(1e-5)).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from voxtool.audio.mel_config import MelConfig
from voxtool.presets import StrictModel

SAMPLE_RATE = 16000


class RmvpeArch(StrictModel):
    """Network size. Defaults are the published E2E0(n_blocks=4, n_gru=1, kernel_size=(2,2))."""

    n_mels: int = Field(128, gt=0, le=1024)
    n_blocks: int = Field(4, ge=1, le=32)  # ConvBlockRes per encoder/intermediate/decoder block
    n_levels: int = Field(5, ge=1, le=8)  # encoder/decoder levels (each halves time and mel axes)
    n_inter: int = Field(4, ge=1, le=32)  # intermediate blocks at the bottleneck
    base_channels: int = Field(16, ge=1, le=1024)  # channels of the first encoder level (doubles per level)
    n_gru: int = Field(1, ge=0, le=8)  # BiGRU layers (0 = linear head only)
    gru_hidden: int = Field(256, ge=1, le=8192)
    with_tf: bool = False  # build the unused "timbre filter" (yxlllc/Teco checkpoints carry its keys)

    @property
    def frame_multiple(self) -> int:
        """The number of frames fed to the U-Net must be a multiple of this."""
        return 2**self.n_levels

    def to_dict(self) -> dict[str, Any]:
        """Only the network fields (a subclass such as the task's ModelSection adds training settings)."""
        return {name: getattr(self, name) for name in RmvpeArch.model_fields}

    @classmethod
    def from_dict(cls, d: dict) -> RmvpeArch:
        """The network fields of `d` (other keys, e.g. a whole `[model]` section's, are ignored)."""
        return RmvpeArch(**{k: v for k, v in d.items() if k in RmvpeArch.model_fields})

    def arch(self) -> RmvpeArch:
        """The bare network size (drops the fields a subclass adds)."""
        return RmvpeArch.from_dict(self.to_dict())


def published_mel_config(**changes: Any) -> MelConfig:
    """MelConfig of the published checkpoints (centred; see the module docstring for the framing)."""
    base: dict[str, Any] = dict(
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


def padding_config(cfg: MelConfig) -> MelConfig:
    """The padding RMVPE frames always see, whatever `cfg.center` says: reflect by n_fft/2 per side.

    Use with `voxtool.audio.framing` (always with `extend_short=True`: a clip of n_fft/2 samples or fewer is
    zero-extended before the reflection, as the published code does); `cfg.n_frames(N)` = N // hop + 1."""
    return cfg.model_copy(update={"center": True, "pad": 0, "pad_mode": "reflect"})
