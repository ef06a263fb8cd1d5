"""The segmentation splits as tensors: the built-in shapes, or a data set on disk (seg_formats.py reads it),
split by the fractions where it comes without val or test, and resized to one side for training (images
bilinear, masks nearest)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...data.splits import hold_out
from ...data.masks import SegDataset, SegImage, load_shapes_masks, pixels_per_class
from ...errors import UserError

SHAPES = (2000, 200, 500)   # built-in shapes: train, val and test images
FOLDER_SIZE = 256           # the default training side for data read from disk


def load(cfg) -> SegDataset:
    if cfg.data == "shapes":
        return load_shapes_masks(*SHAPES, size=cfg.imgsz or 128, seed=0)
    from ...data.seg_formats import read_segmentation  # on use: pycocotools and friends only when reading files
    ds = read_segmentation(cfg.data, ignore_index=cfg.ignore_index)
    return hold_out(ds, cfg.val_fraction, cfg.test_fraction, cfg.seed)


def check(ds: SegDataset, ignore_index: int) -> None:
    if not ds.splits.get("train"):
        raise UserError(f"{ds.name}: no training images")
    if not ds.splits.get("val"):
        raise UserError(f"{ds.name}: segmentation needs validation images; add a val split or raise --val-fraction")
    n = len(ds.classes)
    for part in ds.splits.values():
        for im in part:
            if im.image.shape[:2] != im.mask.shape:
                raise UserError(f"{im.name}: its mask is {im.mask.shape[1]}x{im.mask.shape[0]} but the image is "
                                f"{im.image.shape[1]}x{im.image.shape[0]}; a mask must match its image's size")
            top = int(im.mask[im.mask != ignore_index].max(initial=0))
            if top >= n:
                raise UserError(f"{im.name}: class index {top} in its mask, but there are {n} classes "
                                f"({', '.join(ds.classes[:6])}{', ...' if n > 6 else ''}); add the class to the "
                                f"class list, or mark those pixels void with --ignore-index {top}")


def side_of(cfg, ds: SegDataset) -> int:
    """The training side: --imgsz, else the shared size of same-sized images up to 512, else FOLDER_SIZE."""
    if cfg.imgsz:
        return cfg.imgsz
    sizes = {im.image.shape[:2] for im in ds.images()}
    if len(sizes) == 1:
        h, w = next(iter(sizes))
        if h == w and h <= 512:
            return h
    return FOLDER_SIZE


def tensors(images: list[SegImage], side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, side, side) images and (N, side, side) masks."""
    x = np.zeros((len(images), 3, side, side), np.uint8)
    y = np.zeros((len(images), side, side), np.uint8)
    for i, im in enumerate(images):
        if im.image.shape[:2] == (side, side):
            x[i], y[i] = im.image.transpose(2, 0, 1), im.mask
        else:
            x[i] = np.asarray(Image.fromarray(im.image).resize((side, side), Image.BILINEAR)).transpose(2, 0, 1)
            y[i] = np.asarray(Image.fromarray(im.mask).resize((side, side), Image.NEAREST))
    return torch.from_numpy(x), torch.from_numpy(y)


def info(ds: SegDataset, side: int, ignore_index: int, colours) -> dict:
    """dataset.json: classes, colours, sizes, and the pixels of each class (the imbalance the report shows)."""
    return {"name": ds.name, "classes": ds.classes, "colours": [list(c) for c in colours], "imgsz": side,
            "ignore_index": ignore_index, "source": ds.info,
            "images": {s: len(v) for s, v in ds.splits.items()},
            "pixels_per_class": {s: pixels_per_class(v, len(ds.classes), ignore_index) for s, v in ds.splits.items()},
            "scale": float(np.mean([side / max(im.image.shape[:2]) for im in ds.splits["train"]]))}
