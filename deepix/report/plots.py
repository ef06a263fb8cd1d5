"""The report's PNG plots, drawn with matplotlib's Agg canvas."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
import torch

TRAIN, VAL, TEST = "#1f77b4", "#ff7f0e", "#2ca02c"
DPI = int(os.environ.get("DEEPIX_PLOT_DPI", "110"))  # the reports' figures; lower is smaller and faster


def figure(w: float, h: float) -> Figure:
    # Figure + Agg canvas instead of pyplot: no global state, safe from worker threads.
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    return out


def tidy(ax, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def rotation(labels: list[str], room: float) -> dict:
    # Slant tick labels only when, side by side, they would not fit in `room` characters.
    slant = sum(len(str(t)) + 2 for t in labels) > room
    return {"rotation": 45 if slant else 0, "ha": "right" if slant else "center"}


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(metrics_csv: Path) -> list[dict[str, float]]:
    """The rows of metrics.csv as floats (nan where a value is missing)."""
    with open(metrics_csv, newline="") as f:
        return [{k: _num(v) for k, v in row.items() if k} for row in csv.DictReader(f)]


def plot_curves(metrics_csv: Path, out_dir: Path, best_epoch: int | None = None) -> list[Path]:
    """Write loss.png, accuracy.png and lr.png; nothing when there are fewer than two epochs."""
    rows = read_metrics(metrics_csv)
    if len(rows) < 2:
        return []
    col = lambda key: np.array([r.get(key, math.nan) for r in rows])  # noqa: E731
    epochs, val_loss = col("epoch"), col("val_loss")
    if best_epoch is None and np.isfinite(val_loss).any():
        best_epoch = int(epochs[np.nanargmin(val_loss)])
    out_dir = Path(out_dir)
    written = []
    # every metric the run measured (accuracy, psnr, ...) gets its own plot between loss and lr
    metrics = []
    for key in rows[0]:
        name = key.split("_", 1)[1] if key.startswith(("train_", "val_")) else None
        if name and name != "loss" and name not in metrics:
            metrics.append(name)
    panels = [("loss", "loss", (("train", "train_loss", TRAIN), ("val", "val_loss", VAL)))]
    panels += [(m, m, (("train", f"train_{m}", TRAIN), ("val", f"val_{m}", VAL))) for m in metrics]
    panels.append(("lr", "learning rate", (("lr", "lr", TRAIN),)))
    for name, ylabel, series in panels:
        fig = figure(6, 3.4)
        ax = fig.add_subplot()
        for label, key, color in series:
            y = col(key)
            if np.isfinite(y).any():
                ax.plot(epochs, y, marker="o", ms=3, lw=1.6, color=color, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        if name == "accuracy":
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        lr = col("lr")
        # Warm-up and one-cycle span several decades; a linear axis flattens them to zero.
        if name == "lr" and np.nanmin(lr) > 0 and np.nanmax(lr) / np.nanmin(lr) > 20:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        tidy(ax, "epoch", ylabel)
        ax.legend(frameon=False, fontsize=8)
        written.append(save(fig, out_dir / f"{name}.png"))
    return written


def plot_confusion(confusion: list[list[int]], classes: list[str], out: Path) -> Path:
    """Confusion matrix coloured by row (recall per true class), counts written when readable."""
    cm = np.asarray(confusion, dtype=float)
    k = len(classes)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = min(max(4.0, 0.45 * k + 2), 14)
    fig = figure(side + 1, side)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 50:
        ax.set_xticks(range(k), classes, fontsize=8, **rotation(classes, side * 8))
        ax.set_yticks(range(k), classes, fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8 if k <= 12 else 6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return save(fig, out)


def mosaic(pictures: list, titles=(), colors=(), cols: int = 8, cell: float = 1.3, band: float = 0.2,
           gap: float = 0.06, title: str = "", min_px: int = 64):
    """Pictures ((H, W) grey or (H, W, 3) in [0, 1]; None leaves its place empty) in rows of `cols`, each centred
    in a cell `cell` inches wide under a `band`-inch strip for its title, drawn as one image in one Axes: a subplot
    per picture cost matplotlib about a second a figure. Pictures narrower than `min_px` are blown up (nearest)
    so that the layout has pixels. Returns (figure, axes, places): each picture's canvas (x, y) and scale, or None."""
    shown = [p for p in pictures if p is not None]
    k = max(1, math.ceil(min_px / max(p.shape[1] for p in shown)))
    h, w = max(p.shape[0] for p in shown) * k, max(p.shape[1] for p in shown) * k
    per_inch = w / cell
    gap_px = max(1, round(gap * per_inch))
    band_px = max(gap_px, round(band * per_inch))
    rows = math.ceil(len(pictures) / cols)
    canvas = np.ones((rows * (band_px + h), min(cols, len(pictures)) * (w + gap_px) - gap_px, 3))
    places = []
    for i, pic in enumerate(pictures):
        if pic is None:
            places.append(None)
            continue
        r, c = divmod(i, cols)
        pic = pic.repeat(k, 0).repeat(k, 1)
        y = r * (band_px + h) + band_px + (h - pic.shape[0]) // 2
        x = c * (w + gap_px) + (w - pic.shape[1]) // 2
        canvas[y:y + pic.shape[0], x:x + pic.shape[1]] = pic[..., None] if pic.ndim == 2 else pic[..., :3]
        places.append((x, y, k))
    top = 0.3 if title else 0.0
    fig_h = canvas.shape[0] / per_inch + top
    fig = figure(canvas.shape[1] / per_inch, fig_h)
    ax = fig.add_axes((0, 0, 1, 1 - top / fig_h))
    ax.imshow(canvas.clip(0, 1), interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for i, t in enumerate(list(titles)[:len(pictures)]):
        r, c = divmod(i, cols)
        ax.text(c * (w + gap_px) + w / 2, r * (band_px + h) + band_px * 0.55, str(t), fontsize=7,
                color=colors[i] if i < len(colors) and colors[i] else "black", ha="center", va="center")
    if title:
        fig.text(0.5, 1 - top / 2 / fig_h, title, fontsize=9, ha="center", va="center")
    return fig, ax, places


def image_grid(images: np.ndarray, titles: list[str], out: Path, cols: int = 8,
               title_colors: list[str] | None = None) -> Path:
    """A grid of uint8 (N,H,W) or (N,H,W,3) images with small titles; 'none' when empty."""
    images = np.asarray(images)
    if len(images) == 0:
        fig = figure(2, 0.6)
        fig.text(0.5, 0.5, "none", ha="center", va="center", color="0.4")
        return save(fig, out)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    fig, _, _ = mosaic(list(images / 255.0), titles, title_colors or (), cols=max(1, min(cols, len(images))),
                       gap=0.08)
    return save(fig, out)


def plot_class_counts(counts: dict[str, list[int]], classes: list[str], out: Path) -> Path:
    """Grouped bars of images per class in train, val and test."""
    splits = [(s, c) for s, c in (("train", TRAIN), ("val", VAL), ("test", TEST)) if counts.get(s)]
    k = len(classes)
    x = np.arange(k)
    width = 0.8 / max(len(splits), 1)
    fig = figure(min(max(5.0, 0.35 * k + 2), 16), 3.4)
    ax = fig.add_subplot()
    for i, (split, color) in enumerate(splits):
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, counts[split], width, label=split, color=color)
    ax.set_xticks(x, classes, fontsize=8, **rotation(classes, fig.get_figwidth() * 10))
    tidy(ax, "", "images")
    ax.grid(axis="x", visible=False)
    ax.legend(frameon=False, fontsize=8)
    return save(fig, out)


