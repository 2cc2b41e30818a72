"""HiFi-GAN generator (jik876/hifi-gan V1 layout, also used by bshall/hifigan).

Module names follow the published checkpoints exactly, so their state dicts load after only a key rename
(`voxtool.vocoders.checkpoint`): `conv_pre`, `ups.N` (ConvTranspose1d), `resblocks.N.convs1.M` / `convs2.M`
(ResBlock "1") or `resblocks.N.convs.M` (ResBlock "2"), `conv_post`. Resblock N belongs to upsampling stage
N // len(resblock_kernel_sizes).

The configs (`GeneratorConfig` with the published `HIFIGAN_16K`, `HIFIGAN_22K`, `HIFIGAN_TINY`, and
`VocoderConfig` with `VOCODER_16K`, `VOCODER_22K`, `VOCODER_TINY`) live in the torch-free
`voxtool.vocoders.settings` (see there for each published shape) and are re-exported here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from voxtool.vocoders.settings import (
    HIFIGAN_16K,
    HIFIGAN_22K,
    HIFIGAN_TINY,
    PUBLISHED_GENERATORS,
    VOCODER_16K,
    VOCODER_22K,
    VOCODER_TINY,
    GeneratorConfig,
    VocoderConfig,
)

__all__ = ["FINAL_LRELU_SLOPE", "HIFIGAN_16K", "HIFIGAN_22K", "HIFIGAN_TINY", "LRELU_SLOPE", "PUBLISHED_GENERATORS",
           "VOCODER_16K", "VOCODER_22K", "VOCODER_TINY", "Generator", "GeneratorConfig", "ResBlock1", "ResBlock2",
           "VocoderConfig", "count_parameters", "get_padding", "init_weights"]

LRELU_SLOPE = 0.1  # every leaky ReLU of the network except the last one
FINAL_LRELU_SLOPE = 0.01  # jik876/bshall call F.leaky_relu(x) with its default slope before conv_post


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
