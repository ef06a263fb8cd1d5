"""Deep Q-learning (Mnih et al. 2015), double (van Hasselt et al. 2016), as the agents' option to PPO
(`--algo dqn`). The parts come from TorchRL: the loss with its target network (DQNLoss), the target's
hard update (HardUpdate) and the replay memory (a TensorDictReplayBuffer on a LazyTensorStorage). The
policy network's logits are read as the actions' values. The memory and the target network start afresh
each epoch (the target a copy of the network, the memory empty), and every draw comes from the run's
generators, so that a resumed run repeats an uninterrupted one."""
from __future__ import annotations

import contextlib
import logging

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.data import Categorical, LazyTensorStorage, TensorDictReplayBuffer
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, HardUpdate

from ..engine.optim import backward_step

# TorchRL logs each new storage at INFO on the root handler: a line per epoch in the user's terminal
logging.getLogger("torchrl").setLevel(logging.WARNING)

TARGET_EVERY = 4     # updates (rollouts) between copies of the network into the target
MEMORY = 65536       # the replay memory's transitions at most (oldest dropped first)


def epsilon(progress: float, start: float = 1.0, end: float = 0.05, share: float = 0.5) -> float:
    """The share of random actions: from `start` down to `end` over the first `share` of the learning, then `end`."""
    return end + (start - end) * max(0.0, 1.0 - progress / share)


class DQN:
    """Double DQN on a network that reads the keys `keys` of a rollout and answers the actions' values."""

    def __init__(self, q: torch.nn.Module, keys: list, actions: int, gamma: float = 0.99, epochs: int = 4,
                 minibatch: int = 256, grad_clip: float = 10.0):
        actor = QValueActor(TensorDictModule(q, in_keys=keys, out_keys=["action_value"]), in_keys=keys,
                            spec=Categorical(actions))
        self.loss = DQNLoss(actor, loss_function="smooth_l1", delay_value=True, double_dqn=True,
                            action_space="categorical")
        self.loss.make_value_estimator(gamma=gamma)
        self.target = HardUpdate(self.loss, value_network_update_interval=TARGET_EVERY)
        self.keys, self.epochs, self.minibatch, self.grad_clip = keys, epochs, minibatch, grad_clip
        self.memory: TensorDictReplayBuffer | None = None

    def begin_epoch(self) -> None:
        """The memory emptied and the target made a copy of the network: where each epoch starts (resume is exact)."""
        self.memory = TensorDictReplayBuffer(storage=LazyTensorStorage(MEMORY))
        if not self.target.initialized:
            self.target.init_()
        self.target.counter = self.target.value_network_update_interval   # so that this step copies, and the
        self.target.step()                                                # count starts again from 0

    @staticmethod
    def transitions(batch: TensorDict) -> TensorDict:
        """A rollout (N, T) kept with `keep_next` as flat transitions in DQNLoss's layout."""
        flat = batch.reshape(-1)
        out = TensorDict({"observation": flat["observation"], "action": flat["action"],
                          "next": {"observation": flat["next_observation"], "reward": flat["reward"],
                                   "done": flat["terminated"], "terminated": flat["terminated"]}},
                         batch_size=flat.batch_size)
        if "episode" in flat.keys():   # a per-episode key the network reads: the next state is the same episode's
            out["episode"] = out["next", "episode"] = flat["episode"]
        return out

    def update(self, batch: TensorDict, opt: torch.optim.Optimizer, params, g: torch.Generator,
               autocast=None) -> dict[str, float]:
        """The rollout into the memory, then as many minibatches drawn from the memory as passes over the
        rollout (`epochs`) would give; the mean TD loss. The target follows every TARGET_EVERY updates."""
        if self.memory is None:
            self.begin_epoch()
        fresh = self.transitions(batch)
        self.memory.extend(fresh)
        params = list(params)
        total, count = 0.0, 0
        for _ in range(self.epochs * max(1, len(fresh) // self.minibatch)):
            idx = torch.randint(len(self.memory), (self.minibatch,), generator=g)
            part = self.memory[idx]
            with (autocast or contextlib.nullcontext)():
                loss = self.loss(part)["loss"]
            backward_step(opt, loss.float(), params, self.grad_clip)
            total += loss.item()
            count += 1
        self.target.step()
        return {"loss": total / count}
