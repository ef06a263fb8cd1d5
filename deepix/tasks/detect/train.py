"""Object detection: images with labelled boxes in, an anchor-free detector trained by the shared
engine, COCO's own evaluator (pycocotools) on the validation and test splits, boxes drawn."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Config
from ...data.boxes import DetDataset, DetImage
from ...data.loader import Batches
from ...data.splits import hold_out
from ...data.types import Split
from . import fcos_head
from .augment import BoxAugment
from .images import letterbox, pixels
from ...engine.checkpoint import load_weights
from ...engine import distributed as dist
from ...engine.fit import autocast
from ...engine.teach import Taught, alone, frozen
from ...runs import open_run
from ...errors import UserError
from ...models.encoder import start_from
from ..base import Job, Step
from .explain import report_figures
from ...models import REGISTRY, Spec, build_model, count_params, kind_of
from ...data.detection import read_detection
from ...data.coco_eval import confusion_matrix, evaluate, plot_confusion, plot_pr
from ...models.fcos import FCOS
from ...data.shapes import load_shapes
from ...models import tv_detect
from ...models.tv_detect import TorchvisionDetector
from ...report.plots import detection_grid

FOLDER_SIZE = 320   # the default input side for detection data read from disk
MAX_DETS = 100      # COCO's maxDets for the headline figures


class Detect(Step):
    """What a batch, the loss and the validation metric mean for detection (FCOS-style heads)."""

    mode = "model"  # a torchvision detector computes its own losses: the step goes through its interface

    def __init__(self, size: tuple[int, int], augment: BoxAugment | None, channels_last: bool, iou: float,
                 torchvision_model: bool = False, multiscale: float = 0.0):
        self.size, self.augment, self.channels_last, self.iou = size, augment, channels_last, iou
        self.tv = torchvision_model   # a torchvision detector: its own losses and post-processing
        self.multiscale = multiscale  # training batches resized by up to this fraction, in steps of 32 px
        self.dev = torch.device("cpu")
        self._grids: dict = {}
        self.points, self.strides = self.grid(size)
        self.parts: dict = {}

    def grid(self, size: tuple[int, int]):
        """The output points and strides for an input size (cached: sizes repeat)."""
        if size not in self._grids:
            self._grids[size] = tuple(t.to(self.dev) for t in FCOS.points(*size))
        return self._grids[size]

    def to(self, dev):
        self.dev, self._grids = dev, {}
        self.points, self.strides = self.grid(self.size)
        return self

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        x = x.float() / 255
        if train and self.augment is not None:
            x, y = self.augment(x, y, g)
        self.points, self.strides = self.grid(self.size)
        if train and self.multiscale:
            h = self.size[0]
            sides = [s for s in range(32, 4 * h, 32) if abs(s - h) <= self.multiscale * h] or [h]
            side = sides[int(torch.randint(len(sides), (1,), generator=g))]
            if side != h:
                k = side / h
                x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=k < 1, align_corners=False)
                y = y.clone()
                y[..., 1:] *= k
                self.points, self.strides = self.grid((side, side))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def step(self, model, x, y):
        """(loss, output) of a training step."""
        if self.tv:
            # in float32 whatever --precision says: torchvision's detection losses under bf16 autocast gave a NaN
            # loss by the second step (tv:fcos_resnet50_fpn, AMX host), in fp32 they train
            with torch.autocast(x.device.type, enabled=False):
                losses = model.losses(x.float(), y)
            self.parts = {k.replace("loss_", ""): v.item() for k, v in losses.items()}
            return sum(losses.values()), None
        out = model(x)
        return self.loss(out, y), out

    def loss(self, out, y):
        return fcos_head.loss(out, y, self.points, self.strides, self.parts)

    def train_stats(self, out, y) -> dict[str, float]:
        return {f"{k}_loss": v * len(y) for k, v in self.parts.items()}

    @torch.no_grad()
    def predict(self, model, x: torch.Tensor, dev, bf16: bool, conf: float, max_dets: int, batch: int = 64):
        """Detections for uint8 (N, C, H, W) letterboxed images, in the letterboxed coordinates."""
        model.eval()
        results = []
        for i in range(0, len(x), batch):
            xb, _ = self.prepare(x[i:i + batch].to(dev), None, False)
            if self.tv:
                found = [{k: v[r["scores"] >= conf][:max_dets] for k, v in r.items()} for r in model.detect(xb)]
            else:
                with autocast(bf16, dev):
                    out = model(xb)
                found = fcos_head.decode(out, self.points, self.size, conf, self.iou, max_dets)
            results += [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in r.items()} for r in found]
        return results

    def evaluate(self, model, val: "EvalSet", dev, bf16: bool) -> dict[str, float]:
        preds = val.to_original(self.predict(model, val.x, dev, bf16, 0.001, MAX_DETS))
        result = evaluate(val.truth, preds, val.classes, MAX_DETS)
        return {"map": result["map"], "map50": result["map50"]}


class EvalSet:
    """A split ready to score: its letterboxed images, the scale each was resized by, and the boxes
    at their original size (the evaluator scores boxes where the annotations put them)."""

    def __init__(self, images: list[DetImage], x: torch.Tensor, scales: torch.Tensor, classes: list[str]):
        self.truth, self.x, self.scales, self.classes = images, x, scales, classes

    def __len__(self) -> int:
        return len(self.truth)

    def to_original(self, preds: list[dict]) -> list[dict]:
        return [{**p, "boxes": p["boxes"] / s} for p, s in zip(preds, self.scales.tolist())]


# -- data

def load_data(cfg: Config) -> DetDataset:
    if cfg.data == "shapes":
        return load_shapes()
    ds = read_detection(cfg.data)
    return hold_out(ds, cfg.val_fraction, cfg.test_fraction, cfg.seed)


def pick_imgsz(cfg: Config, ds: DetDataset) -> int:
    if cfg.imgsz:
        return cfg.imgsz
    sizes = {im.size for im in ds.images()}
    if cfg.data == "shapes" and len(sizes) == 1:
        return max(next(iter(sizes)))
    return FOLDER_SIZE


def check(ds: DetDataset) -> None:
    if not ds.splits.get("train"):
        raise UserError(f"{ds.name}: no training images")
    if not ds.splits.get("val"):
        raise UserError(f"{ds.name}: detection needs validation images; add a val split or raise --val-fraction")
    if not any(len(im.labels) for im in ds.splits["train"]):
        raise UserError(f"{ds.name}: no boxes in the training images; nothing to learn")


def check_model(name: str) -> None:
    if name.startswith("tv:"):
        if name[3:] not in tv_detect.names():
            raise UserError(f"{name} is not a torchvision detector; use one of "
                            f"{', '.join('tv:' + n for n in tv_detect.names())}")
        return
    if kind_of(name) != "detect":
        names = ", ".join(n for n, (_, _, k) in REGISTRY.items() if k == "detect")
        raise UserError(f"{name} is not a detector; detection models are {names}")


def build(cfg: Config, classes: int, imgsz: int) -> torch.nn.Module:
    check_model(cfg.model)
    if cfg.model.startswith("tv:"):
        return TorchvisionDetector(cfg.model[3:], classes, imgsz, cfg.max_det)
    return build_model(cfg.model, Spec(3, classes, (imgsz, imgsz), width=cfg.width))


def make_augment(cfg: Config) -> BoxAugment | None:
    if cfg.augment == "none":
        return None
    aug = BoxAugment(mosaic=cfg.mosaic)
    if cfg.augment == "strong":
        aug = BoxAugment(scale=0.6, translate=0.2, mosaic=cfg.mosaic or 0.5)
    if cfg.scale >= 0:
        aug.scale = cfg.scale
    if cfg.translate >= 0:
        aug.translate = cfg.translate
    if cfg.hflip != "auto":
        aug.hflip = cfg.hflip == "on"
    if cfg.brightness >= 0:
        aug.brightness = cfg.brightness
    if cfg.contrast >= 0:
        aug.contrast = cfg.contrast
    return aug


# -- training

def setup(cfg: Config, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads and letterboxes the images, builds the detector and its step."""
    if net is not None or (dataset is not None and not isinstance(dataset, DetDataset)):
        raise UserError("detection takes --data shapes, a COCO / YOLO / VOC data set or a DetDataset; arrays and "
                        "own models are not supported yet")
    check_model(cfg.model)
    ds = hold_out(dataset, cfg.val_fraction, cfg.test_fraction, cfg.seed) if dataset is not None else load_data(cfg)
    if resume:
        was = json.loads((Path(resume) / "dataset.json").read_text())
        if was["images"] != {s: len(v) for s, v in ds.splits.items()} or was["classes"] != ds.classes:
            raise UserError(f"{resume} was trained on other data than {cfg.data} reads now ({was['images']}); "
                            "a data set made in Python must be passed again: deepix.train(resume=..., data=...)")
    check(ds)
    imgsz = pick_imgsz(cfg, ds)
    tv = cfg.model.startswith("tv:")
    channels_last = not tv and (cfg.channels_last == "on" or (cfg.channels_last == "auto" and bf16))
    if cfg.teacher:  # the student follows the teacher's class scores, boxes and centre-ness at every point
        with torch.random.fork_rng(devices=[]):  # building the teacher draws no number the student's run would
            teacher, taught = load_teacher(cfg, ds.classes, imgsz, dev, channels_last)
    model = build(cfg, len(ds.classes), imgsz)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(dev)
    task = Detect((imgsz, imgsz), make_augment(cfg), channels_last, cfg.iou, tv, cfg.multiscale).to(dev)
    if cfg.teacher:
        task = Taught(task, teacher, cfg.distill_weight, fcos_head.distill, bf16)

    def begin(run: Path) -> None:
        start_from(model, cfg, resume)

    x, t, _ = letterbox(ds.splits["train"], imgsz)
    val_x, _, val_s = letterbox(ds.splits["val"], imgsz)
    info = {"name": cfg.data, "classes": ds.classes, "imgsz": imgsz, "source": ds.info,
            "images": {s: len(v) for s, v in ds.splits.items()},
            "boxes": {s: int(sum(len(im.labels) for im in v)) for s, v in ds.splits.items()},
            "background_images": {s: sum(1 for im in v if not len(im.labels)) for s, v in ds.splits.items()},
            "boxes_per_class": {s: np.bincount(np.concatenate([im.labels.numpy() for im in v] + [np.zeros(0, int)]),
                                               minlength=len(ds.classes)).tolist() for s, v in ds.splits.items()}}
    val = EvalSet(ds.splits["val"], val_x, val_s, ds.classes)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        fields = {"model": {"summary": str(model)}}
        for name in ("val", "test"):
            if ds.splits.get(name):
                fields[name] = score(task, model, ds.splits[name], ds.classes, imgsz, dev, bf16,
                                     run / "plots" if name == "test" or "test" not in ds.splits else None)
        if cfg.teacher:
            split = ds.splits.get("test") or ds.splits["val"]
            found = score(task, teacher, split, ds.classes, imgsz, dev, bf16, None)
            fields["teacher"] = {**taught, "student_params": count_params(model), "map": found["map"],
                                 "map50": found["map50"]}
            if cfg.baseline and dist.world() == 1:
                r = alone(cfg, run, dataset)
                fields["baseline"] = {"map": r["test"]["map"], "map50": r["test"]["map50"], "run": "detect/baseline"}
        report_figures(run / "plots", model, task, ds.splits.get("test") or ds.splits["val"], ds.classes, imgsz,
                       cfg.iou)
        return fields.get("test", fields["val"]), fields

    about = (f"{cfg.data}: {len(x)} train / {len(val)} val / {len(ds.splits.get('test', []))} test images, "
             f"{len(ds.classes)} classes, {imgsz}x{imgsz}; {cfg.model}")
    return Job(model, task, Batches(Split(x, t), cfg.batch, shuffle=True, seed=cfg.seed), val, info, about, finish,
               begin)


