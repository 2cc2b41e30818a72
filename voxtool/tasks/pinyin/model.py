"""QuartzNet BxR CTC acoustic model (NeMo layout, arXiv 1910.10261).

C1 (separable, stride 2) -> B blocks of R time-channel separable sub-blocks with a 1x1-conv+BN residual
added before the last ReLU -> C2 (separable, dilation 2) -> C3 (1x1) -> decoder (1x1 -> classes).
Only C1 strides, so one output frame = 2 feature frames = 20 ms at a 10 ms hop.
"""

from __future__ import annotations

import torch
from torch import nn

from voxtool.tasks.pinyin.config import ModelSection, PinyinConfig
from voxtool.tasks.pinyin.tokens import Vocab


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) -> (B, 1, T) float mask, 1 on valid frames."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()


def normalize_per_feature(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation per mel bin over valid frames (NeMo `per_feature`).

    feats (B, F, T), lengths (B,) -> (B, F, T), padded frames set to 0."""
    mask = length_mask(lengths, feats.shape[-1])
    n = mask.sum(-1, keepdim=True).clamp(min=1)
    mean = (feats * mask).sum(-1, keepdim=True) / n
    var = (((feats - mean) * mask) ** 2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)
    return (feats - mean) / (var.sqrt() + 1e-5) * mask


class SeparableConv(nn.Module):
    """Depthwise conv over time (per channel) -> pointwise 1x1 conv -> BatchNorm.  (B, Cin, T) -> (B, Cout, T')."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1,
                 separable: bool = True):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        if separable:
            self.depthwise = nn.Conv1d(c_in, c_in, kernel, stride=stride, dilation=dilation, padding=pad,
                                       groups=c_in, bias=False)
            self.pointwise = nn.Conv1d(c_in, c_out, 1, bias=False)
        else:
            self.depthwise = nn.Conv1d(c_in, c_out, kernel, stride=stride, dilation=dilation, padding=pad,
                                       bias=False)
            self.pointwise = nn.Identity()
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))


class QuartzBlock(nn.Module):
    """R separable sub-blocks; residual (1x1 conv + BN of the block input) added before the last ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, repeat: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(
            SeparableConv(c_in if i == 0 else c_out, c_out, kernel) for i in range(repeat))
        self.residual = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, T), mask (B, 1, T) -> (B, Cout, T); padded frames stay zero so batching changes nothing."""
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out * mask)
            if i == len(self.convs) - 1:
                out = out + self.residual(x * mask)
            out = self.drop(torch.relu(out))
        return out * mask


class QuartzNet(nn.Module):
    """Log-mel (B, F, T) + lengths (B,) -> log-probabilities (B, T_out, n_classes) + output lengths (B,)."""

    def __init__(self, cfg: ModelSection, n_mels: int, n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.stride = cfg.stride
        self.c1 = SeparableConv(n_mels, cfg.c1_filters, cfg.c1_kernel, stride=cfg.stride)
        blocks = []
        c = cfg.c1_filters
        for _ in range(cfg.block_repeat):
            for spec in cfg.blocks:
                blocks.append(QuartzBlock(c, spec.filters, spec.kernel, cfg.sub_blocks, cfg.dropout))
                c = spec.filters
        self.blocks = nn.ModuleList(blocks)
        self.c2 = SeparableConv(c, cfg.c2_filters, cfg.c2_kernel, dilation=cfg.c2_dilation)
        self.c3 = SeparableConv(cfg.c2_filters, cfg.c3_filters, 1, separable=False)
        self.decoder = nn.Conv1d(cfg.c3_filters, n_classes, 1)
        self.drop = nn.Dropout(cfg.dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Feature frames -> output frames (C1's padding is kernel//2, so T_out = ceil(T / stride))."""
        return torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, F, T) raw log-mel, lengths (B,) -> (log_probs (B, T_out, C), out_lengths (B,))."""
        return self.forward_normalized(normalize_per_feature(feats, lengths), lengths), self.output_lengths(lengths)

    def forward_normalized(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`forward` after the per-utterance input normalisation: normalised features (B, F, T), zero beyond
        `lengths` -> log_probs (B, T_out, C). Long files run their windows through this with the whole file's
        statistics (chunked.py)."""
        out_lengths = self.output_lengths(lengths)
        x = self.drop(torch.relu(self.c1(x)))
        mask = length_mask(out_lengths, x.shape[-1])
        x = x * mask
        for block in self.blocks:
            x = block(x, mask)
        x = self.drop(torch.relu(self.c2(x * mask)))
        x = self.drop(torch.relu(self.c3(x * mask)))
        with torch.autocast(x.device.type, enabled=False):  # logits in fp32: bf16 steps by 0.06 at a logit of 10
            logits = self.decoder((x * mask).float()).transpose(1, 2)
        return torch.log_softmax(logits, dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: PinyinConfig, vocab: Vocab | None = None) -> QuartzNet:
    """The task's network for a config: `cfg.features.mel.n_mels` inputs, one output per token of `vocab`."""
    vocab = vocab or Vocab()
    return QuartzNet(cfg.model, cfg.features.mel.n_mels, len(vocab))
