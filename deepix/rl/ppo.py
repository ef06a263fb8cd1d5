"""Proximal policy optimisation (Schulman et al. 2017). The parts come from well-kept libraries: the
vectorised environments from gymnasium, the clipped objective with its value and entropy terms from
TorchRL's ClipPPOLoss, the advantages from TorchRL's generalised advantage estimation. deepix keeps the
rollout and the minibatch loop, so that every draw comes from generators seeded by the run's seed and
epoch: a resumed run repeats an uninterrupted one."""
from __future__ import annotations

import contextlib
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from ..engine.optim import backward_step

# the value loss's weight while cloning: at PPO's 0.5 its returns' scale drowned the expert's labels (the
# cloning loss stayed at chance on locate); small, the value still starts PPO from returns it has seen
VALUE_WHILE_CLONING = 0.05

# act(observations, fresh) -> (logits (N, A), values (N,)); `fresh` marks the environments whose episode
# has just begun (a policy that plans once per episode recomputes only those)
Act = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]


def vector_env(make: Callable[[], gym.Env], n: int) -> gym.vector.SyncVectorEnv:
    """n copies in one process, reset in the same step as they end (the final observation in the info)."""
    return gym.vector.SyncVectorEnv([make for _ in range(n)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def as_tensors(obs):
    """A vector env's observations (an array, or a dict of arrays for Dict spaces) as tensors."""
    if isinstance(obs, dict):
        return {k: as_tensors(v) for k, v in obs.items()}
    return torch.from_numpy(np.asarray(obs))


def where_cut(obs, final, cut: np.ndarray):
    """The observations with those of the environments in `cut` replaced by their episode's final one."""
    if isinstance(obs, dict):  # Dict observations: the final ones as dicts (or gathered key by key)
        return {k: where_cut(v, final[k] if isinstance(final, dict) else
                             [f[k] if isinstance(f, dict) else None for f in final], cut) for k, v in obs.items()}
    return np.stack([np.asarray(final[i], obs.dtype) if cut[i] else obs[i] for i in range(len(cut))])


class Rollouts:
    """Steps vectorised environments with a policy; keeps their episodes running across calls. The
    environments' info holds "steps" and "success" (the episode's figures when it ends)."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int):
        self.envs = envs
        self.obs, _ = envs.reset(seed=seed)
        self.episode = np.arange(envs.num_envs, dtype=np.int64)   # an id per episode, for policies that plan once
        self.next_id = envs.num_envs
        self.returns = np.zeros(envs.num_envs)
        self.finished: list[dict] = []   # {"return", "length", "success"} of each episode that ended

    def collect(self, act: Act, steps: int, g: torch.Generator, expert: Callable[[], np.ndarray] | None = None,
                beta: float = 0.0, epsilon: float | None = None, keep_next: bool = False) -> TensorDict:
        """`steps` steps of every environment: a (N, steps) TensorDict with what PPO needs. `expert`, when
        given, names the expert's action in every environment's current state ("expert_action", for DAgger):
        an action index each, or a distribution over the actions each; with `beta`, each step of each
        environment takes the expert's action (drawn from its distribution) with that probability, DAgger's
        mixture, so that a learner that knows nothing yet still reaches the states an expert reaches.
        `epsilon` (DQN): the logits are read as the actions' values, and the best is taken except with that
        probability, when an action is drawn uniformly. `keep_next` keeps each step's next observation (the
        episode's final one where it ended) as "next_observation", for Q-learning's targets."""
        n = self.envs.num_envs
        rec = {k: [] for k in ("observation", "episode", "action", "action_log_prob", "state_value", "reward",
                               "done", "terminated", "next_state_value")}
        if expert is not None:
            rec["expert_action"] = []
        if keep_next:
            rec["next_observation"] = []
        with torch.no_grad():
            logits, value = act(self.obs, np.ones(n, bool))  # the policy changed since the last call
            for _ in range(steps):
                logp = torch.log_softmax(logits.float(), -1)
                if epsilon is None:
                    action = torch.multinomial(logp.exp(), 1, generator=g)[:, 0]
                else:
                    wild = torch.randint(logits.shape[1], (n,), generator=g)
                    action = torch.where(torch.rand(n, generator=g) < epsilon, wild, logits.float().argmax(1))
                rec["observation"].append(as_tensors(self.obs))
                if expert is not None:
                    want = torch.as_tensor(expert())
                    rec["expert_action"].append(want)
                    if beta > 0:
                        pick = want if want.dim() == 1 else torch.multinomial(want.float(), 1, generator=g)[:, 0]
                        action = torch.where(torch.rand(n, generator=g) < beta, pick, action)
                rec["episode"].append(torch.from_numpy(self.episode.copy()))
                rec["action"].append(action)
                rec["action_log_prob"].append(logp.gather(1, action[:, None])[:, 0])
                rec["state_value"].append(value.float())
                obs, reward, term, trunc, info = self.envs.step(action.numpy())
                ended = term | trunc
                if keep_next:
                    rec["next_observation"].append(as_tensors(where_cut(obs, info["final_obs"], ended)
                                                              if ended.any() else obs))
                self.returns += reward
                fresh = ended.copy()
                logits, value = act(obs, fresh)
                nxt = value.float().clone()
                if trunc.any():  # cut off, not failed: the value of where it stood, not of the new episode's start
                    final = where_cut(obs, info["final_obs"], trunc)
                    stale = trunc.copy()
                    nxt = torch.where(torch.from_numpy(trunc), act(final, stale)[1].float(), nxt)
                    # the policy's per-episode state now belongs to the final observations: refresh it
                    logits, value = act(obs, stale | fresh)
                rec["reward"].append(torch.as_tensor(reward, dtype=torch.float32))
                rec["done"].append(torch.from_numpy(ended))
                rec["terminated"].append(torch.from_numpy(term))
                rec["next_state_value"].append(nxt)
                for i in np.flatnonzero(ended):
                    fi = info["final_info"]
                    self.finished.append({"return": float(self.returns[i]), "length": int(fi["steps"][i]),
                                          "success": bool(fi["success"][i])})
                    self.returns[i] = 0.0
                    self.episode[i] = self.next_id
                    self.next_id += 1
                self.obs = obs
        out = {k: stack(v) for k, v in rec.items()}
        for k in ("state_value", "reward", "done", "terminated", "next_state_value"):
            out[k] = out[k].unsqueeze(-1)
        return TensorDict(out, batch_size=[n, steps])


def stack(steps: list):
    """Per-step tensors (or dicts of them) stacked along a new time dimension 1."""
    if isinstance(steps[0], dict):
        return {k: stack([s[k] for s in steps]) for k in steps[0]}
    return torch.stack(steps, 1)


class PPO:
    """The clipped objective on a policy and a value network that read the keys `keys` of a rollout."""

    def __init__(self, policy: torch.nn.Module, value: torch.nn.Module, keys: list[str], clip: float = 0.2,
                 entropy: float = 0.01, gamma: float = 0.99, lmbda: float = 0.95, epochs: int = 4,
                 minibatch: int = 256, grad_clip: float = 0.5, joint: torch.nn.Module | None = None):
        actor = ProbabilisticActor(TensorDictModule(policy, in_keys=keys, out_keys=["logits"]), in_keys=["logits"],
                                   distribution_class=torch.distributions.Categorical, return_log_prob=True)
        critic = ValueOperator(value, in_keys=keys)
        self.loss = ClipPPOLoss(actor, critic, clip_epsilon=clip, entropy_coeff=entropy, critic_coeff=0.5,
                                normalize_advantage=True, loss_critic_type="smooth_l1")
        self.loss.set_keys(sample_log_prob="action_log_prob")
        self.gamma, self.lmbda, self.epochs, self.minibatch, self.grad_clip = gamma, lmbda, epochs, minibatch, grad_clip
        # joint(*inputs) -> (logits, values): one pass for both where they share a trunk (cloning uses it)
        self.policy, self.value, self.keys, self.joint = policy, value, keys, joint

    def targets(self, batch: TensorDict) -> None:
        """GAE advantages and value targets into the (N, T) rollout."""
        adv, target = vec_generalized_advantage_estimate(
            self.gamma, self.lmbda, batch["state_value"], batch["next_state_value"], batch["reward"],
            batch["done"], batch["terminated"], time_dim=-2)
        batch["advantage"], batch["value_target"] = adv, target

    def imitate(self, batch: TensorDict, opt: torch.optim.Optimizer, params, g: torch.Generator,
                autocast=None, pool: list[TensorDict] | None = None) -> dict[str, float]:
        """DAgger (Ross et al., 2011): the states the learner itself visited, labelled with the expert's action
        ("expert_action": indices, or distributions over the actions), learnt by cross-entropy; the value learns
        the rollout's GAE targets meanwhile. `pool`, when given, is the aggregate of earlier rollouts (flat):
        this one joins it, and as many minibatches as this rollout alone would give are drawn from the whole."""
        self.targets(batch)
        params = list(params)
        flat = batch.reshape(-1)
        data = flat if pool is None else torch.cat([*pool, flat])
        if pool is not None:
            pool.append(flat)
        sums, count = {"loss": 0.0, "value_loss": 0.0, "entropy": 0.0}, 0
        for _ in range(self.epochs):
            order = torch.randperm(len(data), generator=g)[:len(flat)]
            for i in range(0, len(flat), self.minibatch):
                part = data[order[i:i + self.minibatch]].clone()
                with (autocast or contextlib.nullcontext)():
                    inputs = [part[k] for k in self.keys]
                    if self.joint is not None:
                        logits, value = self.joint(*inputs)
                        logits, value = logits.float(), value.float().reshape(-1, 1)
                    else:
                        logits, value = self.policy(*inputs).float(), self.value(*inputs).float()
                logp = torch.log_softmax(logits, -1)
                want = part["expert_action"]
                policy_loss = (torch.nn.functional.nll_loss(logp, want) if want.dim() == 1
                               else -(want.float() * logp).sum(-1).mean())
                value_loss = torch.nn.functional.smooth_l1_loss(value, part["value_target"])
                backward_step(opt, policy_loss + VALUE_WHILE_CLONING * value_loss, params, self.grad_clip)
                sums["loss"] += policy_loss.item()
                sums["value_loss"] += value_loss.item()
                sums["entropy"] += float(-(logp.exp() * logp).sum(-1).mean().detach())
                count += 1
        return {k: v / count for k, v in sums.items()}

    def update(self, batch: TensorDict, opt: torch.optim.Optimizer, params, g: torch.Generator,
               autocast=None) -> dict[str, float]:
        """Advantages for the (N, T) rollout, then `epochs` passes of shuffled minibatches; the mean losses.
        `autocast`: a context for the networks' passes (bf16 where the machine has it)."""
        self.targets(batch)
        flat = batch.reshape(-1)
        params = list(params)
        # gathers with repeated indices accumulate their gradients in a thread-dependent order unless asked not to
        deterministic = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return self._passes(flat, opt, params, g, autocast or contextlib.nullcontext)
        finally:
            torch.use_deterministic_algorithms(deterministic)

    def _passes(self, flat: TensorDict, opt, params, g, autocast) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        for _ in range(self.epochs):
            order = torch.randperm(len(flat), generator=g)
            for i in range(0, len(flat), self.minibatch):
                part = flat[order[i:i + self.minibatch]]
                with autocast():
                    out = self.loss(part)
                loss = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                backward_step(opt, loss, params, self.grad_clip)
                for k in ("loss_objective", "loss_critic", "entropy", "clip_fraction", "kl_approx"):
                    if k in out.keys():
                        sums[k] = sums.get(k, 0.0) + float(out[k].detach().mean())
                count += 1
        return {k: v / count for k, v in sums.items()}
