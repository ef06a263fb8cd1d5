"""Do the maps mean something? Two checks, run by the tests and benchmarks/explain.py:

- cascading randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-draw the weights of
  the layers from the output down, one more layer at a time; maps that explain the trained model must
  change (their rank correlation with the trained model's maps must fall), or they only show the input;
- localisation: on images whose class is decided by a small patch at a random place (another, unrelated
  patch elsewhere as a decoy), the Grad-CAM peak must fall on the deciding patch.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .cam import grad_cam, integrated_gradients
from .layers import hookable, is_conv, named_layers, pick_target, trace

PATTERNS = {   # 6x6 marks, one per class; the decoy is none of them
    "ring": ["######", "#....#", "#....#", "#....#", "#....#", "######"],
    "plus": ["..##..", "..##..", "######", "######", "..##..", "..##.."],
    "cross": ["#....#", ".#..#.", "..##..", "..##..", ".#..#.", "#....#"],
    "bars": ["######", "......", "######", "......", "######", "......"],
}
DECOY = ["......", ".####.", ".####.", ".####.", ".####.", "......"]


def _mask(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows])


def patch_set(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n noisy grey images (uint8 (n, size, size)), labels 0..4, each image's deciding patch as a box
    (x1, y1, x2, y2; x2 and y2 exclusive; -1 for class 4) and its decoy's box.

    A patch is an 8x8 dark tile with a bright 6x6 mark (the margin keeps the mark's outer edges, which edge
    detectors answer to from either side, on the tile). Classes 0..3 are the four marks; class 4, "none", has
    no mark, so that no mark's class can be told by the absence of the other three (a network that did so
    would rightly be shown looking at the noise). Every image also holds a decoy: a tile with a mark of no
    class, at a random place that does not overlap."""
    rng = np.random.default_rng(seed)
    marks = [_mask(p) for p in PATTERNS.values()]
    decoy = _mask(DECOY)
    x = rng.integers(0, 110, size=(n, size, size)).astype(np.uint8)
    y = rng.integers(0, len(marks) + 1, size=n)
    boxes, decoys = np.full((n, 4), -1, dtype=np.int64), np.zeros((n, 4), dtype=np.int64)
    k = marks[0].shape[0] + 2
    for i in range(n):
        while True:
            (r1, c1), (r2, c2) = rng.integers(0, size - k + 1, size=(2, 2))
            if abs(int(r1) - int(r2)) >= k or abs(int(c1) - int(c2)) >= k:
                break
        tiles = [((r2, c2), decoy)] + ([((r1, c1), marks[y[i]])] if y[i] < len(marks) else [])
        for (r, c), mark in tiles:
            tile = np.zeros((k, k), dtype=np.uint8)
            tile[1:-1, 1:-1][mark] = rng.integers(200, 256)
            x[i, r:r + k, c:c + k] = tile
        decoys[i] = (c2, r2, c2 + k, r2 + k)
        if y[i] < len(marks):
            boxes[i] = (c1, r1, c1 + k, r1 + k)
    return x, y, boxes, decoys


def peak_on_patch(maps: torch.Tensor, boxes: np.ndarray, margin: int = 0) -> np.ndarray:
    """For each (H, W) map, whether its highest pixel lies in its box (grown by `margin` pixels)."""
    w = maps.shape[-1]
    peak = maps.flatten(1).argmax(1).numpy()
    r, c = peak // w, peak % w
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    return (c >= x1 - margin) & (c < x2 + margin) & (r >= y1 - margin) & (r < y2 + margin)


def localisation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, boxes: np.ndarray) -> dict:
    """Over the images with a deciding patch (box x1 >= 0): the share whose Grad-CAM peak (for the true
    class, at the default layer) lies on the patch, also within 2 pixels of it, and the model's accuracy."""
    keep = torch.from_numpy(boxes[:, 0] >= 0)
    x, y, boxes = x[keep], y[keep], boxes[keep.numpy()]
    with hookable(model) as m:
        tr = trace(m, x)
        name, layer, where = pick_target(m, x, tr, None)
        maps = grad_cam(m, x, layer, y, where).cpu()
    on = peak_on_patch(maps, boxes)
    return {"layer": name, "images": len(x), "share": float(on.mean()),
            "share_within_2px": float(peak_on_patch(maps, boxes, 2).mean()),
            "accuracy": float((tr.output.argmax(1).cpu() == y.cpu()).float().mean()), "maps": maps, "on": on,
            "kept": keep}


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the rank correlation of two (N, H, W) map sets; 0 for a flat map (no ranking)."""
    from scipy.stats import rankdata  # scipy: only this path needs it
    out = []
    for p, q in zip(a.flatten(1).numpy(), b.flatten(1).numpy()):
        if np.ptp(p) == 0 or np.ptp(q) == 0:
            out.append(0.0)
        else:
            out.append(float(np.corrcoef(rankdata(p), rankdata(q))[0, 1]))
    return float(np.mean(out))


def _randomise(m: nn.Module, g: torch.Generator) -> None:
    """New weights drawn at the old ones' scale: the layer keeps its size and its signal's magnitude."""
    with torch.no_grad():
        for p in m.parameters(recurse=False):
            p.copy_(torch.randn(p.shape, generator=g) * (p.std() if p.numel() > 1 else p.abs()))


def cascading_randomisation(model: nn.Module, x: torch.Tensor, targets, methods=("grad-cam",),
                            seed: int = 0) -> list[dict]:
    """Rank correlation of each method's maps with the trained model's, as the layers with weights (conv,
    linear) are randomised from the output down, cumulatively: one row per step, the first row the trained
    model itself (1.0)."""
    g = torch.Generator().manual_seed(seed)
    x = x.cpu()
    with hookable(copy.deepcopy(model).cpu().float()) as m:
        name, _, where = pick_target(m, x, trace(m, x), None)
        layers = dict(named_layers(m))
        weighted = [(n, mod) for n, mod in named_layers(m)
                    if (is_conv(mod) or isinstance(mod, nn.Linear) or type(mod).__name__ == "Dense")
                    and any(True for _ in mod.parameters(recurse=False))]

        def maps():
            out = {}
            if "grad-cam" in methods:
                out["grad-cam"] = grad_cam(m, x, layers[name], targets, where)
            if "integrated-gradients" in methods:
                out["integrated-gradients"] = integrated_gradients(m, x, targets)
            return out

        base = maps()
        rows = [{"randomised": "none", "layer": name, **{k: 1.0 for k in base}}]
        for n, mod in reversed(weighted):
            _randomise(mod, g)
            now = maps()
            rows.append({"randomised": n, "layer": name, **{k: spearman(base[k], now[k]) for k in base}})
    return rows
