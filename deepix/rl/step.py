"""What the agents' steps share in the engine's "own" mode: the phase (cloning, then PPO), the two
optimizers, rollouts started afresh each epoch from seeds (so that resume is exact), the per-iteration
generator, and the frame count a resumed run takes up."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import torch

from ..engine import distributed as dist
from ..engine.checkpoint import load_state
from ..engine.optim import make_optimizer
from ..tasks.base import Step
from .ppo import Rollouts, vector_env

PPO_LR = 0.1   # PPO's learning rate as a share of --lr (cloning takes --lr itself)


class AgentStep(Step):
    mode = "own"
    cfg = None
    rollouts: Rollouts | None = None
    rollout_epoch = -1
    frames = 0          # environment steps taken in training so far

    def cloning(self, epoch: int) -> bool:
        return epoch < round(self.cfg.bc * self.cfg.epochs)

    def beta(self, epoch: int) -> float:
        """DAgger's share of expert actions in this epoch's rollouts: from 1 down to 0 over the first half of
        the cloning epochs, the learner's own states alone after that."""
        return max(0.0, 1.0 - epoch / max(1.0, self.cfg.bc * self.cfg.epochs / 2))

    def optimizers(self, cfg, model):
        # each optimizer's schedule runs through both phases, though only one of them steps at a time
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        return {"bc": make_optimizer(cfg, model), "ppo": torch.optim.Adam(model.parameters(), lr=cfg.lr * PPO_LR)}

    def rollouts_for(self, epoch: int, make_env) -> Rollouts:
        """This epoch's rollouts: each epoch starts its episodes afresh from seeds, so resume is exact."""
        if self.rollout_epoch != epoch:
            seed = int(np.random.default_rng([self.cfg.seed, epoch, dist.rank()]).integers(2 ** 31))
            self.rollouts, self.rollout_epoch = Rollouts(vector_env(make_env, self.cfg.envs), seed), epoch
        return self.rollouts

    def generator(self, epoch: int, i: int) -> torch.Generator:
        """The draws of iteration i of the epoch (actions, minibatch order), from the run's seed."""
        return torch.Generator().manual_seed(int(np.random.default_rng([self.cfg.seed, epoch, i, dist.rank(), 1])
                                                 .integers(2 ** 62)))

    def resume_frames(self, run: Path) -> bool:
        """A resumed run takes up the frame count of its checkpoint's epoch; False for a new run."""
        state = run / "state" / "last.pt"
        if not state.is_file():
            return False
        done = load_state(state)["loop"]["epoch"]
        rows = []
        if (run / "metrics.csv").is_file():
            with (run / "metrics.csv").open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) == done]
        self.frames = int(float(rows[0]["val_frames"])) if rows else 0
        return True
