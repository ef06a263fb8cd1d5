"""Per-box maps of a detector: for each box, Grad-CAM of its class score at the output point that found it."""
from __future__ import annotations

import time
from html import escape as e
from pathlib import Path

import torch

from . import fcos_head
from .images import letterbox, unlabelled
from ...data.folder import upright_size
from ...errors import UserError
from ...report.html import img, table
from ...report.plots import COLORS
from ...explain.cam import box_score, grad_cam
from ...explain.figures import Cell, as_image, overlay_grid
from ...explain.layers import hookable, pick_target, resolve_class, trace
from ...models.fcos import FCOS
from PIL import Image

MAX_BOXES = 4   # boxes explained per image: each costs a backward pass


def _check(model) -> None:
    if not isinstance(model, FCOS):
        raise UserError("per-box maps are made for deepix's own detectors (fcos-n, fcos-s); a torchvision "
                        "detector's boxes come out of its own post-processing, which gives no single score to explain")


def boxes_with_maps(model, x: torch.Tensor, points: torch.Tensor, iou: float, layer: torch.nn.Module, where,
                    conf: float, max_boxes: int = MAX_BOXES, cls: int | None = None) -> list[list[dict]]:
    """For each (float, letterboxed) image its boxes over `conf` (of class `cls` if given), each with its
    Grad-CAM map: the class logit of the point that produced the box, traced back to `layer`."""
    side = tuple(x.shape[-2:])
    with torch.no_grad():
        out = model(x).float()
    dets = fcos_head.decode(out, points, side, conf, iou, 100)
    c = out.shape[-1] - 5
    scores = torch.sqrt(out[..., :c].sigmoid() * out[..., -1:].sigmoid())
    boxes = fcos_head.to_boxes(points[None], out[..., c:c + 4])
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, side[1])
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, side[0])
    found = []
    for b, d in enumerate(dets):
        keep = [k for k in range(len(d["labels"])) if cls is None or int(d["labels"][k]) == cls][:max_boxes]
        items = []
        for k in keep:
            label, box, score = int(d["labels"][k]), d["boxes"][k], float(d["scores"][k])
            # the point whose decoded box and score are this detection's (NMS kept it as it was)
            p = int(((boxes[b] - box).abs().sum(-1) + (scores[b, :, label] - score).abs()).argmin())
            heat = grad_cam(box_score(model, p, label), x[b:b + 1], layer, 0, where)[0].cpu()
            items.append({"label": label, "score": score, "box": box.cpu().tolist(), "point": p, "map": heat})
        found.append(items)
    return found


def figure_rows(x: torch.Tensor, found: list[list[dict]], sizes: list[tuple[int, int]], classes: list[str],
                names: list[str]) -> list[list[Cell]]:
    """One row per image: the image with every box, then each box with its map (padding cropped away)."""
    rows = []
    for i, items in enumerate(found):
        h, w = sizes[i]
        img = as_image(x[i])[:h, :w]
        col = lambda it: COLORS[it["label"] % len(COLORS)]  # noqa: E731
        row = [Cell(img, f"{names[i]}: {len(items)} box{'es' * (len(items) != 1)}",
                    boxes=[(*it["box"], col(it)) for it in items])]
        row += [Cell(img, f"{classes[it['label']]} {it['score']:.2f}", it["map"][:h, :w].numpy(),
                     boxes=[(*it["box"], "white")]) for it in items]
        rows.append(row)
    return rows


