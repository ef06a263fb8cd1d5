"""Knowledge distillation for any task's Step: a trained teacher sees each training batch after the step has
prepared it (augmented, degraded), and the loss mixes the step's own with one to the teacher's outputs
(Hinton et al. 2015 for classes: the task gives the soft loss)."""
from __future__ import annotations

import torch

from .fit import autocast


class Taught:
    """`step`, whose training loss is (1 - weight) x its own + weight x soft_loss(output, the teacher's output).
    Validation and testing see the step alone. Everything else is the step's."""

    def __init__(self, step, teacher: torch.nn.Module, weight: float, soft_loss, bf16: bool):
        self.step, self.teacher, self.weight, self.soft_loss, self.bf16 = step, teacher, weight, soft_loss, bf16
        self.soft = None  # the teacher's outputs for the training batch just prepared (the engine counts images
                          # by the targets, so they travel beside them)

    def __getattr__(self, name):
        return getattr(self.step, name)

    def prepare(self, x, y, train: bool, g=None):
        x, y = self.step.prepare(x, y, train, g)
        self.soft = None
        if train:
            with torch.no_grad(), autocast(self.bf16, x.device):
                self.soft = self.teacher(x).float()
        return x, y

    def loss(self, out, y):
        soft, self.soft = self.soft, None
        own = self.step.loss(out, y)
        if soft is None or soft.shape != out.shape:
            return own
        return (1 - self.weight) * own + self.weight * self.soft_loss(out.float(), soft)


def frozen(net: torch.nn.Module, dev, channels_last: bool) -> torch.nn.Module:
    """A teacher network on the device, in eval mode, its weights fixed."""
    net = net.to(dev).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return net
