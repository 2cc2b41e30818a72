"""DiffVC's decoder: a VP-SDE whose prior mean is the encoder's average voice, and its reverse samplers.

Forward SDE (Grad-TTS style), X̄ the prior mean (the "average voice" mel), t in [0, 1]:
    dX_t = 1/2 beta_t (X̄ - X_t) dt + sqrt(beta_t) dW_t,   beta_t = beta_min + (beta_max - beta_min) t.
With gamma(s, t) = exp(-1/2 int_s^t beta_u du), X_t | X_0 ~ N(gamma(0,t) X_0 + (1 - gamma(0,t)) X̄,
(1 - gamma(0,t)^2) I). The score network s(X_t, t) estimates grad log p(X_t); it is trained with
sum((s sqrt(1 - gamma^2) + z)^2) / (sum(mask) n_feats), x_t = mean_t + sqrt(1 - gamma^2) z, t ~ U(1e-5, 1 - 1e-5)
(optionally weighted per item by `loss_weights`, see DecoderSection.loss_weight_cap; the score's meaning is the same).

Reverse samplers (`reverse_sde`), N steps of h = 1/N from t = 1 down to h, each x <- (x - dx) * mask:
- "em", Euler-Maruyama: dx = (X̄ - x) beta h / 2 - s beta h + sqrt(beta h) eps;
- "pf", probability-flow ODE (Euler): dx = (X̄ - x - s) beta h / 2, no noise;
- "ml", the fast maximum-likelihood SDE solver of Popov et al. 2022 (Theorem 1 with the data-dependent
  E Tr Var(X_0 | X_t) term dropped): dx = (X̄ - x)(beta h / 2 + omega) - s (1 + kappa) beta h + sigma eps with
      kappa = gamma(0,t-h)(1 - gamma(t-h,t)^2) / (gamma(0,t) beta_t h) - 1,
      omega = nu(t-h,t) / gamma(0,t) + mu(t-h,t) - (1 + beta_t h / 2),
      sigma = sqrt((1 - gamma(0,t-h)^2)(1 - gamma(t-h,t)^2) / (1 - gamma(0,t)^2)),
      mu(s,t) = gamma(s,t)(1 - gamma(0,s)^2) / (1 - gamma(0,t)^2), nu(s,t) = gamma(0,s)(1 - gamma(s,t)^2) / (1 - gamma(0,t)^2).
  This is the exact posterior step q(x_{t-h} | x_t, x_0) with x_0 replaced by its score-based (Tweedie) estimate,
  so it is exact for any N when the data are a point; sigma is 0 on the last step.
The step coefficients are computed in float64 Python floats; x stays in its own dtype (float32 in DiffVC) while the
score network may run under bf16/fp16 autocast (its output is cast back before the update).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from voxtool.tasks.diffvc.model_config import DecoderSection
from voxtool.tasks.diffvc.unet import GradLogPEstimator

Sampler = Literal["ml", "em", "pf"]
SAMPLERS: tuple[str, ...] = ("ml", "em", "pf")
T_OFFSET = 1e-5  # training times are drawn from [T_OFFSET, 1 - T_OFFSET], as the original

ScoreFn = Callable[[Tensor, float], Tensor]  # (x_t [B, ...], t) -> score estimate, x_t's shape


@dataclass(frozen=True)
class VPSDE:
    """The noise schedule: beta_t linear from beta_min (t = 0) to beta_max (t = 1); scalar helpers in float64."""

    beta_min: float = 0.05
    beta_max: float = 20.0

    def beta(self, t: float) -> float:
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def gamma(self, s: float, t: float, p: float = 1.0) -> float:
        """gamma(s, t)^p with gamma(s, t) = exp(-1/2 int_s^t beta)."""
        integral = (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * (t + s)) * (t - s)
        return math.exp(-0.5 * p * integral)

    def gamma_tensor(self, t: Tensor) -> Tensor:
        """gamma(0, t) for a tensor of times t [B] -> [B, 1, 1] (broadcasts over [B, n_feats, F])."""
        integral = (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * t) * t
        return torch.exp(-0.5 * integral)[:, None, None]

    def mu(self, s: float, t: float) -> float:
        return self.gamma(s, t) * (1.0 - self.gamma(0, s, 2.0)) / (1.0 - self.gamma(0, t, 2.0))

    def nu(self, s: float, t: float) -> float:
        return self.gamma(0, s) * (1.0 - self.gamma(s, t, 2.0)) / (1.0 - self.gamma(0, t, 2.0))

    def posterior_std(self, s: float, t: float) -> float:
        """Standard deviation of X_s | X_t, X_0 (s < t); 0 at s = 0."""
        var = (1.0 - self.gamma(0, s, 2.0)) * (1.0 - self.gamma(s, t, 2.0)) / (1.0 - self.gamma(0, t, 2.0))
        return math.sqrt(max(var, 0.0))

    def step_coefficients(self, sampler: str, t: float, h: float) -> tuple[float, float, float]:
        """(kappa, omega, sigma) of one reverse step from t to t - h for "ml" and "em" (see the module docstring);
        "em" is (0, 0, sqrt(beta_t h))."""
        beta_h = self.beta(t) * h
        if sampler == "em":
            return 0.0, 0.0, math.sqrt(beta_h)
        if sampler != "ml":
            raise ValueError(f"no step coefficients for sampler {sampler!r}")
        s = max(t - h, 0.0)
        kappa = self.gamma(0, s) * (1.0 - self.gamma(s, t, 2.0)) / (self.gamma(0, t) * beta_h) - 1.0
        omega = self.nu(s, t) / self.gamma(0, t) + self.mu(s, t) - (1.0 + 0.5 * beta_h)
        return kappa, omega, self.posterior_std(s, t)


def reverse_sde(score_fn: ScoreFn, z: Tensor, mask: Tensor, mean: Tensor, n_steps: int, sampler: str = "ml",
                sde: VPSDE = VPSDE(), generator: torch.Generator | None = None) -> Tensor:
    """Integrate the reverse SDE/ODE from x_1 = z * mask down to t = 0 in `n_steps` equal steps (batched).

    z, mean: [B, ...] (DiffVC: [B, n_feats, F]); mask broadcasts to them (DiffVC: [B, 1, F]); score_fn(x_t, t)
    returns the score at x_t (any float dtype, cast to x's). `generator` draws the step noise (on z's device).
    Returns x_0 in z's dtype.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, not {n_steps}")
    h = 1.0 / n_steps
    mask = mask.to(z.dtype)
    x = z * mask
    for i in range(n_steps):
        t = (n_steps - i) / n_steps  # exact grid: the last step ends at t - h = 0, not at a rounding residue
        beta_h = sde.beta(t) * h
        score = score_fn(x, t).to(x.dtype)
        if sampler == "pf":
            dx = 0.5 * (mean - x - score) * beta_h
        else:
            kappa, omega, sigma = sde.step_coefficients(sampler, t, h)
            dx = (mean - x) * (0.5 * beta_h + omega) - score * ((1.0 + kappa) * beta_h)
            if sigma > 0:
                dx = dx + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = (x - dx) * mask
    return x


