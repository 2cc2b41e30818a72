"""Learning-rate schedules as multipliers of the base lr (LambdaLR)."""

from __future__ import annotations

import math

from voxtool.training.config import TrainConfig


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of cfg.lr at optimiser step `step` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":  # RMVPE: StepLR(decay_steps, gamma=decay_rate)
        return cfg.decay_rate ** (step // cfg.decay_steps)
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer, cfg: TrainConfig):
    import torch

    if cfg.optimizer == "schedulefree":  # schedule-free has its own warmup and needs no schedule
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step))


def build_optimizer(params, cfg: TrainConfig):
    import torch

    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    import schedulefree

    return schedulefree.AdamWScheduleFree(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
    )
