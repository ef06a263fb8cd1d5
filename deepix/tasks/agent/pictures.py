"""The run's pictures: a GIF of the agent's test episodes (what it saw, side by side, scaled up) and the
training episodes' return, length and success over frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...rl.curves import training_curves
from .play import TEST_SEED, greedy, play

GIF_EPISODES = 4
GIF_STEPS = 200   # frames at most


def frame(obs: np.ndarray, scale: int) -> np.ndarray:
    """A (C, H, W) observation as an RGB uint8 picture, each pixel scale x scale."""
    a = obs.astype(np.float32)
    if obs.dtype != np.uint8:   # float observations: stretched to the picture's own range
        a = 255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-6)
    a = a[:3] if a.shape[0] >= 3 else np.repeat(a[:1], 3, 0)
    return a.clip(0, 255).astype(np.uint8).transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)


def episodes_gif(model, make, dev, bf16, out: Path) -> Path:
    from PIL import Image  # on use: only a finishing run writes GIFs
    r = play(greedy(model, dev, bf16), make, GIF_EPISODES, TEST_SEED, keep=GIF_EPISODES)
    strips = r["frames"]
    h, w = strips[0][0].shape[1:]
    scale = max(1, 96 // max(h, w))
    pad = np.full((h * scale, 4, 3), 255, np.uint8)
    frames = []
    for t in range(min(GIF_STEPS, max(len(s) for s in strips))):
        tiles = []
        for s in strips:
            tiles += [frame(s[min(t, len(s) - 1)], scale), pad]
        frames.append(np.concatenate(tiles[:-1], 1))
    path = out / "episodes.gif"
    first, *rest = (Image.fromarray(f) for f in frames)
    first.save(path, save_all=True, append_images=rest, duration=200, loop=0)
    return path


def pictures(run: Path, model, make, dev, bf16) -> None:
    out = run / "plots"
    out.mkdir(exist_ok=True)
    episodes_gif(model, make, dev, bf16, out)
    training_curves(run, out)
