"""The user's environment: found from what `--data` names (or the class given in Python), checked to be one
that deepix's agent can learn (image observations, a discrete set of actions), and wrapped so that its
observations are (C, H, W) images and its episodes report their steps and success. `catch` is built in."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ...errors import UserError

MAX_STEPS = 1000   # episodes of an environment with no time limit of its own are cut off here


class Catch(gym.Env):
    """The built-in environment: a ball falls one row a step down a 10 x 5 picture; the paddle on the
    bottom row moves left, stays or moves right, and earns +1 for a catch, -1 for a miss (bsuite's Catch)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    rows, cols = 10, 5

    def __init__(self, render_mode: str | None = None):
        self.observation_space = gym.spaces.Box(0, 255, (1, self.rows, self.cols), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.ball = [0, int(self.np_random.integers(self.cols))]
        self.paddle = self.cols // 2
        return self.observe(), {}

    def observe(self) -> np.ndarray:
        o = np.zeros((1, self.rows, self.cols), np.uint8)
        o[0, self.ball[0], self.ball[1]] = 255
        o[0, self.rows - 1, self.paddle] = 255
        return o

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + int(action) - 1, 0, self.cols - 1))
        self.ball[0] += 1
        done = self.ball[0] == self.rows - 1
        caught = done and self.ball[1] == self.paddle
        reward = (1.0 if caught else -1.0) if done else 0.0
        return self.observe(), reward, done, False, {"success": caught} if done else {}

    def render(self):
        return np.repeat(self.observe()[0][..., None], 3, -1)


def find(spec: Any) -> tuple[Callable[[], gym.Env], str]:
    """(a maker of new environments, the name config.yaml keeps) for what --data names: `catch`, a
    registered Gymnasium id, `module:Name` or `file.py:Name` (a gym.Env class or a function that makes
    one); in Python, also the class or function itself."""
    if callable(spec):
        name = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', type(spec).__name__)}"
        return spec, name
    spec = str(spec)
    if spec in ("catch", ""):
        return Catch, "catch"
    if ":" in spec and not spec.startswith(("ale_py", "gymnasium")):
        where, _, attr = spec.rpartition(":")
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UserError(f"--data {spec}: no file {where}")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = module
            try:
                mod_spec.loader.exec_module(module)
            except Exception as e:  # the user's file: any error of theirs becomes one line
                raise UserError(f"--data {spec}: {where} fails to import: {type(e).__name__}: {e}") from None
        else:
            try:
                module = importlib.import_module(where)
            except ImportError as e:
                raise UserError(f"--data {spec}: cannot import {where} ({e})") from None
        make = getattr(module, attr, None)
        if not callable(make):
            raise UserError(f"--data {spec}: {where} has no environment class or function {attr!r}")
        return make, spec
    try:
        gym.spec(spec)
    except gym.error.Error:
        raise UserError(f"--data {spec}: not 'catch', a registered Gymnasium id, or module:Class / file.py:Class "
                        "of a gymnasium.Env") from None
    return (lambda: gym.make(spec)), spec


def layout(space: gym.spaces.Space, name: str) -> str:
    """'chw', 'hwc' or 'hw' for an image observation space; one line for anything else."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
        raise UserError(f"{name}: its observations ({space}) are not images; deepix's agent reads a Box of shape "
                        "(H, W), (H, W, C) or (C, H, W)")
    if len(space.shape) == 2:
        return "hw"
    return "hwc" if space.shape[-1] <= 4 and space.shape[-1] < space.shape[0] else "chw"


class Pictures(gym.Wrapper):
    """Observations as (C, H, W) arrays (uint8 stays uint8, else float32); the info of an episode's end
    holds its "steps" and "success" (the env's own "success" or "is_success", else False)."""

    def __init__(self, env: gym.Env, name: str):
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise UserError(f"{name}: its actions ({env.action_space}) are not a Discrete set; deepix's agent picks "
                            "one of n actions")
        self.form = layout(env.observation_space, name)
        low = np.asarray(env.observation_space.low, np.float32)
        shape = env.observation_space.shape
        c, h, w = ((1, *shape) if self.form == "hw" else (shape[2], shape[0], shape[1]) if self.form == "hwc" else shape)
        dtype = np.uint8 if env.observation_space.dtype == np.uint8 else np.float32
        lo, hi = (0, 255) if dtype == np.uint8 else (float(low.min()), float(np.asarray(env.observation_space.high).max()))
        self.observation_space = gym.spaces.Box(lo, hi, (c, h, w), dtype)
        self.limit = None if env.spec is not None and env.spec.max_episode_steps else MAX_STEPS
        self.steps = 0

    def image(self, obs) -> np.ndarray:
        a = np.asarray(obs)
        a = a[None] if self.form == "hw" else a.transpose(2, 0, 1) if self.form == "hwc" else a
        return np.ascontiguousarray(a.astype(self.observation_space.dtype, copy=False))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.steps = 0
        return self.image(obs), info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(int(action))
        self.steps += 1
        trunc = bool(trunc) or (self.limit is not None and self.steps >= self.limit and not term)
        if term or trunc:
            info = {**info, "steps": self.steps, "success": bool(info.get("success", info.get("is_success", False))),
                    "reported": "success" in info or "is_success" in info}
        return self.image(obs), float(reward), bool(term), trunc, info


def maker(make: Callable[[], gym.Env], name: str) -> Callable[[], Pictures]:
    """A function that makes wrapped environments, each checked (one line if it fails)."""
    def new() -> Pictures:
        try:
            env = make()
        except UserError:
            raise
        except Exception as e:  # the user's constructor: any error of theirs becomes one line
            raise UserError(f"{name}: making the environment failed: {type(e).__name__}: {e}") from None
        if not isinstance(env, gym.Env):
            raise UserError(f"{name}: made a {type(env).__name__}, not a gymnasium.Env")
        return Pictures(env, name)
    return new
