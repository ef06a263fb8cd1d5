"""The run's pictures: a GIF of the agent's test episodes (what it saw, side by side, scaled up) and the
training episodes' return, length and success over frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...rl.curves import strips_gif, training_curves
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
    strips = play(greedy(model, dev, bf16), make, GIF_EPISODES, TEST_SEED, keep=GIF_EPISODES)["frames"]
    scale = max(1, 96 // max(strips[0][0].shape[1:]))
    return strips_gif([[frame(o, scale) for o in s] for s in strips], out / "episodes.gif", 200, GIF_STEPS)


def pictures(run: Path, model, make, dev, bf16) -> None:
    out = run / "plots"
    out.mkdir(exist_ok=True)
    episodes_gif(model, make, dev, bf16, out)
    training_curves(run, out)
