"""The run's pictures: a GIF of search episodes on test images and the histogram of steps per found object."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...report.plots import DPI
from ...rl.curves import training_curves
from . import baselines
from .env import Locate
from .model import agent

GIF_IMAGES = 4


def search_gif(model, images, dev, bf16, out: Path) -> Path:
    env = Locate(images.test)
    policy = agent(model, dev, bf16)
    strips = []
    for ep in baselines.episodes(env, GIF_IMAGES, seed=4):
        env.reset(options=ep)
        frames = [env.render()]
        done = truncated = False
        while not (done or truncated):
            _, _, done, truncated, _ = env.step(policy(env))
            frames.append(env.render())
        strips.append(frames)
    side = max(f[0].shape[0] for f in strips)
    longest = max(len(f) for f in strips)
    frames = []
    for t in range(longest):
        tiles = []
        for s in strips:
            img = s[min(t, len(s) - 1)]
            pad = np.full((side, img.shape[1] + 4, 3), 255, np.uint8)
            pad[:img.shape[0], :img.shape[1]] = img
            tiles.append(pad)
        frames.append(np.concatenate(tiles, 1))
    path = out / "search.gif"
    first, *rest = (Image.fromarray(f) for f in frames)
    first.save(path, save_all=True, append_images=rest, duration=200, loop=0)
    return path


def steps_histogram(test: dict, out: Path) -> Path | None:
    steps = test["searchers"]["agent"].get("search_steps") or []
    if not steps:
        return None
    import matplotlib  # on use: plotting loads only when a run draws
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # on use: plotting loads only when a run draws
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.hist(steps, bins=np.arange(0.5, max(steps) + 1.5), color="#2e6bd8")
    ax.set_xlabel("steps from the whole image to the trigger")
    ax.set_ylabel("objects found")
    ax.set_title(f"{len(steps)} objects found on the test images, median {np.median(steps):.0f} steps")
    fig.tight_layout()
    path = out / "steps.png"
    fig.savefig(path, dpi=min(90, DPI))
    plt.close(fig)
    return path


def pictures(run: Path, model, images, test: dict, dev, bf16) -> None:
    out = run / "plots"
    out.mkdir(exist_ok=True)
    search_gif(model, images, dev, bf16, out)
    steps_histogram(test, out)
    training_curves(run, out)
