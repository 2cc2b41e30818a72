"""HiFi-GAN discriminators (jik876/hifi-gan `models.py`, also bshall/hifigan), with jik876's module names:
`discriminators.N.convs.M`, `discriminators.N.conv_post`, and for the multi-scale one `meanpools.N`.

Both take (real, fake) waveforms (B, 1, N) and return `DiscriminatorOutputs`: per sub-discriminator the flat
scores (B, S_i) of real and fake audio and the feature maps (every conv's activation) used by feature matching.
Weight norm is `torch.nn.utils.parametrizations.weight_norm`, the first scale's spectral norm
`torch.nn.utils.parametrizations.spectral_norm`. `width` scales every channel count (1 = published; the
tiny test and CI setups use 1/16) and the group counts are reduced to what the narrower layers allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from voxtool.vocoders.hifigan import LRELU_SLOPE, get_padding

MPD_PERIODS = (2, 3, 5, 7, 11)
MPD_CHANNELS = (32, 128, 512, 1024, 1024)
# (out channels, kernel, stride, groups, padding) of DiscriminatorS's convs
MSD_LAYERS = ((128, 15, 1, 1, 7), (128, 41, 2, 4, 20), (256, 41, 2, 16, 20), (512, 41, 4, 16, 20),
              (1024, 41, 4, 16, 20), (1024, 41, 1, 16, 20), (1024, 5, 1, 1, 2))


@dataclass
class DiscriminatorOutputs:
    """Scores and feature maps of one multi-discriminator: lists with one entry per sub-discriminator."""

    real_scores: list[torch.Tensor]  # each (B, S_i)
    fake_scores: list[torch.Tensor]
    real_features: list[list[torch.Tensor]]  # each a list of conv activations
    fake_features: list[list[torch.Tensor]]


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _conv_stack(x: torch.Tensor, convs: nn.ModuleList, conv_post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Both discriminator kinds: leaky-ReLU convs then conv_post -> (flattened scores (B, -1), every feature map)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = conv_post(x)
    features.append(x)
    return torch.flatten(x, 1, -1), features


class DiscriminatorP(nn.Module):
    """Period discriminator: waveform (B, 1, N) folded to (B, 1, ceil(N/p), p), 2-D convs along time.
    Returns (scores (B, S), feature maps)."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, width: float = 1.0,
                 use_spectral_norm: bool = False):
        super().__init__()
        self.period = period
        norm = spectral_norm if use_spectral_norm else weight_norm
        channels = [1] + [_scaled(c, width) for c in MPD_CHANNELS]
        strides = [stride] * 4 + [1]
        pad = (get_padding(kernel_size, 1), 0)
        self.convs = nn.ModuleList(
            norm(nn.Conv2d(channels[i], channels[i + 1], (kernel_size, 1), (strides[i], 1), padding=pad))
            for i in range(5)
        )
        self.conv_post = norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, chans, length = wav.shape
        if length % self.period:
            # reflect-pad to a whole number of periods (as jik876)
            wav = F.pad(wav, (0, self.period - length % self.period), "reflect")
        return _conv_stack(wav.view(batch, chans, -1, self.period), self.convs, self.conv_post)


class DiscriminatorS(nn.Module):
    """Scale discriminator: grouped strided 1-D convs over a waveform (B, 1, N). Returns (scores, feature maps)."""

    def __init__(self, width: float = 1.0, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        convs = []
        channels_in = 1
        for channels, kernel, stride, groups, padding in MSD_LAYERS:
            channels_out = _scaled(channels, width)
            groups = math.gcd(groups, channels_in, channels_out)  # narrow layers cannot keep 16 groups
            convs.append(norm(nn.Conv1d(channels_in, channels_out, kernel, stride, groups=groups, padding=padding)))
            channels_in = channels_out
        self.convs = nn.ModuleList(convs)
        self.conv_post = norm(nn.Conv1d(channels_in, 1, 3, 1, padding=1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(wav, self.convs, self.conv_post)


class MultiPeriodDiscriminator(nn.Module):
    """One DiscriminatorP per period (2, 3, 5, 7, 11). (real, fake) (B, 1, N) -> DiscriminatorOutputs."""

    def __init__(self, periods: tuple[int, ...] = MPD_PERIODS, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(DiscriminatorP(p, width=width) for p in periods)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> DiscriminatorOutputs:
        return _run(self.discriminators, real, fake)


class MultiScaleDiscriminator(nn.Module):
    """Three DiscriminatorS on the waveform at 1x, 1/2x and 1/4x (AvgPool1d(4, 2, padding=2) between scales);
    the first is spectral-normed. (real, fake) (B, 1, N) -> DiscriminatorOutputs."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList([DiscriminatorS(width, use_spectral_norm=True),
                                             DiscriminatorS(width), DiscriminatorS(width)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> DiscriminatorOutputs:
        outputs = DiscriminatorOutputs([], [], [], [])
        for i, disc in enumerate(self.discriminators):
            if i:
                real, fake = self.meanpools[i - 1](real), self.meanpools[i - 1](fake)
            _append(outputs, disc, real, fake)
        return outputs


def _append(outputs: DiscriminatorOutputs, disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
    real_score, real_features = disc(real)
    fake_score, fake_features = disc(fake)
    outputs.real_scores.append(real_score)
    outputs.fake_scores.append(fake_score)
    outputs.real_features.append(real_features)
    outputs.fake_features.append(fake_features)


def _run(discriminators: nn.ModuleList, real: torch.Tensor, fake: torch.Tensor) -> DiscriminatorOutputs:
    outputs = DiscriminatorOutputs([], [], [], [])
    for disc in discriminators:
        _append(outputs, disc, real, fake)
    return outputs
