"""Optimizers and learning-rate schedules by name."""
from __future__ import annotations

import math

import torch

from .distributed import average_grads


def make_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    # decay weights, not biases or normalisation scales (they only shift and scale)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)


def backward_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float = 0.0) -> None:
    """One optimizer step on `loss`: gradients cleared, back-propagated, norm-clipped to `clip` (0: not), applied."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = list(params)
    average_grads(params)
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """The multiplier of the base lr at `step` of `total` optimizer steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return 0.1 ** min(2, int(t * 3))
    if schedule == "onecycle":
        # triangular: up for the first quarter (or the warm-up), then straight down to zero
        if not warmup:
            peak = 0.25
            if t < peak:
                return 0.1 + 0.9 * t / peak
            t = (t - peak) / (1 - peak)
        return max(0.0, 1 - t)
    return 1.0


def make_scheduler(cfg, optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    # cfg.epochs is read at every step: a time limit may shorten the plan after the first epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg.schedule, s, cfg.epochs * steps_per_epoch, warmup))