def restore_panel(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray, out: Path, name: str,
                  restored_label: str, scale: int = 1, input_psnr: float | None = None) -> Path:
    """Degraded / restored / clean / |error|, whole and as a zoomed crop, for one image (HxWxC in [0, 1])."""
    def show(a):
        a = np.clip(a, 0, 1)
        return a[..., 0] if a.shape[-1] == 1 else a

    if scale > 1:  # the small input drawn at the output's size, pixels as blocks
        degraded = np.repeat(np.repeat(degraded, scale, 0), scale, 1)[:clean.shape[0], :clean.shape[1]]
    err = np.abs(restored - clean).mean(axis=-1)
    h, w = clean.shape[:2]
    side = max(16, min(h, w) // 4)
    # zoom where the restoration still errs most, so the crop shows what is left to gain
    blur = err[: h - h % side, : w - w % side].reshape(h // side, side, w // side, side).mean(axis=(1, 3))
    r, c = np.unravel_index(np.argmax(blur), blur.shape)
    crop = (slice(r * side, (r + 1) * side), slice(c * side, (c + 1) * side))
    vmax = max(float(err.max()), 1e-6)
    labels = [f"degraded{'' if input_psnr is None else f' ({input_psnr:.2f} dB)'}", f"restored ({restored_label})",
              "clean", "|error|"]
    fig = figure(12, 6.4)
    for row, region in enumerate(((slice(None), slice(None)), crop)):
        for col, (label, img) in enumerate(zip(labels, (degraded, restored, clean, err))):
            ax = fig.add_subplot(2, 4, row * 4 + col + 1)
            if col == 3:
                ax.imshow(img[region], cmap="magma", vmin=0, vmax=vmax)
            else:
                ax.imshow(show(img[region]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(label if row == 0 else f"{label.split(' ')[0]} (zoom)", fontsize=9)
            ax.axis("off")
            if row == 0 and col == 0:
                ax.add_patch(_rect(crop))
    fig.suptitle(name, fontsize=11)
    return save(fig, out)


def _rect(crop):
    from matplotlib.patches import Rectangle  # matplotlib: only when a figure is drawn
    (rs, cs) = crop
    return Rectangle((cs.start, rs.start), cs.stop - cs.start, rs.stop - rs.start, fill=False, ec="#ff7f0e", lw=1.5)


COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#800000",
          "#469990", "#000075", "#808000"]


def draw_boxes(image, boxes, labels, classes: list[str], scores=None, side: int = 320):
    """uint8 (3, H, W) with the boxes drawn, labelled "class score", enlarged so the longer side is
    at least `side` (labels stay readable on small images). Pillow's own font: nothing downloaded."""
    from torchvision.utils import draw_bounding_boxes  # on use: torchvision's import costs seconds
    x = image if isinstance(image, torch.Tensor) else torch.as_tensor(image)
    k = max(1, math.ceil(side / max(x.shape[1:])))
    if k > 1:
        x = x.repeat_interleave(k, 1).repeat_interleave(k, 2)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4) * k
    labels = torch.as_tensor(labels).reshape(-1).tolist()
    text = [classes[c] if scores is None else f"{classes[c]} {float(s):.2f}"
            for c, s in zip(labels, scores if scores is not None else labels)]
    if not len(boxes):
        return x
    from matplotlib import font_manager  # matplotlib: only when a figure is drawn
    font = font_manager.findfont("DejaVu Sans")  # ships inside matplotlib
    return draw_bounding_boxes(x, boxes, text, colors=[COLORS[c % len(COLORS)] for c in labels], width=2,
                               font=font, font_size=max(10, max(x.shape[1:]) // 28))


def detection_grid(images: list, truth: list, preds: list[dict], classes: list[str], out: Path,
                   conf: float = 0.25) -> Path:
    """Each image twice, ground truth (left) beside the detections scoring at least `conf` (right)."""
    n = len(images)
    cols = 4 if n > 2 else 2 * n
    pairs_per_row = cols // 2
    rows = max(1, math.ceil(n / pairs_per_row))
    fig = figure(cols * 2.0, rows * 2.2)
    for i, (im, t, p) in enumerate(zip(images, truth, preds)):
        keep = p["scores"] >= conf
        for j, (drawn, title) in enumerate(((draw_boxes(im, t.boxes, t.labels, classes), "truth"),
                                            (draw_boxes(im, p["boxes"][keep], p["labels"][keep], classes,
                                                        p["scores"][keep]), f"found ({int(keep.sum())})"))):
            ax = fig.add_subplot(rows, cols, 2 * i + j + 1)
            ax.imshow(drawn.permute(1, 2, 0).numpy())
            ax.set_axis_off()
            ax.set_title(title, fontsize=8, pad=2)
    fig.subplots_adjust(wspace=0.05, hspace=0.15)
    return save(fig, out)


def plot_learning_curve(points: list[dict], out: Path, metric: str = "test accuracy",
                        extrapolated: float | None = None) -> Path:
    """Accuracy against training images (log2 axis: one step per doubling), each point labelled with its share;
    `extrapolated` (the accuracy expected at twice the data) is drawn dashed."""
    fig = figure(6, 3.6)
    ax = fig.add_subplot()
    n = [p["images"] for p in points]
    acc = [p["accuracy"] for p in points]
    ax.plot(n, acc, marker="o", lw=1.8, color=TEST, label=metric)
    for p in points:
        ax.annotate(f"{100 * p['fraction']:g}%", (p["images"], p["accuracy"]), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=8)
    if extrapolated is not None:
        ax.plot([n[-1], 2 * n[-1]], [acc[-1], extrapolated], ls="--", marker="o", markevery=[1], mfc="white",
                color=TEST, alpha=0.7, label="twice the data (extrapolated)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    tidy(ax, "training images", metric)
    ax.legend(frameon=False, fontsize=8)
    return save(fig, out)


def embedding_map(f, y, classes: list[str], out: Path, title: str, wrong=None, iterations: int = 500) -> Path:
    """t-SNE of (N, D) features (L2-normalised first: their directions, not their lengths), coloured by
    class; `wrong` (a boolean mask) rings the misclassified points in black. 500 iterations, not scikit-learn's
    1,000: on 1,000 digits they took half the time for the same map (kNN accuracy on the map 0.945 against
    0.946, silhouette 0.50 against 0.52; benchmarks/tsne_iterations.py)."""
    from sklearn.manifold import TSNE  # scikit-learn takes ~1 s to import: only this path pays it
    f = torch.nn.functional.normalize(torch.nan_to_num(torch.as_tensor(f).float()), dim=1).numpy()
    y = np.asarray(y)
    fig = figure(6, 5)
    ax = fig.add_subplot()
    if len(np.unique(f.round(4), axis=0)) < 3:
        # a network whose units have all died maps every image to the same point: t-SNE has nothing to place
        # (and scikit-learn's Barnes-Hut tree crashes the process on such input)
        ax.text(0.5, 0.5, f"all {len(f):,} images have the same features:\nthe network has collapsed "
                "(dead units; lower the learning rate)", ha="center", va="center", fontsize=10)
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        return save(fig, out)
    xy = TSNE(2, init="pca", perplexity=min(30, len(f) // 4), random_state=0, max_iter=iterations).fit_transform(f)
    for c, name in enumerate(classes):
        pts = xy[y == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, label=name)
    if wrong is not None and np.asarray(wrong).any():
        pts = xy[np.asarray(wrong)]
        ax.scatter(pts[:, 0], pts[:, 1], s=28, facecolors="none", edgecolors="black", linewidths=0.8,
                   label=f"misclassified ({len(pts)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    if len(classes) <= 20:
        for handle in ax.legend(fontsize=7, loc="best").legend_handles:
            handle.set_sizes([25])
    return save(fig, out)
