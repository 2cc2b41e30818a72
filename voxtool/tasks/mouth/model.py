"""The R^3-MOE estimator: log-mel (B, 80, T) -> mouth-opening curve (B, T).

    Conv1d(80->C, k3, no bias) -> GroupNorm(4, C) -> LeakyReLU -> Dropout(conv_dropout) -> Conv1d(C->C, k3, no bias)
    -> LSTM(C -> H, L layers, bidirectional) -> Linear(2H -> H) -> ReLU -> Linear(H -> 1) -> sigmoid

With C=256, H=512, L=2 this is the original's BiLSTMCurveEstimator (10.24 M parameters); module names are the
original's (`input_stack`, `rnn`, `output_proj`, `k_filter`), so its bare state dicts load key for key
(`original.py`). voxtool model files written before the rename hold `lstm.*` keys; a load hook renames them, so
old model files and training checkpoints still load. The sigmoid output is the curve normalised to [0, 1] over
(vmin, vmax); `infer` returns it in target units.

Per-singer gain (`model.speaker_gain`, the original's HEAD `k_filter`): one learned scalar e_s per training
singer, k = clamp(0.5 + 1.5 sigmoid(e_s), 0.3, 2.5), applied to the normalised output as (y - p0) k + p0 with
p0 = -vmin / (vmax - vmin), the normalised zero. The embedding starts at 0 (k = 1.25). Training passes the crops'
singer ids so that a singer's jaw scale is absorbed by its gain instead of becoming label noise; inference passes
none (the generic curve) unless `--speaker` names a training singer.

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
        self.rnn = nn.LSTM(c, cfg.hidden_dims, num_layers=cfg.n_layers, batch_first=True, bidirectional=True)
        self.output_proj = nn.Sequential(
            nn.Linear(2 * cfg.hidden_dims, cfg.hidden_dims),
            nn.ReLU(),
            nn.Linear(cfg.hidden_dims, 1),
        )
        self.register_buffer("value_range", torch.tensor([float(vmin), float(vmax)]), persistent=False)
        self.k_filter: nn.Embedding | None = None
        if cfg.speaker_gain and cfg.num_speakers > 0:
            self.k_filter = nn.Embedding(cfg.num_speakers, 1)
            nn.init.zeros_(self.k_filter.weight)
        self.register_load_state_dict_pre_hook(_rename_lstm_keys)

    # -- normalisation of the target ------------------------------------------------------------------
    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range[0], self.value_range[1]
        return ((y - lo) / (hi - lo)).clamp(0.0, 1.0)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.value_range[0], self.value_range[1]
        return y * (hi - lo) + lo

    # -- the network -----------------------------------------------------------------------------------
    def front(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> first conv output (B, C, T), before GroupNorm; in fp32 under an autocast (log-mels reach
        -12, where bf16 steps by 0.06, and this layer is a small part of the time)."""
        with torch.autocast(mel.device.type, enabled=False):
            return self.input_stack[0](mel.float())

    def group_stats(self, h: torch.Tensor) -> torch.Tensor:
        """Sufficient statistics of GroupNorm for (B, C, T): (B, G, 3) = [count, sum, sum of squares] in float64."""
        b, c, t = h.shape
        g = self.cfg.n_groups
        hg = h.reshape(b, g, (c // g) * t).double()
        count = torch.full((b, g), float(hg.shape[-1]), dtype=torch.float64, device=h.device)
        return torch.stack([count, hg.sum(-1), (hg * hg).sum(-1)], dim=-1)

    @staticmethod
    def group_moments(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, G, 3) statistics from `group_stats` -> (mean (B, G), variance (B, G)) in float64."""
        mean = stats[..., 1] / stats[..., 0]
        return mean, (stats[..., 2] / stats[..., 0] - mean * mean).clamp_min(0.0)

    def normalize_groups(self, h: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """GroupNorm of the first conv output (B, C, T) with given group moments (B, G), in float32 (also under a
        bf16 autocast: the whole file's statistics are what chunks share)."""
        gn: nn.GroupNorm = self.input_stack[1]
        b, c, t = h.shape
        hg = h.float().reshape(b, self.cfg.n_groups, -1)
        hg = (hg - mean[..., None].float()) / torch.sqrt(var[..., None].float() + gn.eps)
        return hg.reshape(b, c, t) * gn.weight[None, :, None] + gn.bias[None, :, None]

    def back(self, h: torch.Tensor) -> torch.Tensor:
        """Normalised first conv output (B, C, T) -> (B, T) normalised curve: the rest of the network."""
        for layer in self.input_stack[2:]:
            h = layer(h)
        h, _ = self.rnn(h.transpose(1, 2))
        with torch.autocast(h.device.type, enabled=False):  # the output in fp32: bf16 steps by 0.004 near 1
            return torch.sigmoid(self.output_proj(h.float())).squeeze(-1)

    def forward(
        self, mel: torch.Tensor, stats: torch.Tensor | None = None, speaker: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, F, T) log-mel -> (B, T) normalised curve in [0, 1] (beyond it with a singer's gain).

        `stats` (B, G, 3) from `group_stats` replaces the GroupNorm statistics of this input (chunked inference);
        `speaker` (B,) long applies those training singers' gains (training, `--speaker`).
        """
        h = self.front(mel)
        h = self.input_stack[1](h) if stats is None else self.normalize_groups(h, *self.group_moments(stats))
        y = self.back(h)
        return y if speaker is None else self.apply_gain(y, speaker)

    def infer(
        self, mel: torch.Tensor, stats: torch.Tensor | None = None, speaker: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, F, T) -> (B, T) curve in target units (with singer `speaker`'s gain when given)."""
        return self.denormalize(self(mel, stats, speaker))

    # -- per-singer gain ------------------------------------------------------------------------------
    @property
    def p0(self) -> torch.Tensor:
        """The normalised value of a target of 0 (a closed mouth), the gain's fixed point."""
        lo, hi = self.value_range[0], self.value_range[1]
        return -lo / (hi - lo)

    def speaker_gain(self, speaker: torch.Tensor) -> torch.Tensor:
        """(B,) singer ids -> (B,) gains k = clamp(0.5 + 1.5 sigmoid(e), 0.3, 2.5)."""
        if self.k_filter is None:
            raise ValueError("this model has no per-singer gains (model.speaker_gain is off)")
        e = self.k_filter(speaker.long()).squeeze(-1)
        return torch.clamp(0.5 + 1.5 * torch.sigmoid(e), 0.3, 2.5)

    def apply_gain(self, y: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Normalised curves (B, T) and singer ids (B,) -> (y - p0) k + p0, (B, T)."""
        k = self.speaker_gain(speaker)[:, None].to(y.dtype)
        return (y - self.p0) * k + self.p0


def _rename_lstm_keys(module, state_dict, prefix, *args) -> None:
    """Load hook: `lstm.*` (voxtool model files and checkpoints before the rename) -> `rnn.*`."""
    old = prefix + "lstm."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "rnn." + key[len(old) :]] = state_dict.pop(key)


def migrate_state_dict(state: dict) -> dict:
    """A state dict with `lstm.*` keys (voxtool before the rename) -> the `rnn.*` names, for strict key checks
    that run before `load_state_dict` (voxtool.training.modelfile.load_weights)."""
    return {("rnn." + k[5:] if k.startswith("lstm.") else k): v for k, v in state.items()}


def build_model(cfg: ModelSection, vmin: float, vmax: float) -> BiLSTMCurveEstimator:
    return BiLSTMCurveEstimator(cfg, vmin, vmax)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
