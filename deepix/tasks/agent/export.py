"""An agent run as an exported file: observations in, the actions' logits and the state's value out."""
from __future__ import annotations

import numpy as np
import torch

from ..base import Exportable
from .play import TEST_SEED, greedy, play
from .train import environment


def exportable(player) -> Exportable:
    """The loaded run's network, checked on observations of its own test episodes."""
    make, name, _ = environment(player.cfg)
    frames = play(greedy(player.model, torch.device("cpu"), False), make, 4, TEST_SEED, keep=4)["frames"]
    x = torch.from_numpy(np.stack([f for ep in frames for f in ep[:8]]))
    c, h, w = player.shape
    info = dict(environment=name, actions=player.actions,
                input=f"observation: {'uint8' if player.uint8 else 'float32'} (N, {c}, {h}, {w}), as the environment "
                      "gives it (channels first)",
                output=f"logits: (N, {player.actions}), the agent takes the largest; value: (N,)")
    return Exportable(player.model.eval(), (x,), ["observation"], ["logits", "value"], {"observation": {0: "batch"}},
                      info, f"{len(x)} observations of test episodes")
