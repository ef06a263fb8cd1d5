"""Path planning as a Gymnasium environment: the observation is the map, the agent and the goal as three
image channels; eight moves; the reward is minus each step's cost, a bonus at the goal and a penalty for
walking into a wall (the agent stays put). An episode is cut off at a multiple of the optimal path's steps."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from .planner import MOVES, plan, step_cost

GOAL_BONUS = 10.0
WALL_PENALTY = 1.0
HORIZON = 3.0     # episodes are truncated after this many times the optimal path's steps (and at least 8 more)


def map_channel(cost: np.ndarray) -> np.ndarray:
    """Walls 1; free cells 0 when every free cell costs the same, else their cost scaled into [0, 0.8]."""
    free = np.isfinite(cost)
    out = np.ones(cost.shape, np.float32)
    lo, hi = cost[free].min(), cost[free].max()
    out[free] = 0.0 if hi == lo else 0.8 * (cost[free] - lo) / (hi - lo)
    return out


class GridWorld(gym.Env):
    """Episodes on `maps` (cost arrays of one size). `reset(options={"map": i, "start": (r, c), "goal": (r, c)})`
    fixes an episode; otherwise the map, start and goal are drawn, with the goal at least `min_steps` moves
    away on the optimal path."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, maps: list[np.ndarray], min_steps: int = 4, horizon: float = HORIZON,
                 goal_bonus: float = GOAL_BONUS, wall_penalty: float = WALL_PENALTY):
        self.maps, self.min_steps, self.horizon = maps, min_steps, horizon
        self.goal_bonus, self.wall_penalty = goal_bonus, wall_penalty
        h, w = maps[0].shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3, h, w), np.float32)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.channels = [map_channel(m) for m in maps]

    def draw(self) -> tuple[int, tuple[int, int], tuple[int, int]]:
        """A map, a start and a goal, from the environment's random generator."""
        for _ in range(100):
            i = int(self.np_random.integers(len(self.maps)))
            free = np.argwhere(np.isfinite(self.maps[i]))
            a, b = free[self.np_random.choice(len(free), 2, replace=False)]
            start, goal = (int(a[0]), int(a[1])), (int(b[0]), int(b[1]))
            if max(abs(start[0] - goal[0]), abs(start[1] - goal[1])) >= self.min_steps:
                return i, start, goal
        return i, start, goal

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "start" in options:
            self.index, self.start, self.goal = options.get("map", 0), tuple(options["start"]), tuple(options["goal"])
        else:
            self.index, self.start, self.goal = self.draw()
        self.cost = self.maps[self.index]
        self.optimal, self.optimal_cost = plan(self.cost, self.start, self.goal)
        self.limit = max(int(math.ceil(self.horizon * (len(self.optimal) - 1))), len(self.optimal) + 8)
        self.pos, self.steps, self.collisions, self.taken = self.start, 0, 0, [self.start]
        self.spent = 0.0
        return self.observe(), self.info()

    def observe(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, np.float32)
        obs[0] = self.channels[self.index]
        obs[1][self.pos] = 1.0
        obs[2][self.goal] = 1.0
        return obs

    def info(self) -> dict:
        return {"map": self.index, "start": self.start, "goal": self.goal, "pos": self.pos, "steps": self.steps,
                "collisions": self.collisions, "cost": self.spent, "optimal_cost": self.optimal_cost,
                "optimal_steps": len(self.optimal) - 1, "success": self.pos == self.goal}

    def step(self, action):
        dr, dc = MOVES[int(action)]
        r, c = self.pos[0] + dr, self.pos[1] + dc
        self.steps += 1
        inside = 0 <= r < self.cost.shape[0] and 0 <= c < self.cost.shape[1]
        if not inside or not math.isfinite(self.cost[r, c]):
            self.collisions += 1
            reward = -self.wall_penalty
        else:
            paid = step_cost(self.cost, self.pos, (r, c))
            self.spent += paid
            self.pos = (r, c)
            self.taken.append(self.pos)
            reward = -paid
        done = self.pos == self.goal
        if done:
            reward += self.goal_bonus
        truncated = not done and self.steps >= self.limit
        return self.observe(), float(reward), done, truncated, self.info()

    def render(self) -> np.ndarray:
        """RGB: walls black, free cells white to grey by cost, the path so far blue, agent red, goal green."""
        ch = self.channels[self.index]
        img = np.repeat((255 * (1 - ch))[..., None], 3, axis=2).astype(np.uint8)
        for p in self.taken:
            img[p] = (120, 160, 255)
        img[self.goal] = (40, 200, 60)
        img[self.pos] = (230, 40, 40)
        return img
