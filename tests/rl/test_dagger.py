"""DAgger in the RL core: the expert's share of the actions taken, and cloning from an aggregate of rollouts."""
import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deepix.rl.ppo import PPO, Rollouts, vector_env


class Corridor(gym.Env):
    """A 1 x 8 strip image with the agent's cell lit; the expert always steps right (action 1)."""

    observation_space = gym.spaces.Box(0, 1, (1, 8), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.at = 0
        return self.observe(), {"steps": 0, "success": False}

    def observe(self):
        o = np.zeros((1, 8), np.float32)
        o[0, self.at] = 1
        return o

    def step(self, a):
        self.at = int(np.clip(self.at + (1 if a == 1 else -1), 0, 7))
        done = self.at == 7
        return self.observe(), float(done), done, False, {"steps": self.at, "success": done}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 3)

    def forward(self, obs):
        out = self.body(obs.flatten(1).float())
        return out[:, :2], out[:, 2]


class Head(nn.Module):
    def __init__(self, net, which):
        super().__init__()
        self.net, self.which = net, which

    def forward(self, obs):
        out = self.net(obs)[self.which]
        return out if self.which == 0 else out[:, None]


def test_beta_one_takes_the_experts_actions_and_zero_the_learners():
    net = Net()
    nn.init.zeros_(net.body.weight)
    with torch.no_grad():
        net.body.bias.copy_(torch.tensor([9.0, -9.0, 0.0]))   # the learner all but always steps left
    act = lambda obs, fresh: net(torch.from_numpy(obs))  # noqa: E731
    expert = lambda: np.ones(4, np.int64)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    taken = Rollouts(vector_env(Corridor, 4), seed=0).collect(act, 16, g, expert, beta=1.0)["action"]
    assert bool((taken == 1).all())
    taken = Rollouts(vector_env(Corridor, 4), seed=0).collect(act, 16, g, expert, beta=0.0)["action"]
    assert bool((taken == 0).all())
    mixed = Rollouts(vector_env(Corridor, 4), seed=0).collect(act, 64, g, expert, beta=0.5)["action"]
    assert 0.35 < float(mixed.float().mean()) < 0.65


def test_cloning_from_an_aggregate_learns_the_expert_and_keeps_every_rollout():
    torch.manual_seed(0)
    net = Net()
    ppo = PPO(Head(net, 0), Head(net, 1), ["observation"], epochs=4, minibatch=16, joint=net)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    rollouts = Rollouts(vector_env(Corridor, 4), seed=0)
    act = lambda obs, fresh: net(torch.from_numpy(obs))  # noqa: E731
    pool, g = [], torch.Generator().manual_seed(1)
    for _ in range(6):
        batch = rollouts.collect(act, 8, g, lambda: np.ones(4, np.int64), beta=0.5)
        ppo.imitate(batch, opt, net.parameters(), g, pool=pool)
    assert len(pool) == 6 and sum(len(p) for p in pool) == 6 * 32
    states = torch.eye(8)[:, None, :]
    assert bool((net(states)[0].argmax(1) == 1).all())   # every cell: step right, as the expert does
