"""The Python API; the CLI calls exactly these functions."""
from __future__ import annotations

from pathlib import Path

import torch

from . import tasks
from .config import make_config
from .data.boxes import DetDataset
from .data.builtin import from_arrays
from .data.types import Dataset
from .engine import distributed, machine
from .engine.run import train as run_task
from .errors import UserError
from .export import load_exported
from .runs import find_run
from .tasks.base import Task


def train(task: str = "classify", config: str | None = None, resume: str | None = None, callbacks=(),
          **settings) -> dict:
    """Train a model: `deepix.train(data="mnist-5k", epochs=10)`. `data` may also be a folder path,
    a (x, y) pair of NumPy arrays, or a Dataset. `resume` continues a run folder; each callback
    is called as callback(row, model) after every epoch."""
    distributed.init()  # under torchrun: join the other processes
    net = settings.get("model")
    if net is not None and not isinstance(net, str):  # the user's own nn.Module (e.g. a deepix.keras model)
        settings["model"] = f"custom:{type(net).__name__}"
    else:
        net = None
    dataset = None
    if "env" in settings:   # an agent's data is its environment: env= reads better there
        settings["data"] = settings.pop("env")
    data = settings.get("data")
    own = None if data is None or isinstance(data, str) else tasks.get(
        make_config(find_run(resume) / "config.yaml").task if resume else task).given(data)
    if own is not None:
        dataset, settings["data"] = own, getattr(own, "__module__", "?") + ":" + getattr(own, "__qualname__", "?")
    elif data is not None and not isinstance(data, str):
        if isinstance(data, (Dataset, DetDataset)):
            dataset = data
        else:
            x, y = data
            dataset = from_arrays(x, y, val_fraction=settings.get("val_fraction", 0.1),
                                  test_fraction=settings.get("test_fraction", 0.2), seed=settings.get("seed", 0))
        settings["data"] = dataset.name
    if resume:
        run = find_run(resume)
        # what may change when a run goes on: its length, its chatter, and where its data now lives
        cfg = make_config(run / "config.yaml", **{k: v for k, v in settings.items()
                                                  if k in ("epochs", "time_limit", "quiet", "data", "threads", "sync_bn")})
        return run_task(tasks.get(cfg.task), cfg, dataset, resume=str(run), callbacks=callbacks)
    cfg = make_config(config, task=task, **settings)
    return run_task(tasks.get(task), cfg, dataset, callbacks=callbacks, net=net)


def prune(run: str | Path, ratio: float, epochs: int = 5, **settings) -> dict:
    """`deepix.prune("runs/classify/exp1", 0.5)`: a new run (RUN-pruned) whose network is RUN's with `ratio` of its
    channels removed (Torch-Pruning, by the L2 norm of each channel group), then fine-tuned for `epochs` on
    RUN's data and settings; its summary records both sizes and RUN's test figure beside its own."""
    if not 0 < ratio < 1:
        raise UserError(f"--ratio is the share of channels to remove, in (0, 1) (got {ratio})")
    found = find_run(run)
    cfg = make_config(found / "config.yaml")
    task = tasks.get(cfg.task)
    if type(task).prune_keep is Task.prune_keep:
        task.prune_keep(None)  # says which tasks it does not take, in one line
    if not (found / "weights" / "best.safetensors").is_file():
        raise UserError(f"{found} has no weights/best.safetensors: is it a finished run?")
    # the source's own start (its --weights, --init encoder or teacher) is in its weights already
    unset = {k: "" for k in ("weights", "init", "teacher") if getattr(cfg, k, "")}
    return train(cfg.task, config=str(found / "config.yaml"), **{
        "name": f"{found.name}-pruned", "project": str(found.parent.parent), **unset,
        **{k: v for k, v in settings.items() if v is not None},
        "prune": ratio, "prune_from": str(found), "epochs": epochs})


def load(run: str | Path, weights: str = "best", model: torch.nn.Module | None = None):
    """A trained run ready to use, with the same `predict(images)` for every task (a classifier's Predictor,
    a restoration run's Restorer, ...); `model` rebuilds a run trained with your own nn.Module. An exported
    .onnx or .torchscript file loads the same way."""
    if Path(run).suffix in (".onnx", ".torchscript"):
        return load_exported(run)
    found = find_run(run)
    task = tasks.get(make_config(found / "config.yaml").task)
    return task.load(found, weights, model)


def val(run: str | Path, data: str | None = None, split: str = "test") -> dict:
    """Re-evaluate a run's best weights on its own test split, or on another data set."""
    found = find_run(run)
    cfg = make_config(found / "config.yaml")
    machine.set_threads(cfg.threads)
    return tasks.get(cfg.task).val(found, data, split)
