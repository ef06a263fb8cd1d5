"""The agents' training episodes (episodes.csv) drawn over environment frames: return, length and success."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
