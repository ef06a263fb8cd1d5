"""The searcher: the crop under the box through a small CNN, with the one-hot history of its last actions,
into the logits of the 9 actions and the value of the state."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...engine.fit import autocast as autocast_for
from .env import ACTIONS, CROP, HISTORY, TRIGGER, Locate


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU())


class Searcher(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [max(8, int(round(k * width / 8)) * 8) for k in (32, 64, 96, 128)]
        # where the object lies in the crop is the answer, so the 4x4 map is kept rather than pooled away
        self.encoder = nn.Sequential(block(3, c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3]),
                                     nn.Conv2d(c[3], 32, 1), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * (CROP // 16) ** 2 + HISTORY * len(ACTIONS), 256), nn.ReLU())
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
    triggers) by its probability of triggering; `.batch(envs)` answers for many environments in one pass."""
    def batch(envs: list[Locate]) -> list[int]:
        obs = [e.observe() for e in envs]
        crop = torch.from_numpy(np.stack([o["crop"] for o in obs])).to(dev)
        history = torch.from_numpy(np.stack([o["history"] for o in obs])).to(dev)
        with torch.no_grad(), autocast_for(bf16, dev):
            logits, _ = model(crop, history)
        p = torch.softmax(logits.float(), 1).cpu()
        for e, q in zip(envs, p):
            e.last_score = float(q[TRIGGER])
        return p.argmax(1).tolist()

    def act(env: Locate) -> int:
        return batch([env])[0]
    act.batch = batch
    return act
