"""The segmentation report's pictures: images with their true and predicted masks laid over them, and IoU
per class as bars."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...report.plots import figure, save, tidy

ALPHA = 0.5   # the masks' opacity over the image


def overlay(image: np.ndarray, mask: np.ndarray, colours, ignore: int = 255, alpha: float = ALPHA) -> np.ndarray:
    """uint8 (H, W, 3): the image with each pixel's class colour laid over it (void and background left clear)."""
    lut = np.zeros((256, 3), np.float32)
    lut[:len(colours)] = np.asarray(colours, np.float32)
    paint = (mask != ignore) & (mask != 0)
    out = image.astype(np.float32)
    out[paint] = (1 - alpha) * out[paint] + alpha * lut[mask[paint]]
    return out.round().astype(np.uint8)


def overlays(images, preds, colours, ignore: int, titles: list[str], out: Path, classes: list[str] | None = None) -> Path:
    """Rows of image | truth | prediction, titled with each image's mean IoU; the classes' colours as a legend."""
    n = max(1, len(images))
    fig = figure(6.0, 2.0 * n)
    for i, (im, p) in enumerate(zip(images, preds)):
        # more opaque than ALPHA: in a small picture the classes' colours must win over the objects' own
        for j, (pic, name) in enumerate(((im.image, im.name), (overlay(im.image, im.mask, colours, ignore, 0.8), "truth"),
                                         (overlay(im.image, p, colours, ignore, 0.8), f"predicted (IoU {titles[i]})"))):
            ax = fig.add_subplot(n, 3, 3 * i + j + 1)
            ax.imshow(pic, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(name, fontsize=7, pad=2)
    fig.subplots_adjust(wspace=0.05, hspace=0.2)
    if classes:
        from matplotlib.patches import Patch  # matplotlib: only when a figure is drawn
        fig.legend([Patch(color=np.asarray(c) / 255) for c in colours[1:len(classes)]], classes[1:], loc="upper center",
                   ncol=min(6, len(classes) - 1), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.95 + 0.1 / n))
    return save(fig, out)


def per_class_bars(iou: dict, out: Path) -> Path:
    names = list(iou)
    values = [v if v is not None else 0.0 for v in iou.values()]
    fig = figure(max(4.0, 0.5 * len(names) + 1.5), 3.0)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(names)), values, color=["0.7" if iou[n] is None else "tab:blue" for n in names])
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=30 if len(names) > 6 else 0)
    ax.set_ylim(0, 1)
    for b, n in zip(bars, names):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, "absent" if iou[n] is None else f"{iou[n]:.2f}",
                ha="center", fontsize=7)
    tidy(ax, "", "IoU")
    return save(fig, out)
