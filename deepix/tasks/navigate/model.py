"""The planning networks. Both read the map and the goal (2 channels) and answer for every cell at once:
the logits of the 8 moves and the value of standing there, so one forward pass serves a whole episode and
the report can draw the value and the arrows over a map. The agent's own answer is read at its cell.
- `fcn`: residual 3x3 convolutions with dilations 1, 2, 4, 8 (twice), a receptive field wider than a
  64x64 map, GroupNorm so that a single map trains as well as a batch.
- `vin`: the value iteration network (Tamar et al., 2016): a reward map, then K rounds of a learned
  Bellman backup (a convolution over the value map, a max over actions)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError

MODELS = ("fcn", "vin")


class FCN(nn.Module):
    def __init__(self, width: int = 48, dilations=(1, 2, 4, 8, 1, 2, 4, 8)):
        super().__init__()
        self.inp = nn.Conv2d(2, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations)
        self.norms = nn.ModuleList(nn.GroupNorm(8, width) for _ in dilations)
        self.moves = nn.Conv2d(width, 8, 1)
        self.value = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        h = F.relu(self.inp(x))
        for conv, norm in zip(self.blocks, self.norms):
            h = h + F.relu(norm(conv(h)))
        return self.moves(h), self.value(h)[:, 0]


class VIN(nn.Module):
    def __init__(self, k: int = 20, hidden: int = 150, q: int = 10):
        super().__init__()
        self.k = k
        self.h = nn.Conv2d(2, hidden, 3, padding=1)
        self.r = nn.Conv2d(hidden, 1, 1, bias=False)
        self.q = nn.Conv2d(1, q, 3, padding=1, bias=False)
        self.w = nn.Parameter(torch.zeros(q, 1, 3, 3))
        self.moves = nn.Conv2d(q + 2, 8, 1)
        self.value = nn.Conv2d(q + 2, 1, 1)

    def forward(self, x):
        r = self.r(self.h(x))
        q = self.q(r)
        v = q.max(1, keepdim=True)[0]
        weight = torch.cat([self.q.weight, self.w], 1)
        for _ in range(self.k):
            q = F.conv2d(torch.cat([r, v], 1), weight, padding=1)
            v = q.max(1, keepdim=True)[0]
        h = torch.cat([q, x], 1)
        return self.moves(h), self.value(h)[:, 0]


def build(name: str, width: float = 1.0, size: int = 16) -> nn.Module:
    if name == "fcn":
        return FCN(max(8, int(round(48 * width / 8)) * 8))
    if name == "vin":
        return VIN(k=3 * size)   # enough rounds for a value to follow a maze corridor across the map
    raise UserError(f"unknown navigate model {name!r}: use one of {', '.join(MODELS)}")


def planner_input(obs: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) observations (map, agent, goal) -> the (B, 2, H, W) map and goal the planners read."""
    return obs[:, (0, 2)]


def at_agent(maps: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) or (B, H, W) answers per cell -> (B, C) or (B,) at each agent's cell."""
    idx = obs[:, 1].flatten(1).argmax(1)
    flat = maps.flatten(-2)
    if flat.dim() == 2:
        return flat.gather(1, idx[:, None])[:, 0]
    return flat.gather(2, idx[:, None, None].expand(-1, flat.shape[1], 1))[..., 0]


class Heads(nn.Module):
    """The policy or the value of a planner at the agent's cell, for PPO's loss: one forward pass per
    episode in the minibatch (its map and goal do not change), read at each step's cell."""

    def __init__(self, net: nn.Module, which: int):
        super().__init__()
        self.net, self.which = net, which

    def forward(self, obs, episode):
        ids, inverse = torch.unique(episode, return_inverse=True)
        first = torch.zeros(len(ids), dtype=torch.long).scatter_(0, inverse, torch.arange(len(episode)))
        out = self.net(planner_input(obs[first]))[self.which][inverse]
        out = at_agent(out, obs).float()   # the loss's log-probabilities and ratios in float32
        return out if self.which == 0 else out[:, None]
