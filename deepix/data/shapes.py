"""The built-in detection set `shapes`: coloured shapes on textured backgrounds, made in memory.

Each image comes from its own random stream (seed, stream, index), so a set is the same on every
machine, a longer set begins with the shorter one, and train/val/test (streams 1, 2, 3) never share
an image. Colours are drawn independently of the class, so only the outline tells the classes apart.
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from ..errors import UserError
from .boxes import DetDataset, DetImage

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon")
DEFAULT_CLASSES = ("circle", "square", "triangle", "star", "ring")
BACKGROUNDS = ("texture", "gradient", "plain")
SPLIT_STREAMS = {"train": 1, "val": 2, "test": 3}


class _Object(NamedTuple):
    label: int
    shape: str
    cx: float          # centre in pixels (pixel x spans x..x+1)
    cy: float
    r: float           # radius of the circle the shape is inscribed in
    angle: float       # radians
    q: float           # 0..1, the shape's own variation: ring hole, star notch depth, cross arm width
    colour: np.ndarray | None = None   # None: pick one that stands out from what lies beneath


def _distance(shape: str, u: np.ndarray, v: np.ndarray, r: float, q: float) -> np.ndarray:
    """Signed distance in pixels to the outline (positive inside), in the object's own rotated frame.

    Exact inside, approximate outside: good enough for a one-pixel anti-aliased edge.
    """
    if shape in ("circle", "ring"):
        rho = np.hypot(u, v)
        return r - rho if shape == "circle" else np.minimum(r - rho, rho - (0.4 + 0.25 * q) * r)
    if shape == "cross":
        au, av, w = np.abs(u), np.abs(v), (0.22 + 0.15 * q) * r
        arm = np.sqrt(r * r - w * w)
        return np.maximum(np.minimum(arm - au, w - av), np.minimum(w - au, arm - av))
    rho = np.hypot(u, v)
    if shape == "star":
        k, inner = 5, (0.38 + 0.17 * q) * r
        # fold the plane into the half-sector between a tip (angle 0) and a notch (pi/k): there the
        # outline is the one segment tip->notch, so no union of pieces (and no seams) is needed
        phi = np.arctan2(v, u) % (2 * np.pi / k)
        phi = np.minimum(phi, 2 * np.pi / k - phi)
        px, py = rho * np.cos(phi), rho * np.sin(phi)
        ex, ey = inner * np.cos(np.pi / k) - r, inner * np.sin(np.pi / k)
        return (ex * py - ey * (px - r)) / np.hypot(ex, ey)
    n = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
    # a regular n-gon folded into one edge's sector is a half-plane at the apothem
    phi = np.arctan2(v, u) % (2 * np.pi / n)
    return r * np.cos(np.pi / n) - rho * np.cos(phi - np.pi / n)


def _pick_colour(rng: np.random.Generator, under: np.ndarray, min_contrast: float) -> np.ndarray:
    """A random RGB colour at least `min_contrast` (Euclidean, 0..255) from every pixel it will cover."""
    cand = rng.uniform(0, 255, (12, 3)).astype(np.float32)
    under = under[:: max(1, len(under) // 64)]
    dist = np.sqrt(((cand[:, None] - under[None]) ** 2).sum(-1)).min(1)
    ok = np.flatnonzero(dist >= min_contrast)
    return cand[ok[0] if len(ok) else dist.argmax()]


def _draw(canvas: np.ndarray, objects: list[_Object], rng: np.random.Generator | None = None,
          min_contrast: float = 60.0, max_hidden: float = 0.6, antialias: bool = True):
    """Paint objects in order (later ones on top) into canvas (H, W, 3 float32, changed in place).

    Returns (boxes, labels, dropped, owner): tight boxes around each object's pixels that nothing later
    covers, leaving out objects more than `max_hidden` covered (counted in `dropped`), and which object
    is on top at each pixel (-1: background), from which the segmentation masks are made.
    """
    H, W, _ = canvas.shape
    owner = np.full((H, W), -1, np.int16)   # which object is on top at each pixel
    spans, areas = [], []
    for j, o in enumerate(objects):
        x0, x1 = max(int(o.cx - o.r) - 1, 0), min(int(np.ceil(o.cx + o.r)) + 1, W)
        y0, y1 = max(int(o.cy - o.r) - 1, 0), min(int(np.ceil(o.cy + o.r)) + 1, H)
        dx = np.arange(x0, x1, dtype=np.float32) + 0.5 - o.cx
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - o.cy)[:, None]
        c, s = np.cos(o.angle), np.sin(o.angle)
        d = _distance(o.shape, dx * c + dy * s, dy * c - dx * s, o.r, o.q)
        inside = d >= 0
        patch = canvas[y0:y1, x0:x1]
        colour = o.colour if o.colour is not None else _pick_colour(
            rng, patch[inside] if inside.any() else patch.reshape(-1, 3), min_contrast)
        alpha = np.clip(d + 0.5, 0, 1) if antialias else inside.astype(np.float32)
        patch += alpha[..., None] * (np.asarray(colour, np.float32) - patch)
        owner[y0:y1, x0:x1][inside] = j
        spans.append((x0, x1, y0, y1))
        areas.append(int(inside.sum()))
    boxes, labels, dropped = [], [], 0
    for j, ((x0, x1, y0, y1), area, o) in enumerate(zip(spans, areas, objects)):
        mine = owner[y0:y1, x0:x1] == j
        seen = int(mine.sum())
        if seen == 0 or seen < (1 - max_hidden) * area:
            dropped += 1
            continue
        rows, cols = np.flatnonzero(mine.any(1)), np.flatnonzero(mine.any(0))
        boxes.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
        labels.append(o.label)
    return (torch.from_numpy(np.array(boxes, np.float32).reshape(-1, 4)),
            torch.from_numpy(np.array(labels, np.int64)), dropped, owner)


@lru_cache(maxsize=32)
def _lerp(n: int, k: int) -> np.ndarray:
    """(n, k) weights that stretch k samples linearly over n pixels, the first and last on the edges."""
    t = (np.arange(n) + 0.5) / n * (k - 1)
    return np.maximum(0, 1 - np.abs(t[:, None] - np.arange(k))).astype(np.float32)


def _background(rng: np.random.Generator, H: int, W: int, kind: str) -> np.ndarray:
    base = rng.uniform(40, 215, 3).astype(np.float32)
    if kind == "plain":
        return np.broadcast_to(base, (H, W, 3)).copy()
    # everything smooth is built on a coarse k x k grid and stretched once: linear interpolation
    # reproduces a linear ramp exactly, so the gradient costs nothing extra at full size
    k = int(rng.integers(3, 8)) if kind == "texture" else 2
    g = np.linspace(-0.5, 0.5, k, dtype=np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(a) * g[None, :] + np.sin(a) * g[:, None]
    # a per-channel slope shifts the hue across the image too, so "background" is no single colour
    grid = base + ramp[..., None] * rng.uniform(-50, 50, 3).astype(np.float32)
    if kind == "texture":
        grid += rng.normal(0, 14, (k, k, 3)).astype(np.float32)
    rows = (_lerp(H, k) @ grid.reshape(k, k * 3)).reshape(H, k, 3)
    img = np.ascontiguousarray((rows.transpose(0, 2, 1) @ _lerp(W, k).T).transpose(0, 2, 1))
    if kind == "texture" and rng.random() < 0.4:
        a, period = rng.uniform(0, 2 * np.pi), rng.uniform(5, 20)
        x, y = np.arange(W, dtype=np.float32)[None, :], np.arange(H, dtype=np.float32)[:, None]
        wave = np.sin(2 * np.pi * (np.cos(a) * x + np.sin(a) * y) / period + rng.uniform(0, 2 * np.pi))
        img += rng.uniform(3, 10) * wave[..., None]
    return img


def _settings(size, classes, min_objects, max_objects, min_side, max_side, occlusion, max_hidden,
              empty_fraction, background, noise, min_contrast, antialias) -> dict:
    """The generator's settings, checked, as recorded in DetDataset.info."""
    H, W = (size, size) if isinstance(size, int) else tuple(size)
    classes = tuple(classes)
    bad = [c for c in classes if c not in SHAPES]
    problems = [
        (bad, f"unknown shape(s) {bad}: use some of {', '.join(SHAPES)}"),
        (not classes or len(set(classes)) != len(classes), "classes must be a non-empty list of distinct shapes"),
        (min(H, W) < 8, f"size {size} is too small: use at least 8 pixels"),
        (not 0 <= min_objects <= max_objects,
         f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}"),
        (not 0 < min_side <= max_side <= 1,
         f"need 0 < min_side <= max_side <= 1 (fractions of the image side), got {min_side}, {max_side}"),
        (not 0 <= max_hidden <= 1, f"max_hidden {max_hidden} must be a fraction in [0, 1]"),
        (not 0 <= empty_fraction <= 1, f"empty_fraction {empty_fraction} must be a fraction in [0, 1]"),
        (background not in BACKGROUNDS, f"unknown background {background!r}: use one of {', '.join(BACKGROUNDS)}"),
        (noise < 0 or min_contrast < 0, "noise and min_contrast must be >= 0"),
    ]
    for failed, message in problems:
        if failed:
            raise UserError(f"shapes: {message}")
    return dict(size=(H, W), classes=list(classes), min_objects=min_objects, max_objects=max_objects,
                min_side=min_side, max_side=max_side, occlusion=occlusion, max_hidden=max_hidden,
                empty_fraction=empty_fraction, background=background, noise=noise,
                min_contrast=min_contrast, antialias=antialias)


