"""Keras activations by name, as torch functions on deepix's layout (channels at dim 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError


def _channel_dim(x: torch.Tensor) -> int:
    # Keras normalises over the last (channel) axis; images keep channels at dim 1 here
    return 1 if x.ndim == 4 else -1


def linear(x):
    return x


def softmax(x):
    return torch.softmax(x, _channel_dim(x))


def log_softmax(x):
    return torch.log_softmax(x, _channel_dim(x))


def leaky_relu(x):
    return F.leaky_relu(x, 0.2)  # Keras 3's default slope


FUNCTIONS = {
    "linear": linear, "relu": F.relu, "relu6": F.relu6, "leaky_relu": leaky_relu, "elu": F.elu, "selu": F.selu,
    "gelu": F.gelu, "sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid, "tanh": torch.tanh,
    "softmax": softmax, "log_softmax": log_softmax, "softplus": F.softplus, "softsign": F.softsign,
    "silu": F.silu, "swish": F.silu, "mish": F.mish, "exponential": torch.exp, "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
}
# non-decreasing, so they commute with max-pooling: the pool can run first, on fewer values
MONOTONIC = {"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
             "softplus", "softsign", "exponential"}
# outputs that losses can take as logits instead, for numerical stability
HEADS = {"softmax", "sigmoid"}


def name_of(activation) -> str:
    """The Keras name of an activation given as a name, None, or one of the functions here."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        name = activation.lower()
    else:
        name = getattr(activation, "__name__", "")
        if name not in FUNCTIONS:
            raise UserError(f"deepix.keras takes activations by name (e.g. 'relu'); got {activation!r}")
    if name not in FUNCTIONS:
        raise UserError(f"unknown activation {activation!r}: use one of {', '.join(sorted(FUNCTIONS))}")
    return name


def get(name: str):
    return FUNCTIONS[name_of(name)]


relu, sigmoid, tanh, elu, selu, gelu = F.relu, torch.sigmoid, torch.tanh, F.elu, F.selu, F.gelu
