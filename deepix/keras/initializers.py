"""Keras's weight initialisers by name, filling torch tensors in place."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError

# the standard deviation of a unit normal truncated at two standard deviations
_TRUNCATED_STD = 0.87962566103423978


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # torch layouts: (out, in) for Dense, (out, in, kh, kw) for Conv2D
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _variance_scaling(t: torch.Tensor, scale: float, mode: str, distribution: str) -> None:
    fan_in, fan_out = _fans(tuple(t.shape))
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)
        nn.init.uniform_(t, -limit, limit)
    else:
        std = math.sqrt(variance) / _TRUNCATED_STD
        nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)


SCALED = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"), "glorot_normal": (1.0, "fan_avg", "normal"),
    "he_uniform": (2.0, "fan_in", "uniform"), "he_normal": (2.0, "fan_in", "normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"), "lecun_normal": (1.0, "fan_in", "normal"),
}
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal"}
OTHERS = ("zeros", "ones", "random_normal", "random_uniform", "truncated_normal", "orthogonal")


def check(name) -> str:
    if not isinstance(name, str):
        raise UserError(f"deepix.keras takes initialisers by name (e.g. 'he_normal'); got {name!r}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SCALED and key not in OTHERS:
        raise UserError(f"unknown initializer {name!r}: use one of {', '.join(sorted((*SCALED, *OTHERS)))}")
    return key


@torch.no_grad()
def fill(t: torch.Tensor, name: str) -> torch.Tensor:
    key = check(name)
    if key in SCALED:
        _variance_scaling(t, *SCALED[key])
    elif key == "zeros":
        t.zero_()
    elif key == "ones":
        t.fill_(1.0)
    elif key == "random_normal":
        t.normal_(0.0, 0.05)  # Keras's default stddev
    elif key == "random_uniform":
        t.uniform_(-0.05, 0.05)
    elif key == "truncated_normal":
        nn.init.trunc_normal_(t, 0.0, 0.05, -0.1, 0.1)
    else:
        nn.init.orthogonal_(t)
    return t