def loss_weights(gamma2: Tensor, cap: float) -> Tensor:
    """w = clip((1 - gamma^2) / gamma^2, 1, cap) for gamma^2 = gamma(0, t)^2 (any shape): the inverse
    signal-to-noise ratio of x_t, so w times the noise-prediction error is the clean-mel (x0) error where 1 < w < cap."""
    return ((1.0 - gamma2) / gamma2.clamp_min(1e-12)).clamp(1.0, cap)


def pad_frames(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad the last (time) axis up to a multiple of `multiple` (the U-Net halves time per level)."""
    extra = -x.shape[-1] % multiple
    return F.pad(x, (0, extra)) if extra else x


class Diffusion(nn.Module):
    """The decoder: `estimator` (GradLogPEstimator) plus the VP-SDE of `cfg` (no parameters of its own)."""

    def __init__(self, n_feats: int, cfg: DecoderSection):
        super().__init__()
        self.n_feats = n_feats
        self.cfg = cfg
        self.sde = VPSDE(cfg.beta_min, cfg.beta_max)
        self.estimator = GradLogPEstimator(cfg)

    def diffused_mean(self, x0: Tensor, mask: Tensor, mean: Tensor, t: float | Tensor) -> Tensor:
        """E[X_t | X_0] = gamma(0,t) x0 + (1 - gamma(0,t)) mean, masked; t a float or a [B] tensor."""
        g = self.sde.gamma(0, float(t)) if isinstance(t, (int, float)) else self.sde.gamma_tensor(t).to(x0.dtype)
        return (x0 * g + mean * (1.0 - g)) * mask

    def forward_diffusion(self, x0: Tensor, mask: Tensor, mean: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Sample x_t ~ q(x_t | x0) for times t [B]: returns (x_t, z) with z the standard-normal noise, both masked."""
        z = torch.randn_like(x0) * mask
        std = torch.sqrt(1.0 - self.sde.gamma_tensor(t) ** 2).to(x0.dtype)
        return self.diffused_mean(x0, mask, mean, t) + z * std, z

    def loss_t(self, x0: Tensor, mask: Tensor, mean: Tensor, x_ref: Tensor, ref_mask: Tensor, mean_ref: Tensor,
               c: Tensor, t: Tensor) -> Tensor:
        """The training loss at times t [B] (float32 scalar): noise-prediction score matching (prediction "score",
        optionally weighted by `loss_weights`) or the MSE of the v estimate (prediction "v").

        x0, mean [B, n_feats, F] (F a multiple of `cfg.time_multiple`), mask [B, 1, F]; x_ref, mean_ref
        [B, n_feats, F_ref], ref_mask [B, 1, F_ref]; c [B, spk_embed_dim]."""
        xt, z = self.forward_diffusion(x0, mask, mean, t)
        ref_t = self.diffused_mean(x_ref, ref_mask, mean_ref, t).unsqueeze(1)
        out = self.estimator(xt, mask, mean, ref_t, ref_mask, c, t).float()
        gamma = self.sde.gamma_tensor(t.float())
        sigma = torch.sqrt(1.0 - gamma**2)
        if self.cfg.prediction == "v":
            velocity = gamma * z.float() - sigma * (x0.float() - mean.float())
            error = (out - velocity) ** 2 * mask.float()
        else:
            error = (out * sigma + z.float()) ** 2  # the score times sigma estimates -z
            if self.cfg.loss_weight_cap > 1.0:  # see DecoderSection.loss_weight_cap; 1 keeps the published loss
                error = error * loss_weights(gamma**2, self.cfg.loss_weight_cap)
        return error.sum() / (mask.float().sum() * self.n_feats)

    def score(self, xt: Tensor, mask: Tensor, mean: Tensor, ref_t: Tensor, ref_mask: Tensor, c: Tensor,
              t: Tensor) -> Tensor:
        """The score at x_t [B, n_feats, F] for times t [B] (float32, masked): the estimator's output itself
        ("score") or, for prediction "v", -eps/sigma with eps = sigma (x_t - mean) + gamma v (sigma^2 + gamma^2 = 1)."""
        out = self.estimator(xt, mask, mean, ref_t, ref_mask, c, t).float()
        if self.cfg.prediction == "score":
            return out
        gamma = self.sde.gamma_tensor(t.float())
        sigma = torch.sqrt(1.0 - gamma**2)
        eps = sigma * (xt.float() - mean.float()) + gamma * out
        return -eps / sigma * mask

    def compute_loss(self, x0: Tensor, mask: Tensor, mean: Tensor, x_ref: Tensor, ref_mask: Tensor,
                     mean_ref: Tensor, c: Tensor) -> Tensor:
        """`loss_t` at t ~ U(1e-5, 1 - 1e-5), one t per item; pads time to the U-Net's multiple itself."""
        multiple = self.cfg.time_multiple
        x0, mask, mean = (pad_frames(v, multiple) for v in (x0, mask, mean))
        t = torch.rand(x0.shape[0], device=x0.device).clamp(T_OFFSET, 1.0 - T_OFFSET)
        return self.loss_t(x0, mask, mean, x_ref, ref_mask, mean_ref, c, t)

    @torch.no_grad()
    def sample(self, z: Tensor, mask: Tensor, mean: Tensor, x_ref: Tensor, ref_mask: Tensor, mean_ref: Tensor,
               c: Tensor, n_steps: int, sampler: str = "ml", generator: torch.Generator | None = None) -> Tensor:
        """Reverse diffusion from z [B, n_feats, F] (F a multiple of `cfg.time_multiple`; mask [B, 1, F]) with the
        reference x_ref / mean_ref [B, n_feats, F_ref] (ref_mask [B, 1, F_ref]) and d-vectors c [B, E]."""

        def score(x: Tensor, t: float) -> Tensor:
            ref_t = self.diffused_mean(x_ref, ref_mask, mean_ref, t).unsqueeze(1)
            time = torch.full((x.shape[0],), t, device=x.device, dtype=torch.float32)
            return self.score(x, mask, mean, ref_t, ref_mask, c, time)

        return reverse_sde(score, z, mask, mean, n_steps, sampler, self.sde, generator)
