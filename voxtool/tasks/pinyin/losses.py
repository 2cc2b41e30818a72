"""CTC loss, the log's blank loss, SpecAugment masks and NovoGrad (all tensors on the model's device)."""

from __future__ import annotations

import math

import numpy as np
import torch

from voxtool.tasks.pinyin.config import AugmentSection, BlankLossSection


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor,
             blank: int = 0) -> torch.Tensor:
    """log_probs (B, T, C), out_lens (B,), targets (B, L), target_lens (B,) -> mean CTC loss per target token.

    zero_infinity: an utterance that cannot be aligned contributes nothing instead of inf."""
    return torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, out_lens, target_lens, blank=blank,
                                        reduction="mean", zero_infinity=True)


def blank_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, cfg: BlankLossSection, blank: int = 0
               ) -> torch.Tensor:
    """The log's blank loss (reconstructed; see docs/pinyin.md).

    Per utterance n with T_n valid frames and blank scores s_t (probability or log-probability): sort
    descending, drop the K = ceil(drop_fraction * T_n) largest (true pauses are allowed to stay blank), and
    average the hinge max(0, s_t - margin) over the other frames. The batch loss is the mean over utterances.
    log_probs (B, T, C), out_lens (B,) -> scalar."""
    scores = log_probs[..., blank]
    if cfg.score == "prob":
        scores = scores.exp()
    B, T = scores.shape
    valid = torch.arange(T, device=scores.device)[None, :] < out_lens[:, None]
    sorted_scores = torch.where(valid, scores, torch.full_like(scores, -math.inf)).sort(dim=1, descending=True)[0]
    drop = torch.ceil(out_lens.float() * cfg.drop_fraction).long()
    rank = torch.arange(T, device=scores.device)[None, :]
    keep = (rank >= drop[:, None]) & (rank < out_lens[:, None])
    hinge = torch.where(keep, torch.relu(sorted_scores - cfg.margin), torch.zeros_like(sorted_scores))
    per_utt = hinge.sum(1) / keep.sum(1).clamp(min=1)
    return per_utt.mean()


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, cfg: AugmentSection, rng: np.random.Generator
                 ) -> torch.Tensor:
    """Frequency and time masks on raw log-mel (B, F, T); masked cells get the utterance's per-bin mean, which
    the model's per-feature normalisation maps to about zero (NeMo masks normalised features with zeros)."""
    out = feats.clone()
    B, F, T = feats.shape
    for b in range(B):
        n = int(lengths[b])
        if n <= 0:
            continue
        mean = feats[b, :, :n].mean(dim=1)
        for _ in range(cfg.freq_masks):
            w = int(rng.integers(0, cfg.freq_width + 1))
            if w and w < F:
                f0 = int(rng.integers(0, F - w + 1))
                out[b, f0:f0 + w, :n] = mean[f0:f0 + w, None]
        max_w = int(cfg.time_width * n)
        for _ in range(cfg.time_masks):
            w = int(rng.integers(0, max_w + 1)) if max_w > 0 else 0
            if w:
                t0 = int(rng.integers(0, n - w + 1))
                out[b, :, t0:t0 + w] = mean[:, None]
    return out


class NovoGrad(torch.optim.Optimizer):
    """NovoGrad (Ginsburg et al., arXiv 1905.11286; NeMo's QuartzNet optimiser): Adam-like, but the second
    moment is one scalar per layer (the running mean of the layer's squared gradient norm), and weight decay is
    added to the normalised gradient. NeMo defaults: lr 0.01, betas (0.8, 0.5), weight_decay 0.001."""

    def __init__(self, params, lr: float = 0.01, betas: tuple[float, float] = (0.8, 0.5), eps: float = 1e-8,
                 weight_decay: float = 0.0, grad_averaging: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      grad_averaging=grad_averaging))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                norm = g.pow(2).sum()
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = norm.clone()
                else:
                    state["exp_avg_sq"].mul_(b2).add_(norm, alpha=1 - b2)
                state["step"] += 1
                d = g / (state["exp_avg_sq"].sqrt() + group["eps"])
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                if group["grad_averaging"]:
                    d = d * (1 - b1)
                state["exp_avg"].mul_(b1).add_(d)
                p.add_(state["exp_avg"], alpha=-group["lr"])
        return loss
