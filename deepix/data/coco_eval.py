"""Box evaluation (detect, and locate's agent): pycocotools' COCOeval run in memory, a confusion matrix, and their plots.

Ground truth comes as DetImages (deepix/data/boxes.py); predictions[i] belongs to truth[i] and holds
tensors `boxes` (M, 4) xyxy pixels, `scores` (M,) and `labels` (M,). Class k is COCO category k + 1
and image i is COCO image i + 1. A metric no box could score (a class, or a size bucket, with no
ground truth) is None, and is left out of every mean, as COCOeval leaves out its -1.
"""
from __future__ import annotations

import contextlib
import io
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_iou

from deepix.data.boxes import DetImage
from deepix.report import plots

EVALUATOR = f"pycocotools {version('pycocotools')} COCOeval (bbox)"


def evaluate(truth: list[DetImage], predictions: list[dict], classes: list[str], max_dets: int = 100) -> dict:
    """COCO box metrics (AP@[.5:.95], AP50, AP75, AP by size, AR at max_dets, per class, PR curves)."""
    if len(truth) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(truth)} images")
    if max_dets < 1:
        raise ValueError(f"max_dets must be at least 1, not {max_dets}")
    ev = _cocoeval(truth, predictions, classes, max_dets)
    precision = ev.eval["precision"][:, :, :, 0, -1]      # [iou, recall, class] for area "all", max_dets
    t50 = _iou_index(ev, 0.5)
    return {
        "map": _stat(ev, True), "map50": _stat(ev, True, 0.5), "map75": _stat(ev, True, 0.75),
        "map_small": _stat(ev, True, area="small"), "map_medium": _stat(ev, True, area="medium"),
        "map_large": _stat(ev, True, area="large"),
        "mar_100": _stat(ev, False),                        # AR at max_dets (100 by default, hence the name)
        "per_class": {name: {"map": _mean(precision[:, :, k]), "map50": _mean(precision[t50, :, k])}
                      for k, name in enumerate(classes)},
        "pr": {"iou": 0.5, "recall": ev.params.recThrs.tolist(),
               "precision": {name: None if (precision[t50, :, k] < 0).all() else precision[t50, :, k].tolist()
                             for k, name in enumerate(classes)}},
        "evaluator": EVALUATOR,
        "max_dets": max_dets,
        "summary_text": _summary(ev),
    }


def _cocoeval(truth: list[DetImage], predictions: list[dict], classes: list[str], max_dets: int) -> COCOeval:
    """COCOeval, evaluated and accumulated, over ground truth and results built in memory."""
    images = [{"id": i, "height": int(im.size[0]), "width": int(im.size[1])} for i, im in enumerate(truth, 1)]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    anns = []
    for i, im in enumerate(truth, 1):
        for box, label in zip(_xywh(im.boxes), im.labels.tolist()):
            # ids from 1: COCOeval records a match as the gt id, so id 0 would read as "no match"
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": label + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    dets = [{"image_id": i, "category_id": label + 1, "bbox": box, "score": score}
            for i, p in enumerate(predictions, 1)
            for box, score, label in zip(_xywh(p["boxes"]), p["scores"].tolist(), p["labels"].tolist())]
    with contextlib.redirect_stdout(io.StringIO()):   # pycocotools reports its progress on stdout
        gt = _coco({"images": images, "categories": categories, "annotations": anns})
        # loadRes reads dets[0] to tell boxes from captions, so "nothing detected" needs its empty set made here
        dt = gt.loadRes(dets) if dets else _coco({"images": images, "categories": categories, "annotations": []})
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = sorted({1, min(10, max_dets), max_dets})
        ev.evaluate()
        ev.accumulate()
    return ev


def _coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    # in float64, so widths and heights keep every bit of the float32 corners
    b = boxes.detach().cpu().double().reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()


def _mean(a: np.ndarray) -> float | None:
    a = a[a > -1]   # COCOeval's -1: nothing to score there
    return float(a.mean()) if a.size else None


def _iou_index(ev: COCOeval, iou: float) -> int:
    return int(np.argmin(np.abs(ev.params.iouThrs - iou)))


def _stat(ev: COCOeval, ap: bool, iou: float | None = None, area: str = "all", m: int = -1) -> float | None:
    # precision is [iou, recall, class, area, maxDets], recall [iou, class, area, maxDets]
    s = ev.eval["precision" if ap else "recall"]
    if iou is not None:
        s = s[[_iou_index(ev, iou)]]
    return _mean(s[..., ev.params.areaRngLbl.index(area), m])


