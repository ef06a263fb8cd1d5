"""The pictures of a generation run: sample grids, the training GIF, loss and coverage plots,
nearest training neighbours and latent interpolations. Images are (N, C, H, W) in [0, 1]."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from ...report.plots import TEST, TRAIN, VAL, figure, save, tidy
from torchvision.utils import make_grid

MAX_FRAMES = 60
LAST_FRAME_HOLD = 6  # the final grid stays this many frames' time before the GIF loops
GIF_SIDE, GIF_COLORS = 320, 32  # GIF compresses poorly: ~20 kB a frame at this size, not ~60 kB at 2x


def _tensor(images) -> torch.Tensor:
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    return x.detach().float().cpu().clamp(0, 1)


def _hw(image: torch.Tensor) -> np.ndarray:
    """One (C, H, W) image as H x W (gray) or H x W x 3 for imshow."""
    a = image.numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def grid(images, nrow: int) -> np.ndarray:
    """The images tiled nrow to a row with a 2-px dark border, as uint8 H x W (gray) or H x W x 3."""
    x = _tensor(images)
    g = make_grid(x, nrow=nrow, padding=2, pad_value=0.15)
    g = (g * 255).round().to(torch.uint8).numpy()
    return g[0] if x.shape[1] == 1 else g.transpose(1, 2, 0)


def save_grid(images, out: Path, nrow: int, scale: int = 2) -> Path:
    """The grid as a PNG, each pixel drawn as a scale x scale block so small digits stay visible."""
    g = grid(images, nrow)
    g = np.repeat(np.repeat(g, scale, 0), scale, 1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(g).save(out)
    return out


def _font(size: int) -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager  # matplotlib: only when a figure is drawn
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)  # ships inside matplotlib


def progress_gif(frames: list[Path], out: Path, ms: int = 300) -> Path:
    """An animated GIF of the per-epoch grids (epoch_012.png, ...), each labelled with its epoch;
    at most MAX_FRAMES evenly spaced ones, the first and last always in, the last held longer.
    Up-scaled grids are brought back to about GIF_SIDE pixels wide to keep the report small."""
    frames = [Path(f) for f in frames]
    keep = sorted(set(np.linspace(0, len(frames) - 1, min(len(frames), MAX_FRAMES)).round().astype(int)))
    font, strip = _font(12), 18
    pictures = []
    for i in keep:
        im = Image.open(frames[i]).convert("RGB")
        f = max(1, round(im.width / GIF_SIDE))
        im = im.resize((im.width // f, im.height // f), Image.NEAREST)
        canvas = Image.new("RGB", (im.width, im.height + strip), (30, 30, 30))
        canvas.paste(im, (0, strip))
        digits = re.findall(r"\d+", frames[i].stem)
        ImageDraw.Draw(canvas).text((4, 2), f"epoch {int(digits[-1])}" if digits else frames[i].stem,
                                    fill=(240, 240, 240), font=font)
        pictures.append(canvas.quantize(GIF_COLORS, dither=Image.Dither.NONE))
    durations = [ms] * (len(pictures) - 1) + [ms * LAST_FRAME_HOLD]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return out


def _col(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(r.get(key, math.nan)) if r.get(key) is not None else math.nan for r in rows])


def plot_gan_losses(rows: list[dict], out: Path) -> Path | None:
    """Up to three panels: the losses (D and G, or the diffusion loss), D's mean score on real vs
    generated images, and val FID; None when there are no rows."""
    if not rows:
        return None
    epochs = _col(rows, "epoch")
    has = lambda k: np.isfinite(_col(rows, k)).any()  # noqa: E731
    losses = [(k, label, c) for k, label, c in (("train_d_loss", "D", VAL), ("train_g_loss", "G", TRAIN))
              if has(k)] or [(k, "loss", TRAIN) for k in ("train_loss",) if has(k)]
    panels = [("loss", losses), ("D's mean score", [(k, label, c) for k, label, c in (
        ("train_d_real", "real", TEST), ("train_d_fake", "generated", VAL)) if has(k)]),
        ("val FID", [("val_fid", "FID", VAL)] if has("val_fid") else [])]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig = figure(4.2 * len(panels), 3.2)
    for i, (ylabel, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, label, color in series:
            y = _col(rows, key)
            ok = np.isfinite(y)
            ax.plot(epochs[ok], y[ok], marker="o", ms=3, lw=1.5, color=color, label=label)
        y = _col(rows, series[0][0])
        y = y[np.isfinite(y)]
        if ylabel == "val FID" and y.min() > 0 and y.max() / y.min() > 10:
            ax.set_yscale("log")
        tidy(ax, "epoch", ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return save(fig, out)


def plot_coverage(coverage: list[float], classes: list[str], out: Path, floor: float = 0.05) -> Path:
    """Bars of the share of generated samples the classifier puts in each class, with the uniform
    share and the floor below which a class counts as dropped."""
    from matplotlib.ticker import PercentFormatter  # matplotlib: only when a figure is drawn
    k = len(coverage)
    fig = figure(min(max(4.5, 0.4 * k + 2), 14), 3.2)
    ax = fig.add_subplot()
    ax.bar(range(k), coverage, color=[VAL if c < floor else TRAIN for c in coverage])
    ax.axhline(1 / k, color="0.3", ls="--", lw=1, label=f"uniform ({100 / k:.1f}%)")
    ax.axhline(floor, color="#d62728", ls=":", lw=1.2, label=f"{100 * floor:.0f}% (dropped below)")
    ax.set_xticks(range(k), [str(c) for c in classes], fontsize=8)
    ax.set_ylim(0, 1.35 * max(max(coverage), 1 / k))  # room for the legend above the bars
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    tidy(ax, "class (as the classifier labels the samples)", "share of samples")
    ax.grid(axis="x", visible=False)
    ax.legend(frameon=False, fontsize=8, ncol=2, loc="upper center")
    return save(fig, out)


def nearest(samples_feats, train_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices) of each sample's k nearest training items by Euclidean distance, nearest first."""
    d = torch.cdist(torch.as_tensor(samples_feats).float(), torch.as_tensor(train_feats).float())  # (n, len(train))
    return d.topk(min(k, d.shape[1]), dim=1, largest=False)


