"""Image sets with class labels, as several tasks read them: a built-in set or a folder of class folders,
split, resized to --imgsz, and their channel statistics."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .builtin import DOWNLOADABLE, OFFLINE, load_builtin
from .folder import read_folder
from .types import Dataset


def load_data(cfg) -> Dataset:
    if cfg.data in OFFLINE + DOWNLOADABLE:
        ds = load_builtin(cfg.data, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    elif Path(cfg.data).exists() or "/" in cfg.data or "\\" in cfg.data:
        ds = read_folder(cfg.data, cfg.imgsz, cfg.val_fraction, cfg.test_fraction, cfg.seed, strict=cfg.strict)
    else:
        return load_builtin(cfg.data, cfg.val_fraction, cfg.test_fraction, cfg.seed)  # raises: unknown name
    if cfg.imgsz and ds.train.x is not None and tuple(ds.size) != (cfg.imgsz, cfg.imgsz):
        ds = resize(ds, cfg.imgsz)
    return ds


def resize(ds: Dataset, imgsz: int) -> Dataset:
    for split in (ds.train, ds.val, ds.test):
        if len(split):
            split.x = F.interpolate(split.x.float(), size=(imgsz, imgsz), mode="bilinear", antialias=True,
                                    align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    ds.size = (imgsz, imgsz)
    return ds


def channel_stats(ds: Dataset) -> tuple[list[float], list[float]]:
    if ds.train.x is None:
        return [0.5] * ds.channels, [0.25] * ds.channels
    x = ds.train.x[:20000].float().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