def _summary(ev: COCOeval) -> str:
    """COCOeval.summarize()'s text; written here, in its format, when maxDets is not [1, 10, 100]."""
    if ev.params.maxDets == [1, 10, 100]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            ev.summarize()
        return out.getvalue()
    # summarize() hard-codes maxDets=100 on its first line and needs three maxDets, so it would print -1
    return _summary_lines(ev)


def _summary_lines(ev: COCOeval) -> str:
    p = ev.params
    rows = [(True, None, "all", -1), (True, 0.5, "all", -1), (True, 0.75, "all", -1),
            (True, None, "small", -1), (True, None, "medium", -1), (True, None, "large", -1)]
    rows += [(False, None, "all", m) for m in range(len(p.maxDets))]
    rows += [(False, None, "small", -1), (False, None, "medium", -1), (False, None, "large", -1)]
    lines = []
    for ap, iou, area, m in rows:
        value = _stat(ev, ap, iou, area, m)
        span = f"{p.iouThrs[0]:0.2f}:{p.iouThrs[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
        lines.append(" {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}".format(
            "Average Precision" if ap else "Average Recall", "(AP)" if ap else "(AR)", span, area,
            p.maxDets[m], -1 if value is None else value))
    return "\n".join(lines) + "\n"


def confusion_matrix(truth: list[DetImage], predictions: list[dict], num_classes: int, iou: float = 0.5,
                     score_threshold: float = 0.25) -> np.ndarray:
    """(C+1, C+1) counts, rows the true class and columns the predicted one, as the classifier's.

    The last row is background: predictions matching no box (false positives). The last column is
    background too: boxes no prediction matched (missed). Predictions under score_threshold are
    dropped; the rest, highest score first, each take the unmatched box of highest IoU >= iou,
    a box of their own class first, so a wrong class shows off the diagonal rather than as a miss.
    """
    bg = num_classes
    cm = np.zeros((bg + 1, bg + 1), dtype=np.int64)
    for im, p in zip(truth, predictions):
        keep = p["scores"].detach().cpu() >= score_threshold
        scores = p["scores"].detach().cpu()[keep]
        order = torch.sort(scores, descending=True, stable=True).indices
        boxes = p["boxes"].detach().cpu().float()[keep][order]
        labels = p["labels"].detach().cpu()[keep][order].tolist()
        gt_labels = im.labels.cpu()
        ious = box_iou(boxes.reshape(-1, 4), im.boxes.cpu().float().reshape(-1, 4))
        taken = torch.zeros(len(gt_labels), dtype=torch.bool)
        for i, label in enumerate(labels):
            free = (ious[i] >= iou) & ~taken
            same = free & (gt_labels == label)
            pool = same if same.any() else free
            if pool.any():
                j = int(ious[i].masked_fill(~pool, -1).argmax())
                taken[j] = True
                cm[int(gt_labels[j]), label] += 1
            else:
                cm[bg, label] += 1
        for g in gt_labels[~taken].tolist():
            cm[g, bg] += 1
    return cm


def plot_pr(result: dict, classes: list[str], path: Path) -> Path:
    """Precision against recall at IoU 0.5 for each class with ground truth, and their mean (AP50 in the legend)."""
    recall = np.array(result["pr"]["recall"])
    pr = result["pr"]["precision"]
    curves = [(name, np.array(pr[name])) for name in classes if pr.get(name) is not None]
    many = len(curves) > 10   # past ten, a legend per class is unreadable: grey lines and the mean
    fig = plots.figure(6, 4.2)
    ax = fig.add_subplot()
    for name, prec in curves:
        if many:
            ax.plot(recall, prec, color="0.75", lw=0.8)
        else:
            ax.plot(recall, prec, lw=1.4, label=f"{name} {result['per_class'][name]['map50']:.3f}")
    if curves:
        # the mean curve's area is mAP50 itself: COCO averages the classes at each recall point
        ax.plot(recall, np.mean([c for _, c in curves], 0), color="black", lw=2.4,
                label=f"all classes {result['map50']:.3f}")
        ax.legend(frameon=False, fontsize=8, title="AP50", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ground truth boxes", ha="center", va="center", color="0.4")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    plots.tidy(ax, "recall", "precision")
    ax.set_title(f"precision-recall at IoU 0.5, maxDets {result['max_dets']}\n{result['evaluator']}", fontsize=9)
    return plots.save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path) -> Path:
    """The detection confusion matrix, drawn as the classifier's, background the last row and column."""
    return plots.plot_confusion(matrix, list(classes) + ["background"], path)
