"""A restorer taught by a trained one: besides the clean target, the student follows the teacher's output on
the same degraded patch (L1), so a small network learns what a larger one makes of each input."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from ...engine.fit import autocast
from ...errors import UserError
from ...models import count_params
from .train import Restore


class DistillRestore(Restore):
    """(1 - weight) x the loss to the clean patch + weight x L1 to the teacher's output."""

    def __init__(self, *args, teacher: torch.nn.Module, weight: float, bf16: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher, self.weight, self.bf16 = teacher, weight, bf16
        self.soft = None  # the teacher's output for the training batch just prepared

    def prepare(self, x, y, train: bool, g=None):
        degraded, clean = super().prepare(x, y, train, g)
        self.soft = None
        if train:
            with torch.no_grad(), autocast(self.bf16, degraded.device):
                self.soft = self.teacher(degraded).float()
        return degraded, clean

    def loss(self, out, clean):
        soft, self.soft = self.soft, None
        base = super().loss(out, clean)
        if soft is None or soft.shape != out.shape:
            return base
        return (1 - self.weight) * base + self.weight * F.l1_loss(out.float(), soft)


def load_teacher(cfg, channels: int, scale: int, dev, channels_last: bool):
    """The teacher restorer, frozen, after checking that it undoes the same degradation at the same scale."""
    from ...runs import open_run
    from .train import Restorer
    run, tcfg, _ = open_run(cfg.teacher)
    if tcfg.task != "restore":
        raise UserError(f"the teacher {cfg.teacher} is a {tcfg.task} run; a restorer learns from a restore run")
    teacher = Restorer(run)
    if teacher.channels != channels or teacher.degrade.scale != scale or tcfg.degrade != cfg.degrade:
        raise UserError(f"the teacher {cfg.teacher} undoes {tcfg.degrade} on {teacher.channels}-channel images; this "
                        f"run undoes {cfg.degrade} on {channels}-channel images: a teacher must do the same job")
    net = teacher.model.to(dev).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return net, {"run": str(run), "model": tcfg.model, "params": count_params(net), "weight": cfg.distill_weight}


def alone(cfg, run: Path) -> dict:
    """The same student trained without the teacher (same data, patches, epochs, seed), in RUN/restore/baseline."""
    from ...engine.run import train as run_task
    from .. import get
    bcfg = dataclasses.replace(cfg, teacher="", baseline=False, project=str(run), name="baseline", quiet=True,
                               time_limit=0.0)
    if not cfg.quiet:
        print("baseline: the same training without the teacher, for the report")
    r = run_task(get("restore"), bcfg)
    return {"psnr": r["test"]["methods"]["deepix"]["psnr"], "run": "restore/baseline"}