def neighbours(samples, train, samples_feats, train_feats, out: Path, k: int = 5, n: int = 8,
               space: str = "the classifier's features") -> Path:
    """For each of the first n samples, the sample then its k nearest training images by Euclidean
    distance in the given feature space, distances written under them."""
    samples = _tensor(samples[:n])
    dist, idx = nearest(samples_feats[:len(samples)], train_feats, k)
    fig = figure(1.1 * (k + 1), 1.25 * len(samples) + 0.4)
    for r in range(len(samples)):
        shown = [(samples[r], "sample" if r == 0 else "", None)]
        shown += [(_tensor(train[int(j)][None])[0], "nearest" if r == 0 and c == 0 else "", float(dist[r, c]))
                  for c, j in enumerate(idx[r])]
        for c, (im, title, dd) in enumerate(shown):
            ax = fig.add_subplot(len(samples), k + 1, r * (k + 1) + c + 1)
            ax.imshow(_hw(im), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
            if title:
                ax.set_title(title, fontsize=8, pad=2)
            if dd is not None:
                ax.text(0.5, -0.04, f"{dd:.2f}", transform=ax.transAxes, ha="center", va="top", fontsize=6,
                        color="0.35")
    fig.suptitle(f"Nearest training images by Euclidean distance in {space}", fontsize=9)
    fig.subplots_adjust(wspace=0.06, hspace=0.3, top=1 - 0.45 / fig.get_figheight())
    return save(fig, out)


def interpolation(rows_of_images, out: Path) -> Path:
    """One row per latent path (images from its start to its end), labelled "latent interpolation"."""
    rows = [_tensor(r) for r in rows_of_images]
    g = grid(torch.cat(rows), nrow=len(rows[0]))
    fig = figure(max(3.0, g.shape[1] / 40), g.shape[0] / 40 + 0.4)
    ax = fig.add_subplot()
    ax.imshow(g, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title("latent interpolation: each row goes from one latent to another, left to right", fontsize=9)
    return save(fig, out)
