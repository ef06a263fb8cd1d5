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
from .dqn import DQN, epsilon
from .ppo import PPO, Rollouts, vector_env

PPO_LR = 0.1   # PPO's learning rate as a share of --lr (cloning takes --lr itself)


class RolloutItems:
    """The engine's batches for an agent that rolls out every item: one (epoch, index) per rollout, `items`
    an epoch, with one placeholder label per environment frame so that the engine's rate counts frames."""

    def __init__(self, cfg, items: int):
        self.cfg, self.items = cfg, items

    def __len__(self):
        return self.items

    def epoch(self, epoch: int, shard: bool = False):
        for i in range(self.items):
            yield torch.tensor([epoch, i]), torch.zeros(self.cfg.envs * self.cfg.rollout)


class AgentStep(Step):
    mode = "own"
    cfg = None
    rollouts: Rollouts | None = None
    rollout_epoch = -1
    frames = 0          # environment steps taken in training so far

    def cloning(self, epoch: int) -> bool:
        return epoch < round(self.cfg.bc * self.cfg.epochs)

    def learner(self, policy, value, keys: list, actions: int, minibatch: int, joint=None) -> None:
        """The learning by reward after cloning: PPO, or DQN on the policy's logits (--algo dqn)."""
        cfg = self.cfg
        self.ppo = PPO(policy, value, keys, entropy=cfg.entropy, gamma=cfg.gamma, epochs=cfg.ppo_epochs,
                       minibatch=minibatch, grad_clip=cfg.grad_clip or 0.5, joint=joint)
        self.dqn = DQN(policy, keys, actions, gamma=cfg.gamma, epochs=cfg.ppo_epochs, minibatch=minibatch,
                       grad_clip=cfg.grad_clip or 10.0) if cfg.algo == "dqn" else None

    def explore(self, epoch: int) -> dict:
        """How the rollouts of a learning-by-reward epoch act: PPO samples its policy; DQN takes the best
        action but a falling share of random ones, and keeps the next observations."""
        if self.dqn is None:
            return {}
        first = round(self.cfg.bc * self.cfg.epochs)
        return {"epsilon": epsilon((epoch - first) / max(1, self.cfg.epochs - first)), "keep_next": True}

    def reinforce_update(self, batch, i: int, opt, params, g, autocast) -> dict[str, float]:
        """One update by reward from the rollout: PPO's clipped objective, or DQN's (its memory and target
        start afresh with each epoch's first rollout)."""
        if self.dqn is None:
            s = self.ppo.update(batch, opt, params, g, autocast)
            return {"loss": s["loss_objective"], "value_loss": s["loss_critic"], "entropy": s["entropy"]}
        if i == 0:
            self.dqn.begin_epoch()
        return self.dqn.update(batch, opt, params, g, autocast)

    def rollout_step(self, model, epoch: int, i: int, opts: dict, autocast, make_env, expert) -> dict[str, float]:
        """One rollout of every environment and its update: DAgger while cloning (`expert(envs)` names the
        expert's action in each environment's state, as indices or distributions), else PPO or DQN. The
        subclass gives `act(model, autocast)` (the rollout's policy) and `dev`."""
        self.rollouts_for(epoch, make_env)
        g = self.generator(epoch, i)
        cloning = self.cloning(epoch)
        envs = self.rollouts.envs.envs
        before = len(self.rollouts.finished)
        model.eval()
        batch = self.rollouts.collect(self.act(model, autocast), self.cfg.rollout, g,
                                      (lambda: expert(envs)) if cloning else None, self.beta(epoch) if cloning else 0.0,
                                      **({} if cloning else self.explore(epoch)))
        model.train()
        if cloning:
            if i == 0:
                self.pool = []   # DAgger's aggregate, of this epoch's rollouts (so that resume is exact)
            stats = self.ppo.imitate(batch.to(self.dev), opts["bc"], model.parameters(), g, autocast, self.pool)
        else:
            stats = self.reinforce_update(batch.to(self.dev), i, opts["ppo"], model.parameters(), g, autocast)
        self.frames += batch.numel() * dist.world()   # every process steps its own environments
        return {**stats, **self.log_episodes(self.rollouts.finished[before:], epoch)}

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

    episodes_file: Path | None = None

    def begin(self, run: Path) -> None:
        """episodes.csv: every training episode's return, length and success by environment frames. A resumed
        run keeps the rows of the epochs its checkpoint holds and takes up the frame count there."""
        self.episodes_file = run / "episodes.csv"
        if not self.resume_frames(run):
            self.episodes_file.write_text("frames,epoch,return,length,success\n")
            return
        done = load_state(run / "state" / "last.pt")["loop"]["epoch"]
        with self.episodes_file.open() as f:
            kept = [line for k, line in enumerate(f) if k == 0 or int(line.split(",")[1]) <= done]
        self.episodes_file.write_text("".join(kept))

    def log_episodes(self, done: list[dict], epoch: int) -> dict[str, float]:
        """The episodes that ended in the last rollout into episodes.csv (at the frame count after it); their
        mean return, for the epoch's train_return."""
        if not done:
            return {}
        if self.episodes_file is not None and dist.is_main():
            with self.episodes_file.open("a", newline="") as f:
                w = csv.writer(f)
                for e in done:
                    w.writerow([self.frames, epoch + 1, round(e["return"], 4), e["length"], int(e["success"])])
        return {"return": float(np.mean([e["return"] for e in done]))}

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
