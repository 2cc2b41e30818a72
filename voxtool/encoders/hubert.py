"""HuBERT-Soft content encoder (bshall/hubert `HubertSoft`), module names as bshall's so published files load
strictly (see `hubert_checkpoint`).

    wav (B, T) 16 kHz -> pad 40|40 -> feature_extractor (B, C, T // 320) -> feature_projection (B, N, H)
      -> [masked frames := masked_spec_embed] -> + positional_embedding -> norm -> dropout -> encoder (L layers)
      -> proj (B, N, unit_dim)                                              = soft units
      -> cosine(proj, label_embedding) / 0.1 (B, N, labels)                 = the soft head's logits (training)

One defect of Kahsolt/hubert-pitdyn is not copied: its positional convolution applied GELU twice; here (as in
bshall at every revision) it is applied once.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxtool.encoders.hubert_settings import CONV_KERNELS, CONV_STRIDES, HOP, RECEPTIVE_FIELD, SAMPLE_RATE, HubertArch

TEMPERATURE = 0.1  # cosine-similarity logits are divided by this (paper section 2.1)
PAD = (RECEPTIVE_FIELD - HOP) // 2  # 40 samples per side, so T samples give T // 320 frames


class FeatureExtractor(nn.Module):
    """7 bias-free convs with GELU (GroupNorm with one group per channel after conv0): (B, 1, T) -> (B, C, frames)."""

    def __init__(self, channels: int):
        super().__init__()
        for i, (k, s) in enumerate(zip(CONV_KERNELS, CONV_STRIDES)):
            self.add_module(f"conv{i}", nn.Conv1d(1 if i == 0 else channels, channels, k, s, bias=False))
        self.norm0 = nn.GroupNorm(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm0(self.conv0(x)))
        for i in range(1, len(CONV_KERNELS)):
            x = F.gelu(getattr(self, f"conv{i}")(x))
        return x


class FeatureProjection(nn.Module):
    """LayerNorm(C) -> Linear(C -> H) -> dropout: (B, N, C) -> (B, N, H)."""

    def __init__(self, channels: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.projection = nn.Linear(channels, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.projection(self.norm(x)))


class PositionalConvEmbedding(nn.Module):
    """Grouped conv over time with weight norm along the kernel axis (dim=2), last frame dropped, GELU once:
    (B, N, H) -> (B, N, H)."""

    def __init__(self, hidden: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.transpose(1, 2))
        return F.gelu(x[:, :, :-1]).transpose(1, 2)


class TransformerEncoder(nn.Module):
    """`layers` copies of a post-LN nn.TransformerEncoderLayer; `forward(x, output_layer=L)` runs the first L."""

    def __init__(self, layer: nn.TransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, x: torch.Tensor, output_layer: int | None = None) -> torch.Tensor:
        for layer in self.layers[:output_layer]:
            x = layer(x)
        return x


class HubertSoft(nn.Module):
    """HuBERT-Soft; `units(wav)` gives 50 Hz soft units, `forward(wav, mask)` the soft head's logits."""

    sample_rate = SAMPLE_RATE
    hop = HOP

    def __init__(self, config: HubertArch | None = None):
        super().__init__()
        c = config or HubertArch()
        self.config = c
        self.unit_dim = c.unit_dim
        self.feature_extractor = FeatureExtractor(c.conv_channels)
        self.feature_projection = FeatureProjection(c.conv_channels, c.hidden, c.dropout)
        self.positional_embedding = PositionalConvEmbedding(c.hidden, c.pos_conv_kernel, c.pos_conv_groups)
        self.norm = nn.LayerNorm(c.hidden)
        self.dropout = nn.Dropout(c.dropout)
        layer = nn.TransformerEncoderLayer(c.hidden, c.heads, c.ffn, dropout=c.dropout, activation="gelu",
                                           batch_first=True, norm_first=False)
        self.encoder = TransformerEncoder(layer, c.layers)
        self.proj = nn.Linear(c.hidden, c.unit_dim)
        self.masked_spec_embed = nn.Parameter(torch.empty(c.hidden).uniform_())
        self.label_embedding = nn.Embedding(c.labels, c.unit_dim)

    def encode(self, wav: torch.Tensor, mask: torch.Tensor | None = None, layer: int | None = None) -> torch.Tensor:
        """(B, T') already padded wav -> (B, N, hidden) output of the first `layer` layers (all when None).

        `mask` (B, N) bool marks frames replaced by the learned `masked_spec_embed` (training with masked spans).
        """
        x = self.feature_extractor(wav.unsqueeze(1))
        x = self.feature_projection(x.transpose(1, 2))
        if mask is not None:
            x = torch.where(mask[..., None], self.masked_spec_embed.to(x.dtype), x)
        x = x + self.positional_embedding(x)
        x = self.dropout(self.norm(x))
        return self.encoder(x, output_layer=layer)

    def logits(self, units: torch.Tensor) -> torch.Tensor:
        """(B, N, unit_dim) -> (B, N, labels): cosine similarity to every label embedding, / 0.1."""
        sim = F.cosine_similarity(units.unsqueeze(2), self.label_embedding.weight[None, None], dim=-1)
        return sim / TEMPERATURE

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) padded wav (40 samples each side, see `pad`) -> logits (B, N, labels)."""
        return self.logits(self.proj(self.encode(wav, mask)))

    @staticmethod
    def pad(wav: torch.Tensor) -> torch.Tensor:
        """bshall's padding: 40 zeros per side of the last axis, so T samples give T // 320 frames."""
        return F.pad(wav, (PAD, PAD))

    def units(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) 16 kHz waveform -> (B, T // 320, unit_dim) soft units (dropout off only in eval mode)."""
        return self.proj(self.encode(self.pad(wav)))

    def features(self, wav: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, T) -> (B, T // 320, hidden) output of transformer layer `layer` (1-based; HuBERT's k-means input)."""
        return self.encode(self.pad(wav), layer=layer)


def compute_mask(rng: np.random.Generator, batch: int, frames: int, prob: float, length: int,
                 min_masks: int) -> np.ndarray:
    """(batch, frames) bool: bshall's `_compute_mask` with a numpy rng (so a step's mask follows its seed): every
    row gets max(int(prob * frames / length + U(0, 1)), min_masks) spans of `length` frames (fewer when they do not
    fit), starts drawn without replacement; spans may overlap."""
    spans = max(int(prob * frames / length + rng.random()), min_masks)
    if spans * length > frames:
        spans = frames // length
    mask = np.zeros((batch, frames), dtype=bool)
    if spans == 0:
        return mask
    for row in range(batch):
        starts = rng.choice(frames - length + 1, size=spans, replace=False)
        mask[row, (starts[:, None] + np.arange(length)[None]).ravel()] = True
    return mask


def frames_for(samples: int) -> int:
    """Unit frames HubertSoft.units gives for `samples` samples."""
    return samples // HOP


@torch.inference_mode()
def content_units(model: HubertSoft, audio: np.ndarray, piece_seconds: float = 30.0,
                  context_seconds: float = 1.0) -> np.ndarray:
    """(T,) float 16 kHz mono -> (T // 320, unit_dim) float32 soft units, long audio in pieces (flat memory).

    Each piece of `piece_seconds` is encoded with `context_seconds` of neighbouring audio on both sides (the
    transformer sees the whole input, so a bare cut would change the units near it); the context frames are then
    dropped. Audio up to one piece long is encoded in one go, exactly as `model.units`.
    """
    device = next(model.parameters()).device
    wav = torch.as_tensor(np.ascontiguousarray(audio, dtype=np.float32), device=device)
    frames = frames_for(wav.numel())
    piece = max(1, int(piece_seconds * SAMPLE_RATE) // HOP)
    ctx = max(0, int(context_seconds * SAMPLE_RATE) // HOP)
    if frames <= piece + 2 * ctx:
        return model.units(wav[None])[0, :frames].float().cpu().numpy()
    out = np.empty((frames, model.unit_dim), dtype=np.float32)
    for start in range(0, frames, piece):
        stop = min(frames, start + piece)
        lo, hi = max(0, start - ctx), min(frames, stop + ctx)
        units = model.units(wav[None, lo * HOP: hi * HOP])[0]
        out[start:stop] = units[start - lo: stop - lo].float().cpu().numpy()
    return out


def load_content_encoder(path, device: str | torch.device = "cpu") -> HubertSoft:
    """A HuBERT-Soft in eval mode from a published checkpoint (v0.1 bare state dict, v0.2 {'hubert': ...},
    `module.` prefixes, weight-norm g/v keys) or a voxtool model.pt / run folder of `voxtool train hubert-soft`."""
    from voxtool.encoders.hubert_checkpoint import load_hubert

    return load_hubert(path, device=device)
