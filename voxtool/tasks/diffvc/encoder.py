"""DiffVC's "average voice" encoder `FwdDiffusion` = `MelEncoder` + `PostNet`.

The encoder maps a speaker's mel to the same utterance spoken by an "average voice" (per-phone average mels); its
output is the prior mean of the decoder's diffusion. Module and parameter names are those of the original
(huawei-noah/Speech-Backbones DiffVC `model/encoder.py`, `model/postnet.py`, `model/vc.py`), so `enc.pt` and the
`encoder.*` half of `vc_*_wodyn.pt` load strictly.

- `MelEncoder`: Conv1d(n_feats -> channels) -> prenet (3 x [Conv1d k5, channel LayerNorm, ReLU, Dropout 0.5],
  zero-initialised 1x1 projection, residual) -> post-LN transformer (self-attention with relative positions in a
  window of +-window_size, shared across heads; FFN conv k -> ReLU -> conv k) -> Conv1d(channels -> n_feats).
- `PostNet`: the (n_feats, F) output as a 1-channel image: 1x1 conv -> residual block of two 7x7 conv +
  GroupNorm(8) + Mish with a 1x1 skip -> 1x1 conv to 1 channel.

All tensors are [B, channels, F] (1-D parts) or [B, 1, n_feats, F] (PostNet); masks are [B, 1, F], 1 on real
frames. Padded frames are zeroed between layers, so they never leak into real ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from voxtool.tasks.diffvc.model_config import GROUPS, EncoderSection

ATTENTION_MASK_FILL = -1e4  # the original's logit for masked keys; finite, so it also fits in fp16


def sequence_mask(lengths: Tensor, max_length: int | None = None) -> Tensor:
    """[B] frame counts -> bool [B, max_length] (True on frames < length); max_length defaults to max(lengths)."""
    max_length = int(lengths.max()) if max_length is None else int(max_length)
    return torch.arange(max_length, device=lengths.device) < lengths.unsqueeze(1)


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """sum((prediction - target)^2 * mask) / (sum(mask) * n_feats) for [B, n_feats, F] and a [B, 1, F] mask, in
    float32 (a bf16 sum over a batch of mels would lose digits)."""
    diff = (prediction.float() - target.float()) ** 2 * mask.float()
    return diff.sum() / (mask.float().sum() * prediction.shape[1])


class LayerNorm(nn.Module):
    """LayerNorm over the channels of [B, C, F] (parameters `gamma`, `beta`, eps 1e-4, as Glow-TTS)."""

    def __init__(self, channels: int, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps).transpose(1, -1)


class ConvReluNorm(nn.Module):
    """The prenet: n_layers x [Conv1d(k) -> LayerNorm -> ReLU -> Dropout], a zero-initialised 1x1 projection and a
    residual connection, so an untrained prenet is the identity."""

    def __init__(self, channels: int, kernel_size: int = 5, n_layers: int = 3, p_dropout: float = 0.5):
        super().__init__()
        self.conv_layers = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
                                         for _ in range(n_layers))
        self.norm_layers = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))
        self.relu_drop = nn.Sequential(nn.ReLU(), nn.Dropout(p_dropout))
        self.proj = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = x
        for conv, norm in zip(self.conv_layers, self.norm_layers):
            h = self.relu_drop(norm(conv(h * mask)))
        return (x + self.proj(h)) * mask


class MultiHeadAttention(nn.Module):
    """Self-attention with relative position embeddings (Shaw et al.) inside +-window_size, shared by all heads.

    The logit of query i for key j is (q_i . k_j + q_i . rel_k[j - i]) / sqrt(d) and the output adds
    sum_j p_ij rel_v[j - i]; offsets outside the window contribute nothing (embeddings `emb_rel_k`/`emb_rel_v`,
    shape (1, 2w+1, d), d = channels / heads).
    """

    def __init__(self, channels: int, n_heads: int, window_size: int, p_dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.window_size = window_size
        self.k_channels = channels // n_heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        std = self.k_channels ** -0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(p_dropout)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def _band(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """index [T, T] of offset j - i + w in the embedding table (clamped) and bool [T, T]: |j - i| <= w."""
        pos = torch.arange(length, device=device)
        offset = pos.unsqueeze(0) - pos.unsqueeze(1)
        inside = offset.abs() <= self.window_size
        return (offset + self.window_size).clamp(0, 2 * self.window_size), inside

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        """x [B, C, T], attn_mask [B, 1, T, T] (1 where both frames are real) -> [B, C, T]."""
        b, c, t = x.shape
        # [B, C, T] -> [B, heads, T, d]
        q, k, v = (conv(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
                   for conv in (self.conv_q, self.conv_k, self.conv_v))
        scale = 1.0 / math.sqrt(self.k_channels)
        index, inside = self._band(t, x.device)
        index = index.expand(b, self.n_heads, t, t)
        # q_i . rel_k[o] for the 2w+1 offsets o, then placed at key j = i + o - w
        rel_logits = torch.matmul(q, self.emb_rel_k.to(q.dtype).transpose(1, 2).unsqueeze(0))
        scores = torch.matmul(q, k.transpose(2, 3)) + rel_logits.gather(-1, index) * inside
        scores = (scores * scale).masked_fill(attn_mask == 0, ATTENTION_MASK_FILL)
        p_attn = self.drop(torch.softmax(scores, dim=-1))
        # the attention weight of each offset: sum over keys j with j - i + w == o
        p_band = torch.zeros(b, self.n_heads, t, 2 * self.window_size + 1, dtype=p_attn.dtype, device=x.device)
        p_band.scatter_add_(-1, index, p_attn * inside)
        out = torch.matmul(p_attn, v.to(p_attn.dtype)) + torch.matmul(p_band, self.emb_rel_v.to(p_band.dtype))
        return self.conv_o(out.transpose(2, 3).reshape(b, c, t).to(x.dtype))


class FFN(nn.Module):
    """Conv1d(k) -> ReLU -> Dropout -> Conv1d(k), masked before each convolution."""

    def __init__(self, channels: int, filters: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filters, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv1d(filters, channels, kernel_size, padding=kernel_size // 2)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.conv_2(self.drop(torch.relu(self.conv_1(x * mask))) * mask) * mask


class Encoder(nn.Module):
    """`layers` post-LN blocks: x = LN(x + attn(x)); x = LN(x + ffn(x)), dropout on each branch."""

    def __init__(self, cfg: EncoderSection):
        super().__init__()
        n = cfg.layers
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_layers = nn.ModuleList(MultiHeadAttention(cfg.channels, cfg.heads, cfg.window_size, cfg.dropout)
                                         for _ in range(n))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(cfg.channels) for _ in range(n))
        self.ffn_layers = nn.ModuleList(FFN(cfg.channels, cfg.filters, cfg.kernel, cfg.dropout) for _ in range(n))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(cfg.channels) for _ in range(n))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)  # [B, 1, T, T]
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers,
                                             self.norm_layers_2):
            x = x * mask
            x = norm_1(x + self.drop(attn(x, attn_mask)))
            x = norm_2(x + self.drop(ffn(x, mask)))
        return x * mask


class MelEncoder(nn.Module):
    """mel [B, n_feats, F] -> [B, n_feats, F] through the transformer (see the module docstring)."""

    def __init__(self, cfg: EncoderSection):
        super().__init__()
        self.init_proj = nn.Conv1d(cfg.n_feats, cfg.channels, 1)
        self.prenet = ConvReluNorm(cfg.channels, kernel_size=5, n_layers=3, p_dropout=0.5)
        self.encoder = Encoder(cfg)
        self.term_proj = nn.Conv1d(cfg.channels, cfg.n_feats, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.prenet(self.init_proj(x * mask), mask)
        return self.term_proj(self.encoder(x, mask) * mask)


class PostNetBlock(nn.Module):
    """Conv2d(7x7) -> GroupNorm(8) -> Mish on [B, dim, n_feats, F], masked in and out."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3), nn.GroupNorm(GROUPS, dim), nn.Mish())

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.block(x * mask) * mask


