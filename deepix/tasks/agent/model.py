"""The agent's network for any image observation: a small CNN (stride-2 blocks until the picture is at
most 8 pixels a side), pooled to a 4x4 map that keeps where things are, into the actions' logits (or
values, for DQN) and the state's value."""
from __future__ import annotations

import torch
from torch import nn


def block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU())


class Pixels(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int], actions: int, scale: float, width: float = 1.0):
        super().__init__()
        c = [max(8, int(round(k * width / 8)) * 8) for k in (32, 64, 64)]
        layers, side, cin = [block(channels, c[0], 1)], min(size), c[0]
        for k in range(2):
            if side > 8:
                layers.append(block(cin, c[k + 1], 2))
                side, cin = (side + 1) // 2, c[k + 1]
        while side > 8:
            layers.append(block(cin, cin, 2))
            side = (side + 1) // 2
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(cin * 16, 256), nn.ReLU())
        self.policy = nn.Linear(256, actions)
        self.value = nn.Linear(256, 1)
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def forward(self, obs: torch.Tensor):
        """(B, C, H, W) observations as the environment gives them -> (B, A) logits and (B,) values."""
        h = self.head(self.encoder(obs.float() * self.scale))
        return self.policy(h), self.value(h)[:, 0]


class Head(nn.Module):
    """The logits (which=0) or the value as (B, 1) (which=1), in float32, for the losses."""

    def __init__(self, net: Pixels, which: int):
        super().__init__()
        self.net, self.which = net, which

    def forward(self, obs):
        out = self.net(obs)[self.which].float()
        return out if self.which == 0 else out[:, None]
