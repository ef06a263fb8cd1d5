"""The agents' pictures: training episodes (episodes.csv) over environment frames (return, length and success),
and test episodes side by side as a GIF."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from ..report.plots import DPI


def training_curves(run: Path, out: Path) -> Path | None:
    """Return, episode length and success of the training episodes over environment frames (moving means)."""
    rows = []
    if (run / "episodes.csv").is_file():
        with (run / "episodes.csv").open() as f:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if len(rows) < 2:
        return None
    import matplotlib  # on use: plotting loads only when a run draws
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # on use: plotting loads only when a run draws
    frames = np.array([r["frames"] for r in rows])
    k = max(1, len(rows) // 50)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, key, label in zip(axes, ("return", "length", "success"), ("return", "episode length (steps)", "success")):
        v = np.array([r[key] for r in rows])
        mean = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(frames[k - 1:], mean)
        ax.set_xlabel("environment frames")
        ax.set_title(f"training episodes: {label}" + (f" (mean of {k})" if k > 1 else ""))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "episodes.png"
    fig.savefig(path, dpi=min(90, DPI))
    plt.close(fig)
    return path


def strips_gif(strips: list[list[np.ndarray]], path: Path, ms: int, most: int | None = None) -> Path:
    """Episodes side by side, one GIF frame per step (an ended episode holds its last frame): `strips` holds
    each episode's RGB uint8 frames, all of one size; at most `most` frames."""
    from PIL import Image  # on use: only a finishing run writes GIFs
    pad = np.full((strips[0][0].shape[0], 4, 3), 255, np.uint8)
    frames = []
    for t in range(min(most or 10 ** 9, max(len(s) for s in strips))):
        tiles = []
        for s in strips:
            tiles += [s[min(t, len(s) - 1)], pad]
        frames.append(np.concatenate(tiles[:-1], 1))
    first, *rest = (Image.fromarray(f) for f in frames)
    first.save(path, save_all=True, append_images=rest, duration=ms, loop=0)
    return path
