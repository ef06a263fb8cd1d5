"""Grad-CAM for a segmenter (as in Vinogradova et al. 2020, Seg-Grad-CAM): the score explained is the sum of a
class's logits over the pixels predicted as that class, so the map shows where the evidence for that region
lies. By default at the deepest encoder stage, where the features are most abstract."""
from __future__ import annotations

import time
from html import escape as e
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ...explain.cam import grad_cam
from ...explain.figures import Cell, overlay_grid
from ...explain.layers import hookable, pick_target, resolve_class, trace
from ...models.unet_small import UNet
from ...report.html import img, table
from .data import tensors
from .loaded import read_rgb
from .pictures import overlay

MAX_CLASSES = 3   # regions explained per image when no class is asked: each costs a backward pass


def region_score(model, cls: int, region: torch.Tensor):
    """The class's logits summed over its region (B, H, W), as a forward function with one output."""
    return lambda x: (model(x)[:, cls].float() * region).sum((1, 2))[:, None]


def explain_images(seg, images, layer: str | None, cls, out: Path) -> dict:
    t0 = time.perf_counter()
    cls_idx = resolve_class(cls, seg.classes)
    paths = [Path(p) for p in (images if isinstance(images, (list, tuple)) else [images])]
    if not paths:
        raise UserError("no images to explain: give one or more image files")
    from ...data.masks import SegImage
    pics = [read_rgb(p) for p in paths]
    x = tensors([SegImage(p.stem, a, np.zeros(a.shape[:2], np.uint8)) for p, a in zip(paths, pics)],
                seg.imgsz)[0].float().div(255).to(seg.dev)
    notes = [f"{p.stem}: {a.shape[1]}x{a.shape[0]}, resized to the segmenter's {seg.imgsz}x{seg.imgsz} for the maps"
             for p, a in zip(paths, pics) if a.shape[:2] != (seg.imgsz, seg.imgsz)]
    out.mkdir(parents=True, exist_ok=True)
    preds, pngs = [], {}
    with hookable(seg.model) as model:
        if layer is None and isinstance(model, UNet):
            layer = f"downs.{len(model.downs) - 1}"
        target, module, where = pick_target(model, x, trace(model, x[:1]), layer)
        with torch.no_grad():
            masks = model(x).float().argmax(1)
        for i, p in enumerate(paths):
            present = [int(c) for c in masks[i].unique() if int(c) != 0]
            counts = {c: int((masks[i] == c).sum()) for c in present}
            asked = [cls_idx] if cls_idx is not None else sorted(present, key=lambda c: -counts[c])[:MAX_CLASSES]
            image = (x[i].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            row = [Cell(overlay(image, masks[i].cpu().numpy().astype(np.uint8), seg.colours), f"{p.stem}: predicted")]
            for c in asked:
                region = (masks[i:i + 1] == c).float()
                if not region.any():
                    row.append(Cell(image, f"{seg.classes[c]}: not predicted here"))
                    continue
                heat = grad_cam(region_score(model, c, region), x[i:i + 1], module, 0, where)[0].cpu().numpy()
                row.append(Cell(image, f"{seg.classes[c]} ({counts.get(c, 0) / region[0].numel():.0%})", heat))
            pngs[f"{p.stem}_regions"] = overlay_grid([row], out / f"{p.stem}_regions.png", cell=2.4)
            preds.append({"image": p.stem, "classes": {seg.classes[c]: round(counts[c] / masks[i].numel(), 4)
                                                       for c in present}})
    return {"task": "segment", "layer": target, "class": None if cls_idx is None else seg.classes[cls_idx],
            "predictions": preds, "notes": notes, "stages": [], "pngs": pngs,
            "seconds": round(time.perf_counter() - t0, 2)}


def page_body(r: dict, out: Path) -> str:
    h = ["<h2>Regions</h2>" + table(["image", "classes (share of the pixels)"], [
        [p["image"], ", ".join(f"{c} {v:.1%}" for c, v in p["classes"].items()) or "background only"]
        for p in r["predictions"]]),
        "<p>For each class, Grad-CAM of its logits summed over the pixels predicted as that class: where the "
        "evidence for that region lies.</p>"]
    h += [f"<h2>{e(p['image'])}</h2>" + img(out / Path(r["pngs"][f"{p['image']}_regions"]).name, p["image"])
          for p in r["predictions"]]
    return "\n".join(h)
