"""A locate run as an exported file: the searcher, the crop and the action history in, the logits of the
9 actions and the value out."""
from __future__ import annotations

import numpy as np
import torch

from ..base import Exportable
from . import baselines
from .env import ACTIONS, CROP, HISTORY, Locate
from .train import load_images


def exportable(finder) -> Exportable:
    """The loaded run's searcher, checked on the starting crops of the run's own test images."""
    images = load_images(finder.cfg)
    env = Locate(images.test)
    crops, hists = [], []
    for ep in baselines.episodes(env, 16, seed=5):
        obs, _ = env.reset(options=ep)
        for a in (5, 5, 0):   # a few steps in, so that the history is not empty
            obs, *_ = env.step(a)
        crops.append(obs["crop"])
        hists.append(obs["history"])
    x = (torch.from_numpy(np.stack(crops)), torch.from_numpy(np.stack(hists)))
    info = dict(actions=list(ACTIONS), crop=CROP, history=HISTORY,
                input=f"crop: uint8 (N, 3, {CROP}, {CROP}), the pixels under the box resized; history: float32 "
                      f"(N, {HISTORY * len(ACTIONS)}), the last {HISTORY} actions one-hot, latest first",
                output="logits: (N, 9) over " + ", ".join(ACTIONS) + "; value: (N,)")
    return Exportable(finder.model.eval(), x, ["crop", "history"], ["logits", "value"],
                      {"crop": {0: "batch"}, "history": {0: "batch"}}, info, f"{len(crops)} test images' crops")
