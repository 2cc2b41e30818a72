"""The log-mel a HiFi-GAN vocoder was trained on, per published vocoder, and the check that a mel fits it.

A vocoder only sounds right on the exact features it was trained with: a mel with another hop, filter bank,
padding or log floor gives buzzy or pitch-shifted audio without any error. So each vocoder carries its
`MelSettings` and `check_mel_settings` refuses a mel made with other settings.

Published settings (both: Hann window, center=False with a reflect pad of (n_fft - hop) / 2 per side, so a
waveform of N samples gives exactly N // hop frames; Slaney mel scale with area-normalised filters; amplitude;
natural log of the mel clamped at 1e-5):
- `MEL_16K_BSHALL` (bshall/hifigan + acoustic-model, torchaudio MelSpectrogram): 16 kHz, n_fft 1024, win 1024,
  hop 160, 128 mels, 0-8000 Hz, pad 432, magnitude |X| without epsilon.
- `MEL_22K_JIK876` (jik876/hifi-gan `mel_spectrogram`, DiffVC `get_mel`): 22.05 kHz, n_fft 1024, win 1024,
  hop 256, 80 mels, 0-8000 Hz, pad 384, magnitude sqrt(|X|^2 + 1e-9).
jik876 computes the training mel loss on a full-band mel (fmax_for_loss = None): `MelSettings.for_loss()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, model_validator

from voxtool.errors import BadInput
from voxtool.presets import StrictModel

if TYPE_CHECKING:
    from voxtool.audio.mel import MelConfig


class MelSettings(StrictModel):
    """One vocoder's log-mel definition (every field changes the features)."""

    sample_rate: int = Field(gt=0, le=768_000)
    n_fft: int = Field(gt=0, le=65536)
    win_length: int = Field(gt=0, le=65536)
    hop_length: int = Field(gt=0, le=65536)
    n_mels: int = Field(gt=0, le=1024)
    f_min: float = Field(0.0, ge=0, le=384_000)
    f_max: float | None = Field(None, gt=0, le=384_000)  # None = sample_rate / 2
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    center: bool = False  # torch.stft centring (pads n_fft // 2 per side with `pad_mode`)
    pad: int = Field(0, ge=0, le=65536)  # reflect padding per side before an uncentred STFT
    magnitude_eps: float = Field(0.0, ge=0, le=1)  # amplitude = sqrt(|X|^2 + eps)
    log_floor: float = Field(1e-5, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> MelSettings:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        top = self.f_max if self.f_max is not None else nyquist
        if top > nyquist:
            raise ValueError(f"f_max ({top:g}) must not exceed sample_rate / 2 ({nyquist:g})")
        if self.f_min >= top:
            raise ValueError(f"f_min ({self.f_min:g}) must be below f_max ({top:g})")
        return self

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for `n_samples` of audio (N // hop for the published settings)."""
        padded = n_samples + 2 * self.pad + (2 * (self.n_fft // 2) if self.center else 0)
        return max(0, 1 + (padded - self.n_fft) // self.hop_length)

    def for_loss(self) -> MelSettings:
        """jik876's mel-L1 loss uses the same mel without the upper band limit (fmax_for_loss = None)."""
        return self.model_copy(update={"f_max": None})

    def to_mel_config(self) -> MelConfig:
        """The same settings as `voxtool.audio.mel.MelConfig` (exact only when magnitude_eps is 0)."""
        from voxtool.audio.mel import MelConfig

        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
                         hop_length=self.hop_length, n_mels=self.n_mels, f_min=self.f_min, f_max=self.f_max,
                         mel_scale=self.mel_scale, norm=self.norm, power=1.0, center=self.center,
                         pad_mode="reflect", pad=self.pad, log_floor=self.log_floor)

    def describe(self) -> str:
        """One short line, e.g. '22050 Hz, 80 mels, n_fft 1024, win 1024, hop 256, 0-8000 Hz, ...'."""
        top = f"{self.f_max:g}" if self.f_max is not None else f"{self.sample_rate / 2:g}"
        name = next((n for n, s in PUBLISHED_MELS.items() if s == self), None)
        text = (f"{self.sample_rate} Hz, {self.n_mels} mels, n_fft {self.n_fft}, win {self.win_length}, "
                f"hop {self.hop_length}, {self.f_min:g}-{top} Hz, {self.mel_scale} scale, norm {self.norm}, "
                f"{'centred' if self.center else f'pad {self.pad}'}, eps {self.magnitude_eps:g}, "
                f"floor {self.log_floor:g}")
        return f"{name} ({text})" if name else text


MEL_16K_BSHALL = MelSettings(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, n_mels=128,
                             f_min=0.0, f_max=8000.0, pad=(1024 - 160) // 2)
MEL_22K_JIK876 = MelSettings(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                             f_min=0.0, f_max=8000.0, pad=(1024 - 256) // 2, magnitude_eps=1e-9)
PUBLISHED_MELS: dict[str, MelSettings] = {"bshall-16k": MEL_16K_BSHALL, "jik876-22k": MEL_22K_JIK876}

_COMPARED = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max", "mel_scale",
             "norm", "center", "pad", "magnitude_eps", "log_floor")


def as_mel_settings(given: Any) -> MelSettings:
    """MelSettings from MelSettings, a MelConfig (amplitude only) or a dict of MelSettings fields."""
    if isinstance(given, MelSettings):
        return given
    if isinstance(given, dict):
        return MelSettings.model_validate(given)
    fields = getattr(type(given), "model_fields", None)
    if fields and "power" in fields:  # voxtool.audio.mel.MelConfig
        if given.power != 1:
            raise BadInput(None, f"a power-{given.power:g} mel is not a vocoder input (vocoders take amplitude)")
        return MelSettings(sample_rate=given.sample_rate, n_fft=given.n_fft, win_length=given.win,
                           hop_length=given.hop_length, n_mels=given.n_mels, f_min=given.f_min, f_max=given.f_max,
                           mel_scale=given.mel_scale, norm=given.norm, center=given.center, pad=given.pad,
                           log_floor=given.log_floor)
    raise TypeError(f"cannot read mel settings from {type(given).__name__}")


def check_mel_settings(vocoder_mel: MelSettings, given_mel: Any, where: Any = None) -> None:
    """Refuse (BadInput) a mel made with other settings than the vocoder's, naming both and what differs."""
    given = as_mel_settings(given_mel)
    differ = [f"{k} {getattr(vocoder_mel, k)!r} vs {getattr(given, k)!r}" for k in _COMPARED
              if getattr(vocoder_mel, k) != getattr(given, k)]
    if differ:
        raise BadInput(where, f"mel settings do not fit the vocoder: it expects [{vocoder_mel.describe()}], "
                              f"given [{given.describe()}]; differs in {', '.join(differ)}")


def check_mel_tensor(mel: torch.Tensor, vocoder_mel: MelSettings, where: Any = None) -> None:
    """Refuse a mel array whose shape cannot be a (B, n_mels, T) or (n_mels, T) input of this vocoder."""
    shape = tuple(mel.shape)
    if mel.dim() not in (2, 3) or shape[-2] != vocoder_mel.n_mels or shape[-1] == 0:
        raise BadInput(where, f"mel of shape {shape} does not fit the vocoder: it expects (n_mels={vocoder_mel.n_mels}, "
                              f"frames) [{vocoder_mel.describe()}]")


class VocoderLogMel(torch.nn.Module):
    """Waveform (B, N) or (N,) -> log-mel (B, n_mels, T) [or (n_mels, T)], T = settings.n_frames(N).

    Filters come from `voxtool.audio.mel.mel_filters` (librosa); unlike `LogMel` this also applies jik876's
    magnitude epsilon, which moves near-silent bins by up to sqrt(1e-9) in amplitude.
    """

    def __init__(self, settings: MelSettings):
        from voxtool.audio.mel import mel_filters

        super().__init__()
        self.settings = settings
        basis = mel_filters(settings.to_mel_config())
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(settings.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        s = self.settings
        squeeze = wav.dim() == 1
        wav = (wav.unsqueeze(0) if squeeze else wav).float()
        if s.pad:
            wav = torch.nn.functional.pad(wav.unsqueeze(1), (s.pad, s.pad), mode="reflect").squeeze(1)
        spec = torch.stft(wav, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.win_length,
                          window=self.window, center=s.center, pad_mode="reflect", return_complex=True)
        amplitude = torch.sqrt(spec.real.square() + spec.imag.square() + s.magnitude_eps) if s.magnitude_eps \
            else spec.abs()
        out = torch.log(torch.clamp(torch.matmul(self.mel_basis, amplitude), min=s.log_floor))
        return out.squeeze(0) if squeeze else out