def _place(rng: np.random.Generator, s: dict) -> list[_Object]:
    H, W = s["size"]
    if rng.random() < s["empty_fraction"]:
        return []
    lo, hi = np.log(s["min_side"] * min(H, W)), np.log(s["max_side"] * min(H, W))
    objects = []
    for _ in range(int(rng.integers(s["min_objects"], s["max_objects"] + 1))):
        # without occlusion, retry until the enclosing circles are apart, and give up on a crowded image
        for _try in range(1 if s["occlusion"] else 30):
            r = np.exp(rng.uniform(lo, hi)) / 2   # log-uniform: as many objects per octave of size
            cx, cy = rng.uniform(r, W - r), rng.uniform(r, H - r)
            if s["occlusion"] or all(np.hypot(cx - o.cx, cy - o.cy) >= r + o.r + 1 for o in objects):
                label = int(rng.integers(len(s["classes"])))
                objects.append(_Object(label, s["classes"][label], cx, cy, r,
                                       rng.uniform(0, 2 * np.pi), rng.random()))
                break
    return objects


def _generate(n: int, seed: int, stream: int, s: dict, masks: bool = False) -> tuple[list[DetImage], int]:
    H, W = s["size"]
    images, dropped = [], 0
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        canvas = _background(rng, H, W, s["background"])
        objects = _place(rng, s)
        boxes, labels, k, owner = _draw(canvas, objects, rng, s["min_contrast"], s["max_hidden"], s["antialias"])
        dropped += k
        if s["noise"] > 0:
            # uniform noise of the same std: a Gaussian costs five times as much to draw
            canvas += (rng.random((H, W, 3), dtype=np.float32) - 0.5) * (s["noise"] * 12 ** 0.5)
        pixels = np.clip(canvas + 0.5, 0, 255).astype(np.uint8).transpose(2, 0, 1)
        images.append(DetImage("", (H, W), boxes, labels, torch.from_numpy(np.ascontiguousarray(pixels)), i))
        if masks:   # class + 1 of the object on top (0: background), hidden objects' visible pixels included
            classes = np.array([o.label + 1 for o in objects] + [0], np.uint8)
            images[-1].mask = torch.from_numpy(classes[owner])
    return images, dropped


