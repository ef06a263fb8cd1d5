"""Keras optimizers with Keras's defaults, run by torch.optim (fused kernels where torch has them)."""
from __future__ import annotations

import math

import torch

from ..errors import UserError


class Optimizer:
    """Keras's arguments in, a torch optimizer underneath once the model's weights exist."""

    def __init__(self, learning_rate, hyper: dict, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, lr=None, **kw):
        kind = type(self).__name__
        for key, value in kw.items():
            # Keras's other options (use_ema, loss_scale_factor, ...) are off by default
            if value not in (None, False):
                raise UserError(f"deepix.keras does not support {kind}({key}=...) yet; remove it")
        rate = lr if lr is not None else learning_rate  # `lr` is the Keras 2 spelling
        if not isinstance(rate, (int, float)):
            raise UserError(f"deepix.keras does not support learning-rate schedules ({type(rate).__name__}) yet; "
                            f"pass a number and use ReduceLROnPlateau or LearningRateScheduler callbacks")
        if rate <= 0 or not math.isfinite(rate):
            raise UserError(f"{kind} learning_rate must be a positive number; got {rate}")
        self.hyper = hyper
        self._lr = float(rate)
        self.weight_decay, self.clipnorm, self.clipvalue, self.global_clipnorm = (
            weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.name = name or kind.lower()
        self.torch = None
        self._params: list[torch.nn.Parameter] = []

    def make(self, params, lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError

    def native_decay(self) -> bool:
        """Whether the torch optimizer applies Keras's decoupled weight decay itself."""
        return False

    def build(self, params) -> None:
        params = [p for p in params if p.requires_grad]
        if self.torch is not None and [id(p) for p in params] == [id(p) for p in self._params]:
            return  # the same weights: keep the moments, as Keras does across fit() calls
        if not params:
            raise UserError("the model has no trainable weights; build it (input_shape=...) or unfreeze a layer")
        self._params = params
        self.torch = self.make(params, self._lr)

    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._lr = float(value)
        if self.torch is not None:
            for group in self.torch.param_groups:
                group["lr"] = self._lr

    lr = learning_rate

    def step_fn(self):
        """The per-step update: torch's own step when nothing has to happen around it."""
        decay = self.weight_decay and not self.native_decay()
        extra = self.clipnorm or self.clipvalue or self.global_clipnorm or decay
        return self.torch.step if not extra else self._step

    @torch.no_grad()
    def _step(self) -> None:
        with_grad = [p for p in self._params if p.grad is not None]
        if self.clipvalue:
            torch.nn.utils.clip_grad_value_(with_grad, self.clipvalue)
        if self.clipnorm:  # Keras clips each weight's gradient by its own norm
            for p in with_grad:
                torch.nn.utils.clip_grad_norm_([p], self.clipnorm)
        if self.global_clipnorm:
            torch.nn.utils.clip_grad_norm_(with_grad, self.global_clipnorm)
        if self.weight_decay and not self.native_decay():
            for p in with_grad:
                p.mul_(1 - self._lr * self.weight_decay)
        self.torch.step()

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__,
                "config": {"learning_rate": self._lr, "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                           "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm, **self.hyper}}


class SGD(Optimizer):
    """Keras defaults: learning_rate 0.01, momentum 0, no Nesterov."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kw):
        super().__init__(learning_rate, {"momentum": float(momentum), "nesterov": bool(nesterov)}, **kw)

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.SGD(params, lr=lr, momentum=h["momentum"], nesterov=bool(h["nesterov"]), fused=True)


class Adam(Optimizer):
    """Keras defaults: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kw):
        super().__init__(learning_rate, {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon,
                                         "amsgrad": bool(amsgrad)}, **kw)

    def native_decay(self):
        return True

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.Adam(params, lr=lr, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"],
                                amsgrad=bool(h["amsgrad"]), weight_decay=self.weight_decay or 0.0,
                                decoupled_weight_decay=True, fused=True)


class AdamW(Adam):
    """Keras defaults: Adam's, with decoupled weight_decay 0.004."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kw):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kw)


class RMSprop(Optimizer):
    """Keras defaults: learning_rate 1e-3, rho 0.9, momentum 0, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kw):
        super().__init__(learning_rate, {"rho": rho, "momentum": momentum, "epsilon": epsilon,
                                         "centered": bool(centered)}, **kw)

    def make(self, params, lr):
        h = self.hyper
        # Keras adds epsilon under the square root, torch outside it: sqrt(eps) matches where it matters
        return torch.optim.RMSprop(params, lr=lr, alpha=h["rho"], eps=math.sqrt(h["epsilon"]),
                                   momentum=h["momentum"], centered=bool(h["centered"]), foreach=True)


class Adagrad(Optimizer):
    """Keras defaults: learning_rate 1e-3, initial_accumulator_value 0.1, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kw):
        super().__init__(learning_rate, {"initial_accumulator_value": initial_accumulator_value,
                                         "epsilon": epsilon}, **kw)

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.Adagrad(params, lr=lr, initial_accumulator_value=h["initial_accumulator_value"],
                                   eps=math.sqrt(h["epsilon"]), fused=True)


class Adamax(Optimizer):
    """Keras defaults: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kw):
        super().__init__(learning_rate, {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}, **kw)

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.Adamax(params, lr=lr, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"], foreach=True)


class Nadam(Optimizer):
    """Keras defaults: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kw):
        super().__init__(learning_rate, {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}, **kw)

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.NAdam(params, lr=lr, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"], foreach=True)


class Adadelta(Optimizer):
    """Keras defaults: learning_rate 1e-3, rho 0.95, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kw):
        super().__init__(learning_rate, {"rho": rho, "epsilon": epsilon}, **kw)

    def make(self, params, lr):
        h = self.hyper
        return torch.optim.Adadelta(params, lr=lr, rho=h["rho"], eps=h["epsilon"], foreach=True)


CLASSES = {c.__name__.lower(): c for c in (SGD, Adam, AdamW, RMSprop, Adagrad, Adamax, Nadam, Adadelta)}


def get(optimizer) -> Optimizer:
    """An Optimizer from a name ('adam'), an Optimizer, or a saved config."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in CLASSES:
        return CLASSES[optimizer.lower()]()
    if isinstance(optimizer, dict) and str(optimizer.get("class_name", "")).lower() in CLASSES:
        return CLASSES[optimizer["class_name"].lower()](**optimizer.get("config", {}))
    if isinstance(optimizer, torch.optim.Optimizer):
        raise UserError("compile() takes a deepix.keras optimizer (e.g. deepix.keras.optimizers.Adam()) or a name; "
                        "a torch.optim optimizer is tied to weights that may not exist yet")
    raise UserError(f"unknown optimizer {optimizer!r}: use one of {', '.join(CLASSES)} or a "
                    f"deepix.keras.optimizers object")
