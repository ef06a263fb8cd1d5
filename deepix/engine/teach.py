"""Knowledge distillation for any task's Step: a trained teacher sees each training batch after the step has
prepared it (augmented, degraded), and the loss mixes the step's own with one to the teacher's outputs
(Hinton et al. 2015 for classes: the task gives the soft loss). `alone` trains the same student without the
teacher, for the report's comparison."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .fit import autocast


class Taught:
    """`step`, whose training loss is (1 - weight) x its own + weight x soft_loss(output, the teacher's output).
    Validation and testing see the step alone. Everything else is the step's."""

    def __init__(self, step, teacher: torch.nn.Module, weight: float, soft_loss, bf16: bool):
        self.inner, self.teacher, self.weight, self.soft_loss, self.bf16 = step, teacher, weight, soft_loss, bf16
        self.soft = None  # the teacher's outputs for the training batch just prepared (the engine counts images
                          # by the targets, so they travel beside them)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def prepare(self, x, y, train: bool, g=None):
        x, y = self.inner.prepare(x, y, train, g)
        self.soft = None
        if train:
            with torch.no_grad(), autocast(self.bf16, x.device):
                self.soft = self.teacher(x).float()
        return x, y

    def mix(self, own, out):
        soft, self.soft = self.soft, None
        if soft is None or out is None or soft.shape != out.shape:
            return own
        return (1 - self.weight) * own + self.weight * self.soft_loss(out.float(), soft)

    def loss(self, out, y):
        """The "forward" mode's loss."""
        return self.mix(self.inner.loss(out, y), out)

    def step(self, model, x, y):
        """The "model" mode's (loss, output)."""
        own, out = self.inner.step(model, x, y)
        return self.mix(own, out), out


def frozen(net: torch.nn.Module, dev, channels_last: bool) -> torch.nn.Module:
    """A teacher network on the device, in eval mode, its weights fixed."""
    net = net.to(dev).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def alone(cfg, run: Path, dataset=None, why: str = "without the teacher", **unset) -> dict:
    """The same training without the teacher (and without what `unset` clears): same data, model, epochs and seed,
    in RUN/<task>/baseline. Returns that run's result; the report compares."""
    from ..tasks import get
    from .run import train
    bcfg = dataclasses.replace(cfg, teacher="", baseline=False, project=str(run), name="baseline", quiet=True,
                               time_limit=0.0, **unset)
    if not cfg.quiet:
        print(f"baseline: the same training {why}, for the report")
    return train(get(cfg.task), bcfg, dataset=dataset)
