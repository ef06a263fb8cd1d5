"""The searcher: the crop under the box through a small CNN, with the one-hot history of its last actions,
into the logits of the 9 actions and the value of the state."""
from __future__ import annotations

import torch
from torch import nn

from ...engine.fit import autocast as autocast_for
from .env import ACTIONS, HISTORY, TRIGGER, Locate


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU())


class Searcher(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [max(8, int(round(k * width / 8)) * 8) for k in (32, 64, 96, 128)]
        self.encoder = nn.Sequential(block(3, c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3]),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c[3] + HISTORY * len(ACTIONS), 256), nn.ReLU())
        self.policy = nn.Linear(256, len(ACTIONS))
        self.value = nn.Linear(256, 1)

    def forward(self, crop: torch.Tensor, history: torch.Tensor):
        """uint8 (B, 3, 64, 64) crops and (B, HISTORY*9) histories -> (B, 9) logits and (B,) values."""
        h = self.head(torch.cat([self.encoder(crop.float() / 255.0), history.float()], 1))
        return self.policy(h), self.value(h)[:, 0]


class Head(nn.Module):
    """The policy's logits (which=0) or the value as (B, 1) (which=1), in float32, for PPO's loss."""

    def __init__(self, net: Searcher, which: int):
        super().__init__()
        self.net, self.which = net, which

    def forward(self, crop, history):
        out = self.net(crop, history)[self.which].float()
        return out if self.which == 0 else out[:, None]


def agent(model, dev, bf16: bool):
    """The trained searcher as a policy for baselines.evaluate: its most likely action, scored (when it
    triggers) by its probability of triggering."""
    def act(env: Locate) -> int:
        obs = env.observe()
        with torch.no_grad(), autocast_for(bf16, dev):
            logits, _ = model(torch.from_numpy(obs["crop"])[None].to(dev), torch.from_numpy(obs["history"])[None].to(dev))
        p = torch.softmax(logits[0].float(), 0)
        env.last_score = float(p[TRIGGER])
        return int(p.argmax())
    return act