def make_shapes(n: int = 1000, size: int | tuple[int, int] = 128, classes=DEFAULT_CLASSES,
                min_objects: int = 1, max_objects: int = 6, min_side: float = 0.1, max_side: float = 0.5,
                occlusion: bool = True, max_hidden: float = 0.6, empty_fraction: float = 0.05,
                background: str = "texture", noise: float = 4.0, min_contrast: float = 60.0,
                antialias: bool = True, seed: int = 0, stream: int = 0) -> list[DetImage]:
    """Make `n` RGB images (uint8, in memory, file "") of random shapes with their boxes.

    classes: shapes to draw, label i is classes[i] (any of SHAPES). An image is empty (background
    only) with probability empty_fraction; otherwise it holds min_objects..max_objects objects whose
    side is min_side..max_side of the image side (log-uniform), rotated, in random colours at least
    min_contrast from whatever they cover. With occlusion, later objects may overlap earlier ones and
    an object more than max_hidden covered is left out of the boxes; without, objects never touch
    (a crowded image gets fewer). min_objects=0 adds images with no objects beyond empty_fraction.
    background: "texture" (gradient, blobs, stripes), "gradient" or "plain" (one flat colour);
    noise: pixel noise std on 0..255 (uniform). `stream` gives independent sets for one seed.
    """
    s = _settings(size, classes, min_objects, max_objects, min_side, max_side, occlusion, max_hidden,
                  empty_fraction, background, noise, min_contrast, antialias)
    if n < 0 or seed < 0 or stream < 0:
        raise UserError(f"shapes: n, seed and stream must be >= 0, got {n}, {seed}, {stream}")
    return _generate(n, seed, stream, s)[0]


def load_shapes(n_train: int = 2000, n_val: int = 500, n_test: int = 500, size: int | tuple[int, int] = 128,
                seed: int = 0, masks: bool = False, **kw) -> DetDataset:
    """The `shapes` detection set: train/val/test splits from make_shapes (same keywords), disjoint and repeatable.
    masks: each image also gets `mask`, uint8 (H, W), its pixels' class + 1 (0 background)."""
    defaults = {k: p.default for k, p in inspect.signature(make_shapes).parameters.items()
                if k not in ("n", "size", "seed", "stream")}
    unknown = sorted(set(kw) - set(defaults))
    if unknown:
        raise UserError(f"shapes: unknown setting(s) {unknown}: use some of {', '.join(defaults)}")
    s = _settings(size, **{**defaults, **kw})
    if min(n_train, n_val, n_test) < 0 or seed < 0:
        raise UserError(f"shapes: split sizes and seed must be >= 0, got {n_train}, {n_val}, {n_test}, seed {seed}")
    splits, occluded = {}, 0
    for name, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        splits[name], k = _generate(n, seed, SPLIT_STREAMS[name], s, masks)
        occluded += k
    info = {"format": "shapes", "source": "generated", "clipped": 0, "dropped": 0, "occluded": occluded,
            "seed": seed, "settings": s, "sizes": {k: len(v) for k, v in splits.items()}}
    return DetDataset("shapes", list(s["classes"]), splits, info)
