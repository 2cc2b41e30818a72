"""HiFi-GAN generator (jik876/hifi-gan V1 layout, also used by bshall/hifigan) and its published configs.

Module names follow the published checkpoints exactly, so their state dicts load after only a key rename
(`voxtool.vocoders.checkpoint`): `conv_pre`, `ups.N` (ConvTranspose1d), `resblocks.N.convs1.M` / `convs2.M`
(ResBlock "1") or `resblocks.N.convs.M` (ResBlock "2"), `conv_post`. Resblock N belongs to upsampling stage
N // len(resblock_kernel_sizes).

Configs (parameter counts with weight norm / after `remove_weight_norm()`):
- `HIFIGAN_16K` bshall 16 kHz: 128 mels, rates (10, 4, 2, 2) = hop 160, kernels (20, 8, 4, 4), 512 channels;
  14,370,306 / 14,360,193.
- `HIFIGAN_22K` jik876 V1 "UNIVERSAL_V1" 22.05 kHz: 80 mels, rates (8, 8, 2, 2) = hop 256, kernels
  (16, 16, 4, 4), 512 channels; 13,936,130 / 13,926,017 (234 tensors with old-style weight norm).
- `HIFIGAN_TINY`: the 16 kHz layout (128 bshall mels, hop 160) at 32 channels with ResBlock "2" (kernels 3, 5, 7;
  dilations (1, 2), (2, 6), (3, 12), as jik876 V3): trains a few steps per second on a CPU, for tests and CI.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from voxtool.presets import StrictModel
from voxtool.vocoders.mel import MEL_16K_BSHALL, MEL_22K_JIK876, MelSettings

LRELU_SLOPE = 0.1  # every leaky ReLU of the network except the last one
FINAL_LRELU_SLOPE = 0.01  # jik876/bshall call F.leaky_relu(x) with its default slope before conv_post


class GeneratorConfig(StrictModel):
    """Shape of a HiFi-GAN generator. hop = product of upsample_rates."""

    n_mels: int = Field(gt=0, le=1024)
    upsample_rates: tuple[int, ...] = Field(min_length=1, max_length=8)
    upsample_kernel_sizes: tuple[int, ...] = Field(min_length=1, max_length=8)
    upsample_initial_channel: int = Field(gt=0, le=4096)
    resblock: Literal["1", "2"] = "1"
    resblock_kernel_sizes: tuple[int, ...] = Field(min_length=1, max_length=8)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = Field(min_length=1, max_length=8)

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


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd dilated kernel."""
    return (kernel_size * dilation - dilation) // 2


def init_weights(module: nn.Module, std: float = 0.01) -> None:
    """jik876's init: N(0, 0.01) for every conv weight (applied before weight norm)."""
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        module.weight.data.normal_(0.0, std)


def _conv(channels_in: int, channels_out: int, kernel: int, dilation: int = 1, norm: bool = True) -> nn.Conv1d:
    conv = nn.Conv1d(channels_in, channels_out, kernel, 1, dilation=dilation, padding=get_padding(kernel, dilation))
    init_weights(conv)
    return apply_weight_norm(conv) if norm else conv


class ResBlock1(nn.Module):
    """Per dilation d: x + conv_1(lrelu(conv_d(lrelu(x)))). (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], norm: bool = True):
        super().__init__()
        self.convs1 = nn.ModuleList([_conv(channels, channels, kernel_size, d, norm) for d in dilations[:3]])
        self.convs2 = nn.ModuleList([_conv(channels, channels, kernel_size, 1, norm) for _ in dilations[:3]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation d: x + conv_d(lrelu(x)). (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], norm: bool = True):
        super().__init__()
        self.convs = nn.ModuleList([_conv(channels, channels, kernel_size, d, norm) for d in dilations[:2]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """Log-mel (B, n_mels, T) -> waveform (B, 1, T * hop) in [-1, 1].

    Built with weight norm (`torch.nn.utils.parametrizations.weight_norm`) for training and for loading g/v
    checkpoints; call `remove_weight_norm()` once for inference (same output, no per-call norm).
    """

    def __init__(self, config: GeneratorConfig, weight_norm: bool = True):
        super().__init__()
        self.config = config
        channels = config.stage_channels()
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.conv_pre = _conv(config.n_mels, channels[0], 7, norm=weight_norm)
        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
            up = nn.ConvTranspose1d(channels[i], channels[i + 1], kernel, rate, padding=(kernel - rate) // 2)
            init_weights(up)
            self.ups.append(apply_weight_norm(up) if weight_norm else up)
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(channels[i + 1], kernel, tuple(dilations), norm=weight_norm)
            for i in range(len(self.ups))
            for kernel, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        self.conv_post = _conv(channels[-1], 1, 7, norm=weight_norm)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 1, T * hop)."""
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            # multi-receptive-field fusion: the mean of this stage's resblocks
            stage = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in stage) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE))
        return torch.tanh(x)

    def has_weight_norm(self) -> bool:
        return any(parametrize.is_parametrized(m, "weight") for m in self.modules())

    def remove_weight_norm(self) -> Generator:
        """Fold g * v / ||v|| into plain weights (in place); returns self."""
        # under no_grad torch would leave the folded weight a plain tensor instead of a Parameter
        with torch.enable_grad():
            for module in self.modules():
                if parametrize.is_parametrized(module, "weight"):
                    parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