def explain_images(det, images, layer: str | None, cls, out: Path, conf: float = 0.25) -> dict:
    """Per-box Grad-CAM for image files, with a detection run's Detector: the boxes scoring at least `conf`."""

    t0 = time.perf_counter()
    _check(det.model)
    cls_idx = resolve_class(cls, det.classes)
    paths = [Path(p) for p in (images if isinstance(images, (list, tuple)) else [images])]
    if not paths:
        raise UserError("no images to explain: give one or more image files")
    items = [unlabelled(p) for p in paths]
    x_u8, _, scales = letterbox(items, det.imgsz)
    x = x_u8.to(det.dev).float().div(255)
    notes, sizes = [], []
    for p, s in zip(paths, scales.tolist()):
        with Image.open(p) as f:
            (h, w), mode = upright_size(f), f.mode
        sizes.append((max(1, round(h * s)), max(1, round(w * s))))
        if (w, h) != (det.imgsz, det.imgsz) or mode != "RGB":
            notes.append(f"{p.stem}: {w}x{h} {mode}, " + ("converted to RGB and " if mode != "RGB" else "")
                         + f"letterboxed to the detector's {det.imgsz}x{det.imgsz} input (scaled by {s:.3g}, padded "
                         "right and bottom)")
    with hookable(det.model) as model:
        target, module, where = pick_target(model, x, trace(model, x[:1]), layer)
        found = boxes_with_maps(model, x, det.step.points, det.cfg.iou, module, where, conf, cls=cls_idx)
    out.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in paths]
    pngs = {}
    for i, name in enumerate(names):
        rows = figure_rows(x[i:i + 1], found[i:i + 1], sizes[i:i + 1], det.classes, [name])
        pngs[f"{name}_boxes"] = overlay_grid(rows, out / f"{name}_boxes.png", cell=2.4)
    preds = [{"image": n, "boxes": [{"class": det.classes[it["label"]], "score": it["score"],
                                     "box": [v / s for v in it["box"]]} for it in f]}
             for n, f, s in zip(names, found, scales.tolist())]
    return {"task": "detect", "layer": target, "class": None if cls_idx is None else det.classes[cls_idx],
            "predictions": preds, "notes": notes, "stages": [], "pngs": pngs, "conf": conf,
            "seconds": round(time.perf_counter() - t0, 2)}


def page_body(r: dict, out: Path) -> str:
    """explain.html's part for a detector: the boxes as a table, then each image with its boxes' maps."""
    h = ["<h2>Boxes</h2>" + table(["image", "class", "score", "box (x1, y1, x2, y2)"], [
        [p["image"], b["class"], f"{b['score']:.2f}", ", ".join(f"{v:.0f}" for v in b["box"])]
        for p in r["predictions"] for b in p["boxes"]]),
        "<p>For each box, Grad-CAM of its class score at the point of the output that found it: where the "
        "evidence for that box lies. Boxes drawn in the letterboxed image the detector saw.</p>"]
    h += [f"<h2>{e(p['image'])}</h2>" + img(out / Path(r["pngs"][f"{p['image']}_boxes"]).name, p["image"])
          for p in r["predictions"] if f"{p['image']}_boxes" in r["pngs"]]
    return "\n".join(h)


def report_figures(plots: Path, model, task, images, classes: list[str], imgsz: int, iou: float,
                   n_images: int = 2, max_boxes: int = 3) -> Path | None:
    """plots/explain_boxes.png: per-box maps for the test images (of the first 8) with the surest boxes; None
    for a torchvision detector."""
    if not isinstance(model, FCOS) or not images:
        return None
    x_u8, _, scales = letterbox(images[:8], imgsz)
    x = x_u8.to(task.dev).float().div(255)
    with hookable(model) as m:
        _, layer, where = pick_target(m, x[:1], trace(m, x[:1]), None)
        with torch.no_grad():
            best = [float(d["scores"].max()) if len(d["scores"]) else 0.0
                    for d in fcos_head.decode(m(x).float(), task.points, (imgsz, imgsz), 0.001, iou, 1)]
        # a detector that finds nothing over 0.25 yet still shows its best guesses, their scores in the titles
        conf = 0.25 if sorted(best)[-min(n_images, len(best))] >= 0.25 else 0.001
        pick = sorted(range(len(best)), key=lambda i: -best[i])[:n_images]
        found = boxes_with_maps(m, x[pick], task.points, iou, layer, where, conf, max_boxes if conf > 0.01 else 1)
    sizes = [(max(1, round(images[i].size[0] * scales[i].item())), max(1, round(images[i].size[1] * scales[i].item())))
             for i in pick]
    rows = figure_rows(x[pick], found, sizes, classes, [f"test image {i}" for i in pick])
    return overlay_grid(rows, plots / "explain_boxes.png", cell=2.0)
