"""The run's pictures: the learnt value as a heat map with the policy's arrows over test maps, a GIF of
the agent's episodes on test maps, and the training episodes' return, length and success over frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...engine.fit import autocast
from ...report.plots import DPI
from ...rl.curves import strips_gif, training_curves
from . import baselines
from .env import GridWorld
from .planner import MOVES

GIF_EPISODES = 6


def answers(model, env: GridWorld, goal, dev, bf16):
    """The model's (moves (H, W) argmax, value (H, W)) on env's current map towards `goal`."""
    x = torch.zeros((1, 2, *env.cost.shape))
    x[0, 0] = torch.from_numpy(env.channels[env.index])
    x[0, 1][tuple(goal)] = 1.0
    model.eval()
    with torch.no_grad(), autocast(bf16, dev):
        logits, value = model(x.to(dev))
    return logits[0].float().argmax(0).cpu().numpy(), value[0].float().cpu().numpy()


def value_map(model, maps, dev, bf16, out: Path, n: int = 3) -> Path:
    import matplotlib  # on use: plotting loads only when a run draws
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # on use: plotting loads only when a run draws
    env = GridWorld(maps.test)
    eps = baselines.episodes(env, n, seed=3)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.4))
    for ax, ep in zip(np.atleast_1d(axes), eps):
        env.reset(options=ep)
        moves, value = answers(model, env, ep["goal"], dev, bf16)
        free = np.isfinite(env.cost)
        shown = np.ma.masked_where(~free, value)
        im = ax.imshow(shown, cmap="viridis")
        ax.imshow(np.where(free, np.nan, 0.0), cmap="gray", vmin=0, vmax=1)
        rows, cols = np.nonzero(free)
        dr = np.array([MOVES[m][0] for m in moves[free]], float)
        dc = np.array([MOVES[m][1] for m in moves[free]], float)
        ax.quiver(cols, rows, dc, -dr, color="white", scale=1.6, scale_units="xy", angles="xy", width=0.006)
        ax.plot(ep["goal"][1], ep["goal"][0], "r*", markersize=14)
        ax.set_title(f"map {ep['map']}: value and moves towards the goal")
        ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = out / "value_map.png"
    fig.savefig(path, dpi=min(90, DPI))
    plt.close(fig)
    return path


def episodes_gif(model, maps, dev, bf16, out: Path) -> Path:
    """Episodes on test maps side by side, one frame per step, each map scaled up."""
    env = GridWorld(maps.test)
    eps = baselines.episodes(env, GIF_EPISODES, seed=4)
    strips = []
    for ep in eps:
        env.reset(options=ep)
        moves, _ = answers(model, env, ep["goal"], dev, bf16)
        frames = [env.render()]
        done = truncated = False
        while not (done or truncated):
            _, _, done, truncated, _ = env.step(int(moves[env.pos]))
            frames.append(env.render())
        strips.append(frames)
    scale = max(1, 128 // max(maps.size))
    return strips_gif([[f.repeat(scale, 0).repeat(scale, 1) for f in s] for s in strips], out / "episodes.gif", 250)


def pictures(run: Path, model, maps, dev, bf16) -> None:
    out = run / "plots"
    out.mkdir(exist_ok=True)
    value_map(model, maps, dev, bf16, out)
    episodes_gif(model, maps, dev, bf16, out)
    training_curves(run, out)
