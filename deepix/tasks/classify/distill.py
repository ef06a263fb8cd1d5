"""Knowledge distillation (Hinton et al. 2015): the model learns from a trained teacher's softened class
probabilities as well as from the labels. The teacher sees each training batch as the student does, after
augmentation, so its targets describe the very images the student is shown."""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from ...engine.fit import autocast
from ...errors import UserError
from ...models import count_params
from .train import Classify


class Distill(Classify):
    """Classify's loss, mixed: (1 - weight) x the labels' loss + weight x T^2 x KL(teacher || student) at
    temperature T (the T^2 keeps the soft part's gradients on the scale of the hard part's)."""

    def __init__(self, *args, teacher: torch.nn.Module, weight: float, temperature: float, bf16: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher, self.weight, self.t, self.bf16 = teacher, weight, temperature, bf16
        self.soft = None  # the teacher's logits for the training batch just prepared (the engine counts images
                          # by the labels, so they travel beside them, not with them)

    def prepare(self, x, y, train: bool, g=None):
        x, y = super().prepare(x, y, train, g)
        self.soft = None
        if train:
            with torch.no_grad(), autocast(self.bf16, x.device):
                self.soft = self.teacher(x).float()
        return x, y

    def loss(self, out, y):
        soft, self.soft = self.soft, None
        if soft is None or len(soft) != len(out):
            return super().loss(out, y)
        t = self.t
        kd = F.kl_div(F.log_softmax(out.float() / t, 1), F.log_softmax(soft / t, 1), reduction="batchmean",
                      log_target=True)
        return (1 - self.weight) * super().loss(out, y) + self.weight * t * t * kd


def load_teacher(cfg, ds, dev, channels_last: bool):
    """The teacher run's network, frozen, after checking that it answers the student's question: the same
    classes in the same order, the same channels and image size. Returns (network, what the summary records)."""
    from . import TASK
    from ...runs import open_run
    run, tcfg, _ = open_run(cfg.teacher)
    if tcfg.task != "classify":
        raise UserError(f"the teacher {cfg.teacher} is a {tcfg.task} run; a classifier learns from a classify run")
    teacher = TASK.load(run)
    if list(teacher.classes) != list(ds.classes):
        raise UserError(f"the teacher {cfg.teacher} knows the classes {teacher.classes[:6]}, this data has "
                        f"{ds.classes[:6]}: a teacher must have been trained on the same classes, in the same order")
    if teacher.channels != ds.channels or tuple(teacher.size) != tuple(ds.size):
        raise UserError(f"the teacher {cfg.teacher} takes {teacher.channels}x{teacher.size[0]}x{teacher.size[1]} "
                        f"images, this data is {ds.channels}x{ds.size[0]}x{ds.size[1]}: pass --imgsz to match")
    net = teacher.model.to(dev).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    summary = teacher.run / "summary.json"
    accuracy = (json.loads(summary.read_text()).get("test") or {}).get("accuracy") if summary.is_file() else None
    return net, {"run": str(teacher.run), "model": teacher.cfg.model, "params": count_params(net),
                 "accuracy": accuracy, "weight": cfg.distill_weight, "temperature": cfg.temperature}
