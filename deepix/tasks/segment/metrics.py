"""The segmentation field's figures from one pixel confusion matrix (torchmetrics counts it): IoU per class and
its mean, pixel accuracy and Dice. A class absent from both truth and prediction over the whole split has no
IoU at all (0/0): it is left out of the means and named, rather than counted as 0 or 1."""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix


class PixelCounts:
    """Accumulates the confusion matrix (rows: truth, columns: prediction) over batches; void pixels skipped."""

    def __init__(self, classes: int, ignore_index: int):
        # no sync: under --nproc rank 0 alone scores (the engine's rule), and torchmetrics would wait for the others
        self.matrix = MulticlassConfusionMatrix(classes, ignore_index=ignore_index, validate_args=False,
                                                sync_on_compute=False)

    def update(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        """(B, H, W) class indices, predicted and true."""
        self.matrix.update(pred.flatten().cpu(), truth.flatten().long().cpu())

    def figures(self, names: list[str]) -> dict:
        return figures(self.matrix.compute().numpy(), names)


def figures(cm: np.ndarray, names: list[str]) -> dict:
    """mIoU, pixel accuracy, mean Dice, per-class IoU and Dice (None where absent), and the absent classes."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    dice = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    total = cm.sum()
    return {"miou": float(np.nanmean(iou)) if present.any() else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
            "dice": float(np.nanmean(dice)) if present.any() else 0.0,
            "iou_per_class": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, iou)},
            "dice_per_class": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, dice)},
            "absent": [n for n, p in zip(names, present) if not p],
            "confusion": cm.astype(np.int64).tolist()}


def image_iou(pred: np.ndarray, truth: np.ndarray, classes: int, ignore_index: int) -> float:
    """One image's mean IoU over the classes in its truth or prediction (for the worst-images panel)."""
    keep = truth != ignore_index
    p, t = pred[keep].astype(np.int64), truth[keep].astype(np.int64)
    cm = np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean()) if (union > 0).any() else 1.0
