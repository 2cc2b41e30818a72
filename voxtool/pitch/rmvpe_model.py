"""RMVPE E2E0 network with the module names of the published checkpoints.

The attribute names below (``unet.encoder.layers.{i}.conv.{j}.conv.{0,1,3,4}``, ``fc.0.gru``, ...) are the
state-dict keys of RVC's ``rmvpe.pt``, yxlllc's ``model.pt`` and DDP training outputs, so those files load
strictly. See ``voxtool.pitch.checkpoint.load_state_dict_any`` for the container / prefix / dtype handling.

Shapes: mel ``[B, n_mels, T]`` (T a multiple of ``2 ** n_levels``) -> salience ``[B, T, 360]`` in (0, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from voxtool.pitch.settings import RmvpeArch

N_BINS = 360
BN_MOMENTUM = 0.01  # PyTorch convention (= 0.99 in Keras terms), as published


class ConvBlockRes(nn.Module):
    """Two 3x3 conv-BN-ReLU plus a residual (1x1 conv with bias when widths differ). [B,Ci,H,W] -> [B,Co,H,W]"""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + residual


class ResEncoderBlock(nn.Module):
    """n_blocks ConvBlockRes, then optional 2x2 average pooling. Returns (skip, pooled) or x."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool, n_blocks: int):
        super().__init__()
        self.conv = nn.ModuleList(
            [ConvBlockRes(in_channels, out_channels)]
            + [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        )
        self.pool = nn.AvgPool2d(kernel_size=(2, 2)) if pool else None

    def forward(self, x: torch.Tensor):
        for block in self.conv:
            x = block(x)
        if self.pool is None:
            return x
        return x, self.pool(x)


class Encoder(nn.Module):
    """BN on the input then ``n_levels`` pooling blocks. [B,1,T,M] -> ([B,C*2^(L-1),T/2^L,M/2^L], skips)"""

    def __init__(self, arch: RmvpeArch):
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)
        channels = [1] + [arch.base_channels * 2**i for i in range(arch.n_levels)]
        self.layers = nn.ModuleList(
            ResEncoderBlock(channels[i], channels[i + 1], True, arch.n_blocks) for i in range(arch.n_levels)
        )
        self.skip_channels = channels[1:]

    def forward(self, x: torch.Tensor):
        skips = []
        x = self.bn(x)
        for layer in self.layers:
            skip, x = layer(x)
            skips.append(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_inter: int, n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(in_channels, out_channels, False, n_blocks)]
            + [ResEncoderBlock(out_channels, out_channels, False, n_blocks) for _ in range(n_inter - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TimbreFilter(nn.Module):
    """One ConvBlockRes per skip. Built (so its keys load) but never applied by E2E0, as published."""

    def __init__(self, skip_channels: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(ConvBlockRes(c, c) for c in skip_channels)


class ResDecoderBlock(nn.Module):
    """Transposed-conv upsampling x2, concat with the skip, n_blocks ConvBlockRes. [B,Ci,H,W] -> [B,Co,2H,2W]"""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, (2, 2), 1, (1, 1), bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            [ConvBlockRes(out_channels * 2, out_channels)]
            + [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, in_channels: int, n_levels: int, n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            ResDecoderBlock(in_channels // 2**i, in_channels // 2 ** (i + 1), n_blocks) for i in range(n_levels)
        )

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x


class DeepUnet0(nn.Module):
    def __init__(self, arch: RmvpeArch):
        super().__init__()
        self.encoder = Encoder(arch)
        bottom = arch.base_channels * 2**arch.n_levels
        self.intermediate = Intermediate(bottom // 2, bottom, arch.n_inter, arch.n_blocks)
        if arch.with_tf:
            self.tf = TimbreFilter(self.encoder.skip_channels)
        self.decoder = Decoder(bottom, arch.n_levels, arch.n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_layers: int):
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E0(nn.Module):
    """Mel ``[B, n_mels, T]`` -> salience ``[B, T, 360]``; T must be a multiple of ``arch.frame_multiple``."""

    def __init__(self, arch: RmvpeArch | None = None):
        super().__init__()
        self.arch = arch or RmvpeArch()
        a = self.arch
        if a.n_mels % a.frame_multiple:
            raise ValueError(f"n_mels={a.n_mels} must be divisible by 2**n_levels={a.frame_multiple}")
        self.unet = DeepUnet0(a)
        self.cnn = nn.Conv2d(a.base_channels, 3, 3, padding=1)
        if a.n_gru:
            self.fc = nn.Sequential(
                BiGRU(3 * a.n_mels, a.gru_hidden, a.n_gru),
                nn.Linear(2 * a.gru_hidden, N_BINS),
                nn.Dropout(0.25),
                nn.Sigmoid(),
            )
        else:
            self.fc = nn.Sequential(nn.Linear(3 * a.n_mels, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Salience ``[B, T, 360]``; ``logits=True`` skips the sigmoid (a numerically safe BCE under autocast)."""
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, T, M]
        x = self.cnn(self.unet(x))  # [B, 3, T, M]
        x = x.transpose(1, 2).flatten(-2)  # [B, T, 3*M]; feature = channel * M + mel_bin
        # The head runs in fp32 under a bf16/fp16 autocast: the local-average decoder weighs salience values near
        # 1, where bf16 steps by 0.004 (about a cent of pitch), and the GRU is a small part of the time.
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            for layer in list(self.fc)[:-1]:
                x = layer(x)
            return x if logits else torch.sigmoid(x)
