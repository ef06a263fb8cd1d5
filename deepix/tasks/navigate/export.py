"""A navigate run as an exported file: the planner network, the map and the goal in, the moves' logits and
the value of every cell out (the agent's move is the argmax at its cell)."""
from __future__ import annotations

import torch

from ..base import Exportable
from . import baselines
from .env import GridWorld


class PlannerFile(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, maps: torch.Tensor):
        moves, value = self.model(maps)
        return moves, value


def exportable(nav) -> Exportable:
    """The loaded run's network, checked on the run's own test maps with drawn goals."""
    maps = nav.maps()
    env = GridWorld(maps.test)
    eps = baselines.episodes(env, 32, seed=5)
    x = torch.zeros((len(eps), 2, *maps.size))
    for j, ep in enumerate(eps):
        x[j, 0] = torch.from_numpy(env.channels[ep["map"]])
        x[j, 1][tuple(ep["goal"])] = 1.0
    h, w = maps.size
    info = dict(weights=nav.weights, size=[h, w], model=nav.cfg.model,
                input=f"maps: float32 (N, 2, {h}, {w}): channel 0 the map (walls 1, free cells 0, or their cost scaled "
                      "into [0, 0.8]), channel 1 the goal (1 at its cell)",
                output="moves: (N, 8, H, W) logits of the moves up, down, left, right, up-left, up-right, down-left, "
                       "down-right at every cell; value: (N, H, W)")
    dynamic = {"maps": {0: "batch"}}
    return Exportable(PlannerFile(nav.model).eval(), (x,), ["maps"], ["moves", "value"], dynamic, info,
                      f"{len(eps)} test maps with drawn goals")