def load_teacher(cfg: Config, classes: list[str], imgsz: int, dev, channels_last: bool):
    """The teacher detector, frozen, after checking that its outputs line up with the student's point by point:
    the same classes in the same order, the same input size, both deepix's own detectors."""
    run, tcfg, meta = open_run(cfg.teacher)
    if tcfg.task != "detect":
        raise UserError(f"the teacher {cfg.teacher} is a {tcfg.task} run; a detector learns from a detect run")
    if tcfg.model.startswith("tv:") or cfg.model.startswith("tv:"):
        raise UserError("distillation takes deepix's own detectors (fcos-n, fcos-s) as teacher and student, whose "
                        "outputs meet point by point; torchvision's detectors do not")
    if list(meta["classes"]) != list(classes):
        raise UserError(f"the teacher {cfg.teacher} knows the classes {meta['classes'][:6]}, this data has "
                        f"{classes[:6]}: a teacher must have been trained on the same classes, in the same order")
    if meta["imgsz"] != imgsz:
        raise UserError(f"the teacher {cfg.teacher} takes {meta['imgsz']}x{meta['imgsz']} images, this run "
                        f"{imgsz}x{imgsz}: pass --imgsz {meta['imgsz']}")
    net = build(tcfg, len(classes), imgsz)
    load_weights(net, run / "weights" / "best.safetensors")
    net = frozen(net, dev, channels_last)
    return net, {"run": str(run), "model": tcfg.model, "params": count_params(net), "weight": cfg.distill_weight}


