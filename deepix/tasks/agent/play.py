"""Playing seeded episodes with a policy, many side by side: validation, test, the GIF and export's inputs."""
from __future__ import annotations

import time

import numpy as np
import torch

from ...engine.fit import autocast as autocast_for

VAL_SEED, TEST_SEED = 10_000, 20_000   # episodes' seeds: validation and test never meet training's


def greedy(model, dev, bf16: bool):
    """The trained network as a policy over a batch of observations: its most likely action each."""
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad(), autocast_for(bf16, dev):
            logits, _ = model(torch.from_numpy(obs).to(dev))
        return logits.float().argmax(1).cpu().numpy()
    return act


def random_policy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(n, size=len(obs))


def play(policy, make, episodes: int, seed: int, keep: int = 0) -> dict:
    """`episodes` episodes, seeded seed, seed+1, ..., run side by side: mean return, length and success (None
    where the environment does not report it), ms per step; `keep` episodes' observations as "frames"."""
    envs = [make() for _ in range(episodes)]
    obs = [e.reset(seed=seed + k)[0] for k, e in enumerate(envs)]
    returns, lengths, success = np.zeros(episodes), np.zeros(episodes, int), np.zeros(episodes, bool)
    reported, alive = False, list(range(episodes))
    frames = [[obs[k]] for k in range(min(keep, episodes))]
    t0, steps = time.perf_counter(), 0
    while alive:
        actions = policy(np.stack([obs[k] for k in alive]))
        nxt = []
        for k, a in zip(alive, actions):
            obs[k], r, term, trunc, info = envs[k].step(int(a))
            returns[k] += r
            lengths[k] += 1
            steps += 1
            if k < keep:
                frames[k].append(obs[k])
            if term or trunc:
                success[k], reported = info["success"], reported or info["reported"]
            else:
                nxt.append(k)
        alive = nxt
    out = {"return": float(returns.mean()), "return_std": float(returns.std()), "length": float(lengths.mean()),
           "success": float(success.mean()) if reported else None, "episodes": episodes,
           "ms_per_step": 1000 * (time.perf_counter() - t0) / max(steps, 1)}
    if keep:
        out["frames"] = frames
    return out
