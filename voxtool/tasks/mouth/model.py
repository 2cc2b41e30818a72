"""The R^3-MOE estimator: log-mel (B, 80, T) -> mouth-opening curve (B, T).

    Conv1d(80->C, k3, no bias) -> GroupNorm(4, C) -> LeakyReLU -> Dropout(conv_dropout) -> Conv1d(C->C, k3, no bias)
    -> LSTM(C -> H, L layers, bidirectional) -> Linear(2H -> H) -> ReLU -> Linear(H -> 1) -> sigmoid

With C=256, H=512, L=2 this is the original's BiLSTMCurveEstimator (10.24 M parameters); module names follow it
(`input_stack`, `lstm`, `output_proj`) so its state dicts load. The sigmoid output is the curve normalised to
[0, 1] over (vmin, vmax); `infer` returns it in target units.

Mels are (B, n_mels, T), voxtool's layout, as the convolutions take them (the original fed (B, T, n_mels) and
transposed inside); `forward` transposes for the LSTM only. Prepared `.npz` items stay (T, n_mels) on disk.

GroupNorm normalises over channels *and the whole time axis*, so a long file's output depends on statistics of
all its frames. For chunked inference the statistics can therefore be computed in a first pass over the file and
passed in (`group_stats` / `forward(..., stats=...)`), which makes the convolutional front exactly equal to
whole-file processing; only the LSTM's limited memory remains approximate across chunk seams.
"""

from __future__ import annotations

import torch
from torch import nn

from voxtool.tasks.mouth.config import ModelSection


class BiLSTMCurveEstimator(nn.Module):
    def __init__(self, cfg: ModelSection, vmin: float = 0.0, vmax: float = 1.0):
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_dims
        self.input_stack = nn.Sequential(
            nn.Conv1d(cfg.n_mels, c, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(cfg.n_groups, c),
            nn.LeakyReLU(),
            nn.Dropout(cfg.conv_dropout),
            nn.Conv1d(c, c, kernel_size=3, padding=1, bias=False),
        )
        self.lstm = nn.LSTM(c, cfg.hidden_dims, num_layers=cfg.n_layers, batch_first=True, bidirectional=True)
        self.output_proj = nn.Sequential(
            nn.Linear(2 * cfg.hidden_dims, cfg.hidden_dims),
            nn.ReLU(),
            nn.Linear(cfg.hidden_dims, 1),
        )
        self.register_buffer("value_range", torch.tensor([float(vmin), float(vmax)]), persistent=False)

    # -- normalisation of the target ------------------------------------------------------------------
    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range[0], self.value_range[1]
        return ((y - lo) / (hi - lo)).clamp(0.0, 1.0)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range[0], self.value_range[1]
        return y * (hi - lo) + lo

    # -- the network -----------------------------------------------------------------------------------
    def front(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> first conv output (B, C, T), before GroupNorm."""
        return self.input_stack[0](mel)

    def group_stats(self, h: torch.Tensor) -> torch.Tensor:
        """Sufficient statistics of GroupNorm for (B, C, T): (B, G, 3) = [count, sum, sum of squares] in float64."""
        b, c, t = h.shape
        g = self.cfg.n_groups
        hg = h.reshape(b, g, (c // g) * t).double()
        count = torch.full((b, g), float(hg.shape[-1]), dtype=torch.float64, device=h.device)
        return torch.stack([count, hg.sum(-1), (hg * hg).sum(-1)], dim=-1)

    def _group_norm(self, h: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        gn: nn.GroupNorm = self.input_stack[1]
        b, c, t = h.shape
        g = self.cfg.n_groups
        mean = stats[..., 1] / stats[..., 0]
        var = (stats[..., 2] / stats[..., 0] - mean * mean).clamp_min(0.0)
        hg = h.reshape(b, g, (c // g) * t)
        hg = (hg - mean[..., None].to(h.dtype)) / torch.sqrt(var[..., None].to(h.dtype) + gn.eps)
        return hg.reshape(b, c, t) * gn.weight[None, :, None] + gn.bias[None, :, None]

    def forward(self, mel: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, T) log-mel -> (B, T) normalised curve in [0, 1].

        `stats` (B, G, 3) from `group_stats` replaces the GroupNorm statistics of this input (chunked inference).
        """
        h = self.front(mel)
        h = self.input_stack[1](h) if stats is None else self._group_norm(h, stats)
        for layer in self.input_stack[2:]:
            h = layer(h)
        h, _ = self.lstm(h.transpose(1, 2))
        return torch.sigmoid(self.output_proj(h)).squeeze(-1)

    def infer(self, mel: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, T) -> (B, T) curve in target units."""
        return self.denormalize(self(mel, stats))


def build_model(cfg: ModelSection, vmin: float, vmax: float) -> BiLSTMCurveEstimator:
    return BiLSTMCurveEstimator(cfg, vmin, vmax)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
