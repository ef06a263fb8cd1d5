"""The pictures: first-layer filters, feature maps stage by stage, and images with a map laid over them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..report.plots import figure, mosaic, save
from .layers import Stage

MAX_STAGES = 16   # feature-map rows: deeper networks show the first, the last and evenly spaced ones between


def as_image(x: torch.Tensor) -> np.ndarray:
    """A float (C, H, W) tensor in [0, 1] as (H, W) or (H, W, 3) for imshow."""
    x = x.detach().float().cpu().clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


@dataclass
class Cell:
    """One picture of a grid: an image, optionally a map laid over it and boxes drawn on it."""
    image: np.ndarray | None
    title: str = ""
    heat: np.ndarray | None = None
    color: str = "black"
    boxes: list = field(default_factory=list)   # (x1, y1, x2, y2, colour)


def _rgb(c: Cell) -> np.ndarray:
    """A cell's picture as (H, W, 3) in [0, 1]: a map in 'jet' at half opacity over the image (in grey at 0.8)."""
    import matplotlib  # matplotlib: only when a figure is drawn
    img = c.image if c.image.ndim == 3 else np.repeat(c.image[..., None] * (0.8 if c.heat is not None else 1), 3, -1)
    if c.heat is None:
        return img
    heat = torch.as_tensor(c.heat, dtype=torch.float32)
    if tuple(heat.shape) != img.shape[:2]:
        heat = torch.nn.functional.interpolate(heat[None, None], size=img.shape[:2], mode="bilinear")[0, 0]
    return img * 0.5 + matplotlib.colormaps["jet"](heat.clamp(0, 1).numpy())[..., :3] * 0.5


def overlay_grid(rows: list[list[Cell]], out: Path, title: str = "", cell: float = 1.7) -> Path:
    """Rows of cells; a map is drawn in 'jet' over the image in grey, red where it is highest."""
    from matplotlib.patches import Rectangle  # matplotlib: only when a figure is drawn
    cols = max(len(r) for r in rows)
    cells = [r[j] if j < len(r) else Cell(None) for r in rows for j in range(cols)]
    fig, ax, places = mosaic([_rgb(c) if c.image is not None else None for c in cells],
                             [c.title for c in cells], [c.color for c in cells], cols, cell, band=0.25, title=title,
                             min_px=96)
    for c, place in zip(cells, places):
        if place is not None:
            x, y, k = place
            for x1, y1, x2, y2, col in c.boxes:
                ax.add_patch(Rectangle((x + x1 * k, y + y1 * k), (x2 - x1) * k, (y2 - y1) * k, fill=False, ec=col,
                                       lw=1.5))
    return save(fig, out)


def filters_grid(weight: torch.Tensor, out: Path, name: str) -> Path:
    """The first convolution's kernels, each scaled on its own around grey = 0 (white: positive weights,
    black: negative); colour kernels shown in colour, others by their mean over input channels."""
    w = weight.detach().float().cpu()[:64]
    w = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    w = w / w.abs().flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None] / 2 + 0.5
    k = tuple(weight.shape[2:])
    fig, _, _ = mosaic([as_image(f) for f in w], cols=min(16, len(w)), cell=0.5, band=0.0, gap=0.1, min_px=24,
                       title=f"first convolution (layer {name}): {len(weight)} filters {k[0]}x{k[1]}"
                             + (" (first 64)" if len(weight) > 64 else ""))
    return save(fig, out)


def pick_stages(stages: list[Stage], limit: int = MAX_STAGES) -> list[Stage]:
    shown = [s for s in stages if len(s.shape) == 3 and s.shape[1] * s.shape[2] > 1]
    if len(shown) <= limit:
        return shown
    keep = sorted({round(i * (len(shown) - 1) / (limit - 1)) for i in range(limit)})
    return [shown[i] for i in keep]


def strongest(fmap: torch.Tensor, k: int) -> list[int]:
    """The k channels of a (C, H, W) map with the highest mean response."""
    return fmap.float().flatten(1).mean(1).topk(min(k, len(fmap))).indices.tolist()


def _mosaic(maps: list[np.ndarray], gap: int) -> np.ndarray:
    """Maps side by side, each scaled to [0, 1] on its own, NaN (drawn blank) between them."""
    h, w = maps[0].shape
    row = np.full((h, len(maps) * (w + gap) - gap), np.nan)
    for j, m in enumerate(maps):
        lo, hi = float(m.min()), float(m.max())
        row[:, j * (w + gap):j * (w + gap) + w] = (m - lo) / (hi - lo) if hi > lo else 0.0
    return row


def feature_maps(image: torch.Tensor, stages: list[Stage], maps: dict[str, torch.Tensor], out: Path,
                 top: int = 8, caption: str = "") -> Path:
    """The input, then one row per stage: its `top` strongest channels, labelled with the stage's output
    shape and receptive field. Each map is scaled on its own (dark: low, bright: high)."""
    import matplotlib  # matplotlib: only when a figure is drawn
    shown = pick_stages(stages)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    fig = figure(top * 1.05 + 2.2, (len(shown) + 1) * 1.12 + 0.3)
    grid = fig.add_gridspec(len(shown) + 1, 2, width_ratios=[2.2, top * 1.05], wspace=0.04, hspace=0.4)

    def label(r, text):
        t = fig.add_subplot(grid[r, 0])
        t.set_axis_off()
        t.text(1, 0.5, text, ha="right", va="center", fontsize=7)

    label(0, (f"{caption}\n" if caption else "") + f"input {'x'.join(map(str, image.shape))}")
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(as_image(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_anchor("W")
    ax.set_axis_off()
    for r, s in enumerate(shown, start=1):
        fmap = maps[s.name][0].float().cpu()
        label(r, f"{s.name}: {s.layer}\n{'x'.join(map(str, s.shape))}, RF {s.rf_text()}")
        channels = strongest(fmap, top)
        gap = max(1, fmap.shape[-1] // 8)
        ax = fig.add_subplot(grid[r, 1])
        ax.imshow(_mosaic([fmap[c].numpy() for c in channels], gap), cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_anchor("W")
        ax.set_axis_off()
        for j, c in enumerate(channels):
            ax.text(j * (fmap.shape[-1] + gap) + fmap.shape[-1] / 2 - 0.5, -0.8, f"ch {c}", ha="center",
                    va="bottom", fontsize=6)
    return save(fig, out)
