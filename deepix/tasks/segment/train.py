"""Semantic segmentation: images with a class per pixel in, a segmenter trained by the shared engine,
scored per pixel (mIoU, pixel accuracy, Dice) at each test image's own size."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...data.loader import Batches
from ...data.masks import SegImage, colours_of
from ...data.types import Split
from ...engine.checkpoint import load_weights
from ...engine.fit import autocast
from ...errors import UserError
from ...models import REGISTRY, Spec, build_model, count_params, kind_of
from ...models.encoder import start_from
from ..base import Job, Step
from . import data as segdata
from .augment import SegAugment
from .metrics import PixelCounts, image_iou

LOSSES = ("cross-entropy", "focal", "dice", "cross-entropy+dice", "focal+dice")


class Segment(Step):
    """What a batch, the loss and the validation figures mean for segmentation."""

    def __init__(self, classes: list[str], ignore_index: int, loss: str, weights: torch.Tensor | None,
                 augment: SegAugment | None, channels_last: bool):
        self.classes, self.ignore, self.kind, self.weights = classes, ignore_index, loss, weights
        self.augment, self.channels_last = augment, channels_last

    def prepare(self, x, y, train: bool, g=None):
        x = x.float() / 255
        if train and self.augment is not None:
            x, y = self.augment(x, y, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def loss(self, out, y):
        return seg_loss(out.float(), y.long(), self.kind, self.weights, self.ignore)

    @torch.no_grad()
    def scores(self, model, x: torch.Tensor, dev, bf16: bool, batch: int = 32) -> torch.Tensor:
        """Class scores (N, K, H, W) float32 for uint8 (N, 3, H, W) images, on the CPU."""
        model.eval()
        out = []
        for i in range(0, len(x), batch):
            xb, _ = self.prepare(x[i:i + batch].to(dev), None, False)
            with autocast(bf16, dev):
                out.append(model(xb).float().cpu())
        return torch.cat(out)

    def evaluate(self, model, val, dev, bf16: bool) -> dict[str, float]:
        x, y = val
        counts = PixelCounts(len(self.classes), self.ignore)
        for i in range(0, len(x), 64):
            counts.update(self.scores(model, x[i:i + 64], dev, bf16).argmax(1), y[i:i + 64])
        f = counts.figures(self.classes)
        return {"miou": f["miou"], "pixel_accuracy": f["pixel_accuracy"]}


def seg_loss(out: torch.Tensor, y: torch.Tensor, kind: str, weights: torch.Tensor | None, ignore: int) -> torch.Tensor:
    """Cross-entropy (class-weighted when asked), focal (gamma 2), soft Dice over the batch, or a sum of them;
    void pixels count in none."""
    total = out.new_zeros(())
    parts = kind.split("+")
    if "cross-entropy" in parts:
        total = total + F.cross_entropy(out, y, weight=weights, ignore_index=ignore)
    if "focal" in parts:
        ce = F.cross_entropy(out, y, weight=weights, ignore_index=ignore, reduction="none")
        valid = y != ignore
        focal = (1 - torch.exp(-ce)) ** 2 * ce
        total = total + (focal[valid].mean() if valid.any() else focal.sum() * 0)
    if "dice" in parts:
        valid = (y != ignore)[:, None].float()
        p = out.softmax(1) * valid
        t = F.one_hot(torch.where(y == ignore, 0, y), out.shape[1]).permute(0, 3, 1, 2).float() * valid
        inter, sums = (p * t).sum((0, 2, 3)), (p + t).sum((0, 2, 3))
        total = total + (1 - (2 * inter + 1) / (sums + 1)).mean()
    return total


def check_model(name: str) -> None:
    if name.startswith("tv:"):
        from ...models.tv_segment import names
        if name[3:] not in names():
            raise UserError(f"{name} is not a torchvision segmenter; use one of "
                            f"{', '.join('tv:' + n for n in names())}")
        return
    if kind_of(name) != "segment":
        names = ", ".join(n for n, (_, _, k) in REGISTRY.items() if k == "segment")
        raise UserError(f"{name} is not a segmenter; segmentation models are {names}, and torchvision's "
                        "through tv: (e.g. tv:lraspp_mobilenet_v3_large)")


def build(cfg, classes: int, side: int) -> torch.nn.Module:
    check_model(cfg.model)
    if cfg.model.startswith("tv:"):
        from ...models.tv_segment import TorchvisionSegmenter
        return TorchvisionSegmenter(cfg.model[3:], classes)
    return build_model(cfg.model, Spec(3, classes, (side, side), width=cfg.width))


def class_weights(cfg, counts: list[int]) -> torch.Tensor | None:
    """--class-weights: none, auto (inverse square root of each class's share of the training pixels, mean 1),
    or one number per class."""
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights == "auto":
        c = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
        w = (c.sum() / c).sqrt()
        return w / w.mean()
    try:
        w = torch.tensor([float(v) for v in cfg.class_weights.split(",")])
    except ValueError:
        raise UserError(f"--class-weights must be none, auto or one number per class (got {cfg.class_weights!r})") from None
    if len(w) != len(counts) or (w < 0).any():
        raise UserError(f"--class-weights gives {len(w)} numbers; there are {len(counts)} classes (none negative)")
    return w


def make_augment(cfg) -> SegAugment | None:
    if cfg.augment == "none":
        return None
    aug = SegAugment(scale=0.5, translate=0.2, degrees=20) if cfg.augment == "strong" else SegAugment()
    for k in ("scale", "translate", "degrees", "brightness", "contrast"):
        if getattr(cfg, k) >= 0:
            setattr(aug, k, getattr(cfg, k))
    if cfg.hflip != "auto":
        aug.hflip = cfg.hflip == "on"
    return aug


def setup(cfg, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads the images and masks, builds the segmenter and its step."""
    if net is not None or dataset is not None:
        raise UserError("segmentation takes --data shapes or a folder of images and masks (or VOC, COCO, YOLO); "
                        "arrays and own models are not supported yet")
    if cfg.loss not in LOSSES:
        raise UserError(f"--loss for segmentation must be one of {', '.join(LOSSES)} (got {cfg.loss!r})")
    if not 0 <= cfg.ignore_index <= 255:
        raise UserError(f"--ignore-index must be a mask value in 0..255 (got {cfg.ignore_index})")
    check_model(cfg.model)
    ds = segdata.load(cfg)
    if resume:
        was = json.loads((Path(resume) / "dataset.json").read_text())
        if was["images"] != {s: len(v) for s, v in ds.splits.items()} or was["classes"] != ds.classes:
            raise UserError(f"{resume} was trained on other data than {cfg.data} reads now ({was['images']})")
    segdata.check(ds, cfg.ignore_index)
    side = segdata.side_of(cfg, ds)
    info = segdata.info(ds, side, cfg.ignore_index, colours_of(ds))
    model = build(cfg, len(ds.classes), side)
    channels_last = not cfg.model.startswith("tv:") and (cfg.channels_last == "on" or (cfg.channels_last == "auto" and bf16))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(dev)
    weights = class_weights(cfg, info["pixels_per_class"]["train"])
    task = Segment(ds.classes, cfg.ignore_index, cfg.loss, None if weights is None else weights.to(dev),
                   make_augment(cfg), channels_last)

    def begin(run: Path) -> None:
        start_from(model, cfg, resume)

    x, y = segdata.tensors(ds.splits["train"], side)
    val = segdata.tensors(ds.splits["val"], side)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        fields = {"model": {"summary": str(model), "name": cfg.model, "params": count_params(model)}}
        for name in ("val", "test"):
            if ds.splits.get(name):
                fields[name] = score(task, model, ds.splits[name], side, dev, bf16,
                                     run / "plots" if name == "test" or "test" not in ds.splits else None,
                                     info["colours"])
        return fields.get("test", fields["val"]), fields

    about = (f"{cfg.data}: {len(x)} train / {len(val[0])} val / {len(ds.splits.get('test', []))} test images, "
             f"{len(ds.classes)} classes, {side}x{side}; {cfg.model}, loss {cfg.loss}")
    return Job(model, task, Batches(Split(x, y), cfg.batch, shuffle=True, seed=cfg.seed), val, info, about, finish,
               begin)


def predict_masks(task: Segment, model, images: list[SegImage], side: int, dev, bf16: bool) -> list[np.ndarray]:
    """Each image's predicted mask at its own size: scored at the training side, scores resized back."""
    x, _ = segdata.tensors(images, side)
    out = []
    for i in range(0, len(images), 32):
        s = task.scores(model, x[i:i + 32], dev, bf16)
        for j, im in enumerate(images[i:i + 32]):
            h, w = im.mask.shape
            sj = s[j:j + 1] if (h, w) == (side, side) else F.interpolate(s[j:j + 1], size=(h, w), mode="bilinear",
                                                                          align_corners=False)
            out.append(sj.argmax(1)[0].numpy().astype(np.uint8))
    return out


def score(task: Segment, model, images: list[SegImage], side: int, dev, bf16: bool, plots: Path | None,
          colours) -> dict:
    """mIoU, pixel accuracy, Dice, per class, speed, where it fails; and the plots when asked."""
    t0 = time.perf_counter()
    preds = predict_masks(task, model, images, side, dev, bf16)
    seconds = time.perf_counter() - t0
    counts = PixelCounts(len(task.classes), task.ignore)
    for im, p in zip(images, preds):
        counts.update(torch.from_numpy(p), torch.from_numpy(im.mask))
    result = counts.figures(task.classes)
    result["images_per_s"] = round(len(images) / seconds, 1)
    result["ignore_index"] = task.ignore
    from .where import where_it_fails
    result.update(where_it_fails(images, preds, len(task.classes), task.ignore))
    ious = [image_iou(p, im.mask, len(task.classes), task.ignore) for im, p in zip(images, preds)]
    order = np.argsort(ious)
    result["worst"] = [{"image": images[i].name, "miou": round(float(ious[i]), 4)} for i in order[:6]]
    if plots is not None:
        from .pictures import overlays, per_class_bars
        from ...report.plots import plot_confusion
        plots.mkdir(parents=True, exist_ok=True)
        picks = list(range(min(8, len(images))))
        overlays([images[i] for i in picks], [preds[i] for i in picks], colours, task.ignore,
                 [f"{ious[i]:.2f}" for i in picks], plots / "masks.png", task.classes)
        overlays([images[i] for i in order[:6]], [preds[i] for i in order[:6]], colours, task.ignore,
                 [f"{ious[i]:.2f}" for i in order[:6]], plots / "worst.png", task.classes)
        per_class_bars(result["iou_per_class"], plots / "iou_per_class.png")
        plot_confusion(result["confusion"], task.classes, plots / "confusion.png")
    return result


def val(loaded, data: str | None = None, split_name: str = "test") -> dict:
    """Re-score a loaded run's best weights on its own split (test, else val), or on another data set."""
    cfg = loaded.cfg
    if data:
        cfg.data = data
    ds = segdata.load(cfg)
    if ds.classes != loaded.classes:
        raise UserError(f"{cfg.data} has classes {ds.classes[:5]} but the run was trained on {loaded.classes[:5]}")
    segdata.check(ds, cfg.ignore_index)
    images = ds.splits.get(split_name) or ds.splits.get("val")
    if not images:
        raise UserError(f"{cfg.data} has no {split_name} or val split to score")
    return score(loaded.step, loaded.model, images, loaded.imgsz, loaded.dev, loaded.bf16, None, loaded.colours)


def save_mask(mask: np.ndarray, colours, path: Path) -> None:
    """An index PNG whose palette shows the classes in their colours (any viewer shows it, any tool reads indices)."""
    im = Image.fromarray(mask, mode="P")
    flat = [v for c in colours for v in c]
    im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(path)
