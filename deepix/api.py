"""The Python API; the CLI calls exactly these functions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import tasks
from .config import Config, make_config
from .errors import UserError
from .runs import find_run


def train(task: str = "classify", config: str | None = None, resume: str | None = None, callbacks=(),
          **settings) -> dict:
    """Train a model: `deepix.train(data="mnist-5k", epochs=10)`. `data` may also be a folder path,
    a (x, y) pair of NumPy arrays, or a Dataset. `resume` continues a run folder; each callback
    is called as callback(row, model) after every epoch."""
    from .engine import distributed
    distributed.init()  # under torchrun: join the other processes
    module = tasks.get(task)
    net = settings.get("model")
    if net is not None and not isinstance(net, str):  # the user's own nn.Module (e.g. a deepix.keras model)
        settings["model"] = f"custom:{type(net).__name__}"
    else:
        net = None
    dataset = None
    data = settings.get("data")
    if data is not None and not isinstance(data, str):
        from .data.builtin import from_arrays
        from .data.boxes import DetDataset
        from .data.types import Dataset
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
        return module.train(cfg, dataset, resume=str(run), callbacks=callbacks)
    cfg = make_config(config, task=task, **settings)
    return module.train(cfg, dataset, callbacks=callbacks, net=net)


class Predictor:
    """A trained run, ready to predict: `deepix.load("runs/classify/exp1").predict("img.png")`."""

    def __init__(self, run: str | Path, weights: str = "best", model: torch.nn.Module | None = None):
        from .tasks.classify import build
        self.run = find_run(run)
        self.cfg = make_config(self.run / "config.yaml")
        meta = json.loads((self.run / "dataset.json").read_text())
        self.classes, self.channels, self.size = meta["classes"], meta["channels"], tuple(meta["size"])
        if model is None and self.cfg.model.startswith("custom:"):
            saved = self.run / "model.json"
            if not saved.is_file():
                raise UserError(f"{self.run} was trained with your own model ({self.cfg.model[7:]}); "
                                f"pass it: deepix.load(run, model=YourModel())")
            from .keras.models import model_from_config
            model = model_from_config(json.loads(saved.read_text())["config"])
        self.model = build(self.cfg, len(self.classes), self.channels, self.size, [0.0] * self.channels,
                           [1.0] * self.channels, model)
        from .engine.checkpoint import load_weights
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def _batch(self, images) -> torch.Tensor:
        from .data.folder import load_image
        if isinstance(images, (str, Path)) or not isinstance(images, (list, tuple, np.ndarray)):
            images = [images]
        if isinstance(images, np.ndarray):
            if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4) and images.shape[0] > 4):
                images = images[None]
            from .data.builtin import _as_uint8_nchw
            x = torch.from_numpy(_as_uint8_nchw(images))
            x = x.float()
            if self.channels == 1 and x.shape[1] != 1:
                x = x[:, :3].mean(1, keepdim=True)
            elif self.channels == 3:
                x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
            if tuple(x.shape[2:]) != self.size:
                x = torch.nn.functional.interpolate(x, size=self.size, mode="bilinear", antialias=True)
            return x.div(255)
        return torch.stack([load_image(i, self.channels, self.size[0]) for i in images]).float().div(255)

    @torch.no_grad()
    def predict(self, images, top_k: int = 5) -> list[dict]:
        """Paths, PIL images or arrays in; for each image its top-k classes with probabilities."""
        probs = self.model(self._batch(images)).float().softmax(1)
        k = min(top_k, len(self.classes))
        p, i = probs.topk(k, 1)
        return [{"class": self.classes[ii[0]], "probability": float(pp[0]),
                 "top": [{"class": self.classes[c], "probability": float(v)} for v, c in zip(pp.tolist(), ii.tolist())],
                 "probabilities": pr.tolist()} for pp, ii, pr in zip(p, i, probs)]


def load(run: str | Path, weights: str = "best", model: torch.nn.Module | None = None):
    """A trained run ready to predict (a classifier's Predictor, a restoration run's Restorer);
    `model` rebuilds a run trained with your own nn.Module."""
    if Path(run).suffix in (".onnx", ".torchscript"):
        from .export import Exported
        return Exported(run)
    found = find_run(run)
    task = make_config(found / "config.yaml").task
    if task == "restore":
        from .tasks.restore import Restorer
        return Restorer(found, weights)
    if task == "detect":
        from .tasks.detect import Detector
        return Detector(found, weights)
    if task == "generate":
        from .tasks.generate import Sampler
        return Sampler(found, weights)
    if task == "pretrain":
        from .tasks.pretrain import Encoder
        return Encoder(found)
    return Predictor(found, weights, model)


def val(run: str | Path, data: str | None = None, split: str = "test") -> dict:
    """Re-evaluate a run's best weights on its own test split, or on another data set."""
    task = make_config(find_run(run) / "config.yaml").task
    if task == "restore":
        from .tasks.restore import val as restore_val
        return restore_val(find_run(run), data)
    if task == "detect":
        from .tasks.detect import val as detect_val
        return detect_val(find_run(run), data, split)
    if task == "generate":
        from .tasks.generate import val as generate_val
        return generate_val(find_run(run))
    if task == "pretrain":
        from .tasks.pretrain import val as pretrain_val
        return pretrain_val(find_run(run))
    from .data.loader import Batches
    from .engine import machine
    from .tasks.classify import Classify, load_data
    pred = Predictor(run)
    cfg = pred.cfg
    if data:
        cfg.data = data
    ds = load_data(cfg)
    if ds.classes != pred.classes:
        raise UserError(f"{cfg.data} has classes {ds.classes[:5]}... but the run was trained on {pred.classes[:5]}...")
    machine.set_threads(cfg.threads)
    task = Classify(len(ds.classes), None, cfg.loss, cfg.label_smoothing)
    part = getattr(ds, split)
    out, y = task.logits(pred.model, Batches(part, 256, False, channels=ds.channels, imgsz=ds.size[0]),
                         torch.device("cpu"), machine.use_bf16(cfg.precision, torch.device("cpu")))
    return task.test_metrics(out, y)
