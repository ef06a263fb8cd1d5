"""The searcher: the crop under the box through a small CNN, with the one-hot history of its last actions,
into the logits of the 9 actions and the value of the state."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ...engine.fit import autocast as autocast_for
from ...errors import UserError
from ...models.encoder import encoder_file, init_from
from ...models.searcher_cnn import trunk
from ...runs import open_run
from .env import ACTIONS, CROP, HISTORY, TRIGGER, Locate


class Searcher(nn.Module):
    def __init__(self, width: float = 1.0, standardised: bool = False):
        super().__init__()
        blocks = trunk(width)
        # where the object lies in the crop is the answer, so the 4x4 map is kept rather than pooled away
        self.encoder = nn.Sequential(*blocks, nn.Conv2d(blocks[-1][0].out_channels, 32, 1), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * (CROP // 16) ** 2 + HISTORY * len(ACTIONS), 256), nn.ReLU())
        self.policy = nn.Linear(256, len(ACTIONS))
        self.value = nn.Linear(256, 1)
        if standardised:   # started from a pretrained encoder (--init): its input statistics, kept in the weights
            self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
            self.register_buffer("std", torch.ones(1, 3, 1, 1))
        self.standardised = standardised

    def forward(self, crop: torch.Tensor, history: torch.Tensor):
        """uint8 (B, 3, 64, 64) crops and (B, HISTORY*9) histories -> (B, 9) logits and (B,) values."""
        x = crop.float() / 255.0
        if self.standardised:
            x = (x - self.mean) / self.std
        h = self.head(torch.cat([self.encoder(x), history.float()], 1))
        return self.policy(h), self.value(h)[:, 0]


def init_searcher(model: Searcher, init: str) -> int:
    """--init: the crop encoder's blocks and input statistics from a run whose model is `searcher-cnn` (a pretrain
    run's encoder, or a classify run's best weights); how many tensors came."""
    path = Path(init)
    if path.is_dir() and not (path / "weights" / "encoder.safetensors").is_file():
        _, cfg, _ = open_run(path)
        if cfg.model != "searcher-cnn":
            raise UserError(f"--init {init}: its model is {cfg.model}; locate starts from a run trained with "
                            "--model searcher-cnn (deepix train pretrain --model searcher-cnn --data FOLDER)")
        path = path / "weights" / "best.safetensors"
    file, meta = encoder_file(str(path))
    if meta and meta.get("model") != "searcher-cnn":
        raise UserError(f"--init {init}: its encoder is {meta.get('model')}; locate starts from one pretrained with "
                        "--model searcher-cnn")
    state = load_file(str(file))
    if state.get("0.mean") is None or state["0.mean"].numel() != 3:
        raise UserError(f"--init {init}: not the weights of a 3-channel searcher-cnn")
    n = init_from(model.encoder, str(file), standardised=False)
    with torch.no_grad():
        model.mean.copy_(state["0.mean"].reshape(1, 3, 1, 1))
        model.std.copy_(state["0.std"].reshape(1, 3, 1, 1))
    return n


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