class PostNetResBlock(nn.Module):
    """Two `PostNetBlock`s plus a 1x1-conv skip (`res`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.block1 = PostNetBlock(dim)
        self.block2 = PostNetBlock(dim)
        self.res = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.res(x * mask) + self.block2(self.block1(x, mask), mask)


class PostNet(nn.Module):
    """[B, n_feats, F] -> [B, n_feats, F] as a 1-channel image through `dim` channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.init_conv = nn.Conv2d(1, dim, 1)
        self.res_block = PostNetResBlock(dim)
        self.final_conv = nn.Conv2d(dim, 1, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        mask = mask.unsqueeze(1)  # [B, 1, 1, F]
        x = self.res_block(self.init_conv(x.unsqueeze(1) * mask), mask)
        return self.final_conv(x * mask).squeeze(1)


class FwdDiffusion(nn.Module):
    """The average-voice encoder: `encoder` (MelEncoder) then `postnet` (PostNet).

    `forward(x [B, n_feats, F], mask [B, 1, F]) -> [B, n_feats, F]`; gradients flow (wrap in `torch.no_grad()` to
    use it as a frozen prior). Padded frames of the output are not zeroed by the PostNet's last 1x1 conv (it has a
    bias), as in the original; every consumer masks.
    """

    def __init__(self, cfg: EncoderSection):
        super().__init__()
        self.cfg = cfg
        self.n_feats = cfg.n_feats
        self.encoder = MelEncoder(cfg)
        self.postnet = PostNet(cfg.enc_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(x.dtype)
        return self.postnet(self.encoder(x, mask), mask)

    def compute_loss(self, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Masked MSE between the encoder's output for mel `x` and the average-voice mel `y` (both [B, n_feats, F];
        mask [B, 1, F]): sum((enc(x) - y)^2 mask) / (sum(mask) n_feats), a float32 scalar."""
        return masked_mse(self(x, mask), y, mask)
