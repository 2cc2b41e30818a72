"""Exponential moving average of a model (Mean Teacher, EMA weights for deployment)."""

from __future__ import annotations

import copy

import torch


class EMA(torch.nn.Module):
    """`shadow = decay * shadow + (1 - decay) * model` on parameters; buffers are copied."""

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)

    def forward(self, *args, **kwargs):
        return self.shadow(*args, **kwargs)
