"""Structured pruning: whole channels removed from a trained run's network by Torch-Pruning (its dependency
graph keeps every layer that shares a channel consistent), before the engine fine-tunes what is left.
Channels go by the L2 norm of their group's weights; the task names the layers whose outputs are its answer
(a classifier's last layer: its classes), which keep all their channels."""
from __future__ import annotations

import json

import torch

from ..errors import UserError
from ..models import count_params
from ..runs import find_run
from .checkpoint import load_weights


def before_shuffle(model) -> list:
    """Convolutions that feed a PixelShuffle keep their outputs: the shuffle reads them in groups of scale^2, which
    Torch-Pruning does not follow (the U-Nets' and EDSR's up-sampling). Their inputs still lose channels."""
    keep = []
    for seq in model.modules():
        if isinstance(seq, torch.nn.Sequential):
            parts = list(seq)
            keep += [a for a, b in zip(parts, parts[1:])
                     if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.PixelShuffle)]
    return keep


def prune(task, job, cfg, dev) -> dict:
    """Loads the source run's best weights into the job's model, removes cfg.prune of its channels in place,
    and returns what the summary records."""
    import torch_pruning as tp  # only pruning needs it
    source = find_run(cfg.prune_from)
    model = job.model
    load_weights(model, source / "weights" / "best.safetensors")
    keep = task.prune_keep(model) + before_shuffle(model)
    x, y = next(iter(job.train.epoch(0)))
    x, _ = job.step.prepare(x[:2].to(dev), y[:2].to(dev) if isinstance(y, torch.Tensor) else y, False)
    last = [p for p in model.parameters() if p.dim() == 4]
    channels_last = bool(last) and last[0].is_contiguous(memory_format=torch.channels_last) and \
        not last[0].is_contiguous()
    before, training = count_params(model), model.training
    model.eval()
    try:
        # a bare Parameter the task keeps (the detector's per-level scales) is declared, so that Torch-Pruning
        # does not warn that it would cut its last dimension: being kept, it is never cut
        bare = [(p, 0) for p in keep if isinstance(p, torch.nn.Parameter)]
        pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=cfg.prune, ignored_layers=keep, round_to=4,
                                      unwrapped_parameters=bare)
        pruner.step()
        with torch.no_grad():
            model(x)  # a layer whose channels Torch-Pruning could not follow (e.g. PixelShuffle's groups) fails here
    except Exception as e:  # Torch-Pruning meets an operation its graph does not know
        raise UserError(f"{cfg.model} could not be pruned: Torch-Pruning does not follow its channels through "
                        f"every layer ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    model.train(training)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    summary = source / "summary.json"
    test = (json.loads(summary.read_text()).get("test") or {}) if summary.is_file() else {}
    name, figure = task.main_figure(test) if test else ("", None)
    return {"from": str(source), "ratio": cfg.prune, "params_before": before, "params_after": count_params(model),
            "source_figure": {"name": name, "value": figure}}
