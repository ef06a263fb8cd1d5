"""The walkers an agent is measured against, and the field's figures for any policy on fixed episodes:
success rate, SPL (success weighted by the optimal path's length over the taken one's, Anderson et al.
2018), cost over the optimal cost, collisions, and the time per planned path."""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from .env import GridWorld
from .planner import MOVES, path_length, plan

Policy = Callable[[GridWorld], int]   # reads the environment (its observation, or its map for a baseline)


def episodes(env: GridWorld, n: int, seed: int) -> list[dict]:
    """n (map, start, goal) triples drawn once, so that every policy walks the same ones."""
    env.reset(seed=seed)
    out = []
    for _ in range(n):
        i, start, goal = env.draw()
        out.append({"map": i, "start": start, "goal": goal})
    return out


def planner() -> Policy:
    """The optimal planner as a walker: it plans the whole path at the first step, then follows it."""
    path: list[tuple[int, int]] = []

    def act(env: GridWorld) -> int:
        nonlocal path
        if env.steps == 0:
            path = plan(env.cost, env.pos, env.goal)[0]
        nxt = path[env.steps + 1]
        return MOVES.index((nxt[0] - env.pos[0], nxt[1] - env.pos[1]))
    return act


def greedy(env: GridWorld) -> int:
    """The free neighbour nearest the goal in a straight line (it stalls in dead ends)."""
    best, move = math.inf, 0
    for a, (dr, dc) in enumerate(MOVES):
        r, c = env.pos[0] + dr, env.pos[1] + dc
        if 0 <= r < env.cost.shape[0] and 0 <= c < env.cost.shape[1] and math.isfinite(env.cost[r, c]):
            d = math.hypot(env.goal[0] - r, env.goal[1] - c)
            if d < best:
                best, move = d, a
    return move


def random_walker(seed: int = 0) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda env: int(rng.integers(len(MOVES)))


def evaluate(policy: Policy, env: GridWorld, eps: list[dict]) -> dict:
    """The policy's figures over the episodes."""
    success, spl, ratio, collisions, returns, lengths, seconds = [], [], [], [], [], [], 0.0
    for ep in eps:
        env.reset(options=ep)
        t0 = time.perf_counter()
        done = truncated = False
        total = 0.0
        while not (done or truncated):
            _, reward, done, truncated, info = env.step(policy(env))
            total += reward
        seconds += time.perf_counter() - t0
        returns.append(total)
        lengths.append(env.steps)
        best = path_length(env.optimal)
        taken = path_length(env.taken)
        success.append(float(done))
        spl.append(float(done) * best / max(taken, best) if best else float(done))
        if done and env.optimal_cost:
            ratio.append(env.spent / env.optimal_cost)
        collisions.append(info["collisions"])
    return {"episodes": len(eps), "success": float(np.mean(success)), "spl": float(np.mean(spl)),
            "cost_ratio": float(np.mean(ratio)) if ratio else None, "collisions": float(np.mean(collisions)),
            "return": float(np.mean(returns)), "length": float(np.mean(lengths)),
            "ms_per_path": 1000 * seconds / max(len(eps), 1)}
