"""Optimisers, parameter groups and learning-rate schedules (multipliers of each group's base lr, LambdaLR)."""

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


def named_parameters(modules: dict) -> dict:
    """'<module>.<parameter>' -> parameter over several modules (the names `lr_scale` and `freeze` match)."""
    return {f"{k}.{n}": p for k, m in modules.items() for n, p in m.named_parameters()}


def longest_prefix(name: str, prefixes) -> str | None:
    """The longest of `prefixes` that names `name` or one of its parents ('enc' matches 'enc.w', not 'encoder.w')."""
    hits = [p for p in prefixes if name == p or name.startswith(p.rstrip(".") + ".")]
    return max(hits, key=len) if hits else None


def param_groups(named: dict, lr: float, lr_scale: dict[str, float]) -> list[dict]:
    """Split trainable parameters into groups by their `lr_scale` prefix (one group when there is none)."""
    from voxtool.errors import BadInput

    for prefix in lr_scale:
        if not any(longest_prefix(n, [prefix]) for n in named):
            raise BadInput(None, f"lr_scale '{prefix}': no parameter has that name or prefix")
    groups: dict[str | None, list] = {}
    for name, p in named.items():
        if p.requires_grad:
            groups.setdefault(longest_prefix(name, lr_scale), []).append(p)
    return [{"params": ps, "lr": lr * (lr_scale[k] if k is not None else 1.0)} for k, ps in groups.items()]


def optimizer_for(modules: dict, cfg: TrainConfig, name: str = "model"):
    """Optimiser `name` over `modules` ({module name: nn.Module}), with `[train.optimizers.NAME]` applied."""
    over = cfg.optimizers.get(name)
    own = cfg.for_optimizer(name)
    return build_optimizer(param_groups(named_parameters(modules), own.lr, over.lr_scale if over else {}), own)


def build_optimizer(params, cfg: TrainConfig):
    """`params`: parameters or parameter-group dicts (frozen parameters are left out)."""
    import torch

    params = list(params)
    if params and isinstance(params[0], dict):
        params = [g for g in params if g["params"]]
    else:
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
