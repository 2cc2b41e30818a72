"""Settings of the HiFi-GAN vocoders: the log-mel a vocoder was trained on and its generator's shape.

Imports no torch and no numpy (pydantic models only), so task configs (`voxtool.tasks.hifigan.config`) use these
models directly as their `[generator]` and `[mel]` sections and `voxtool presets show` stays cheap. The torch
modules built from them live in `voxtool.vocoders.mel` (`VocoderLogMel`) and `voxtool.vocoders.hifigan`
(`Generator`), which re-export every name defined here.

Mels. A vocoder only sounds right on the exact features it was trained with: a mel with another hop, filter
bank, padding or log floor gives buzzy or pitch-shifted audio without any error. So each vocoder carries its
`MelSettings` and `check_mel_settings` refuses a mel made with other settings.

Published settings (both: Hann window, center=False with a reflect pad of (n_fft - hop) / 2 per side, so a
waveform of N samples gives exactly N // hop frames; Slaney mel scale with area-normalised filters; amplitude;
natural log of the mel clamped at 1e-5):
- `MEL_16K_BSHALL` (bshall/hifigan + acoustic-model, torchaudio MelSpectrogram): 16 kHz, n_fft 1024, win 1024,
  hop 160, 128 mels, 0-8000 Hz, pad 432, magnitude |X| without epsilon.
- `MEL_22K_JIK876` (jik876/hifi-gan `mel_spectrogram`, DiffVC `get_mel`): 22.05 kHz, n_fft 1024, win 1024,
  hop 256, 80 mels, 0-8000 Hz, pad 384, magnitude sqrt(|X|^2 + 1e-9).
jik876 computes the training mel loss on a full-band mel (fmax_for_loss = None): `MelSettings.for_loss()`.

Generators (hop = product of upsample_rates; parameter counts with weight norm / after `remove_weight_norm()`):
- `HIFIGAN_16K` bshall 16 kHz: 128 mels, rates (10, 4, 2, 2) = hop 160, kernels (20, 8, 4, 4), 512 channels;
  14,370,306 / 14,360,193.
- `HIFIGAN_22K` jik876 V1 "UNIVERSAL_V1" 22.05 kHz: 80 mels, rates (8, 8, 2, 2) = hop 256, kernels
  (16, 16, 4, 4), 512 channels; 13,936,130 / 13,926,017 (234 tensors with old-style weight norm).
- `HIFIGAN_TINY`: the 16 kHz layout (128 bshall mels, hop 160) at 32 channels with ResBlock "2" (kernels 3, 5, 7;
  dilations (1, 2), (2, 6), (3, 12), as jik876 V3): trains a few steps per second on a CPU, for tests and CI.
`VocoderConfig` pairs a generator with its mel: `VOCODER_16K`, `VOCODER_22K`, `VOCODER_TINY`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

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


Rate = Annotated[int, Field(ge=1, le=64)]
Kernel = Annotated[int, Field(ge=1, le=256)]
Dilation = Annotated[int, Field(ge=1, le=1024)]


class GeneratorConfig(StrictModel):
    """Shape of a HiFi-GAN generator. hop = product of upsample_rates."""

    n_mels: int = Field(gt=0, le=1024)
    upsample_rates: tuple[Rate, ...] = Field(min_length=1, max_length=8)
    upsample_kernel_sizes: tuple[Kernel, ...] = Field(min_length=1, max_length=8)
    upsample_initial_channel: int = Field(gt=0, le=4096)
    resblock: Literal["1", "2"] = "1"
    resblock_kernel_sizes: tuple[Kernel, ...] = Field(min_length=1, max_length=8)
    resblock_dilation_sizes: tuple[tuple[Dilation, ...], ...] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorConfig:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            # padding (k - u) / 2 makes each stage exactly u times longer only when k - u is even and >= 0
            if rate <= 0 or kernel < rate or (kernel - rate) % 2:
                raise ValueError(f"upsample kernel {kernel} does not fit rate {rate} (need k >= u, k - u even)")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        convs = 3 if self.resblock == "1" else 2  # dilations used per resblock
        for kernel, dilations in zip(self.resblock_kernel_sizes, self.resblock_dilation_sizes):
            if kernel <= 0 or kernel % 2 == 0 or len(dilations) < convs or min(dilations) <= 0:
                raise ValueError(f"resblock {self.resblock} needs an odd kernel and {convs} positive dilations, "
                                 f"got {kernel} and {dilations}")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(f"upsample_initial_channel must be divisible by 2^{len(self.upsample_rates)}")
        return self

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    def stage_channels(self) -> list[int]:
        """Channels after conv_pre and after each upsampling stage (halving each stage)."""
        return [self.upsample_initial_channel // 2**i for i in range(len(self.upsample_rates) + 1)]


HIFIGAN_16K = GeneratorConfig(n_mels=128, upsample_rates=(10, 4, 2, 2), upsample_kernel_sizes=(20, 8, 4, 4),
                              upsample_initial_channel=512, resblock="1", resblock_kernel_sizes=(3, 7, 11),
                              resblock_dilation_sizes=((1, 3, 5),) * 3)
HIFIGAN_22K = GeneratorConfig(n_mels=80, upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
                              upsample_initial_channel=512, resblock="1", resblock_kernel_sizes=(3, 7, 11),
                              resblock_dilation_sizes=((1, 3, 5),) * 3)
HIFIGAN_TINY = GeneratorConfig(n_mels=128, upsample_rates=(10, 4, 2, 2), upsample_kernel_sizes=(20, 8, 4, 4),
                               upsample_initial_channel=32, resblock="2", resblock_kernel_sizes=(3, 5, 7),
                               resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)))
PUBLISHED_GENERATORS: dict[str, GeneratorConfig] = {"hifigan-16k": HIFIGAN_16K, "hifigan-22k": HIFIGAN_22K,
                                                    "hifigan-tiny": HIFIGAN_TINY}


class VocoderConfig(StrictModel):
    """A generator together with the mel it was trained on (their n_mels and hop must agree)."""

    generator: GeneratorConfig
    mel: MelSettings

    @model_validator(mode="after")
    def _agree(self) -> VocoderConfig:
        if self.generator.n_mels != self.mel.n_mels:
            raise ValueError(f"generator takes {self.generator.n_mels} mels but the mel has {self.mel.n_mels}")
        if self.generator.hop_length != self.mel.hop_length:
            raise ValueError(f"generator hop {self.generator.hop_length} != mel hop {self.mel.hop_length}")
        return self


VOCODER_16K = VocoderConfig(generator=HIFIGAN_16K, mel=MEL_16K_BSHALL)
VOCODER_22K = VocoderConfig(generator=HIFIGAN_22K, mel=MEL_22K_JIK876)
VOCODER_TINY = VocoderConfig(generator=HIFIGAN_TINY, mel=MEL_16K_BSHALL)