def score(task: Detect, model, images: list[DetImage], classes: list[str], imgsz: int, dev, bf16: bool,
          plots: Path | None) -> dict:
    """COCO figures for a split (pycocotools), inference speed, and the plots when asked."""
    x, _, scales = letterbox(images, imgsz)
    ev = EvalSet(images, x, scales, classes)
    t0 = time.perf_counter()
    preds = ev.to_original(task.predict(model, x, dev, bf16, 0.001, MAX_DETS))
    seconds = time.perf_counter() - t0
    result = evaluate(images, preds, classes, MAX_DETS)
    result["images_per_s"] = round(len(images) / seconds, 1)
    matrix = confusion_matrix(images, preds, len(classes))
    result["confusion"] = matrix.tolist()
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        plot_pr(result, classes, plots / "pr_curve.png")
        plot_confusion(matrix, classes, plots / "confusion.png")
        picks = list(range(min(8, len(images))))
        detection_grid([pixels(images[i]) for i in picks], [images[i] for i in picks], [preds[i] for i in picks],
                       classes, plots / "detections.png")
    result.pop("pr", None)
    return result


def val(det, data: str | None = None, split_name: str = "test") -> dict:
    """Re-score a loaded run's best weights on its own split (test, else val), or on another data set."""
    cfg = det.cfg
    if data:
        cfg.data = data
    ds = load_data(cfg)
    if ds.classes != det.classes:
        raise UserError(f"{cfg.data} has classes {ds.classes[:5]} but the run was trained on {det.classes[:5]}")
    images = ds.splits.get(split_name) or ds.splits.get("val")
    if not images:
        raise UserError(f"{cfg.data} has no {split_name} or val split to score")
    return score(det.step, det.model, images, det.classes, det.imgsz, det.dev, det.bf16, None)
