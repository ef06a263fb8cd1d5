"""Training an agent on the user's environment: PPO (or DQN with --algo dqn) on image observations, with
DAgger first when the environment names an expert's action (`env.expert()`) and --bc asks for it;
validated each epoch by fixed seeded episodes, tested beside a random agent on other seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...models import count_params
from ...rl.step import AgentStep, RolloutItems
from ..base import Job
from .env import find, maker
from .play import VAL_SEED, TEST_SEED, greedy, play, random_policy
from .model import Head, Pixels

ITEMS = 8                     # rollouts (each followed by its update) per epoch
VAL_EPISODES, TEST_EPISODES = 32, 100


def build(env, width: float = 1.0) -> Pixels:
    c, h, w = env.observation_space.shape
    scale = 1 / 255 if env.observation_space.dtype == np.uint8 else 1.0
    return Pixels(c, (h, w), int(env.action_space.n), scale, width)


class Play(AgentStep):

    def __init__(self, cfg, make, model, dev, bf16: bool, actions: int):
        self.cfg, self.make, self.model, self.dev, self.bf16 = cfg, make, model, dev, bf16
        self.learner(Head(model, 0), Head(model, 1), ["observation"], actions, cfg.batch, joint=model)

    def act(self, model, autocast):
        def act(obs, fresh):
            with autocast():
                logits, value = model(torch.from_numpy(np.asarray(obs)).to(self.dev))
            return logits.float().cpu(), value.float().cpu()
        return act

    def train_step(self, model, x, y, opts, autocast) -> dict[str, float]:
        epoch, i = (int(v) for v in x.tolist())
        return self.rollout_step(model, epoch, i, opts, autocast, self.make,
                                 lambda envs: np.stack([np.asarray(e.unwrapped.expert()) for e in envs]))

    def evaluate(self, model, val, dev, bf16) -> dict[str, float]:
        model.eval()
        r = play(greedy(model, dev, bf16), self.make, VAL_EPISODES, VAL_SEED)
        out = {"return": r["return"], "length": r["length"], "frames": float(self.frames)}
        if r["success"] is not None:
            out["success"] = r["success"]
        return out


def test(model, make, actions: int, dev, bf16: bool) -> dict:
    """The agent and a random agent on the same seeded test episodes."""
    model.eval()
    rows = {"agent": play(greedy(model, dev, bf16), make, TEST_EPISODES, TEST_SEED),
            "random": play(random_policy(actions, TEST_SEED), make, TEST_EPISODES, TEST_SEED)}
    a = rows["agent"]
    return {"split": "test", "episodes": TEST_EPISODES, "seeds": [TEST_SEED, TEST_SEED + TEST_EPISODES - 1],
            "return": a["return"], "success": a["success"], "agents": rows}


def environment(cfg, given=None):
    """(maker, name, a first environment) for --data or the class / function given in Python."""
    make, name = find(given if given is not None else cfg.data)
    new = maker(make, name)
    return new, name, new()


def setup(cfg, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    if net is not None:
        raise UserError("agent builds its network from the environment's observations; own networks are not supported")
    make, name, env = environment(cfg, dataset)
    if cfg.bc > 0 and not callable(getattr(env.unwrapped, "expert", None)):
        raise UserError(f"--bc {cfg.bc}: {name} has no expert() method to clone; use --bc 0 (learning by reward alone)")
    actions = int(env.action_space.n)
    model = build(env, cfg.width).to(dev)
    step = Play(cfg, make, model, dev, bf16, actions)
    c, h, w = env.observation_space.shape
    info = {"name": name, "kind": "environment", "observation": [c, h, w],
            "dtype": str(env.observation_space.dtype), "actions": actions,
            "note": f"episodes seeded from {VAL_SEED} for validation and {TEST_SEED} for test"}

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        t = test(model, make, actions, dev, bf16)
        from .pictures import pictures  # matplotlib and PIL's GIF writer load when the run ends
        pictures(run, model, make, dev, bf16)
        return t, {"test": t, "model": {"params": count_params(model), "summary": str(model)}, "frames": step.frames}

    about = (f"{name}: {c}x{h}x{w} observations, {actions} actions; "
             f"{'cloning its expert (DAgger) for ' + format(cfg.bc, '.0%') + ' of the epochs, then ' if cfg.bc else ''}"
             f"{cfg.algo.upper()} on {cfg.envs} environments")
    return Job(model, step, RolloutItems(cfg, ITEMS), (VAL_SEED, VAL_EPISODES), info, about, finish, begin=step.begin)
