"""The layer base class: Keras-style construction, lazy weights, Keras shapes and names."""
from __future__ import annotations

import re

import torch
from torch import nn

from ...errors import UserError
from .. import activations

_counts: dict[str, int] = {}


def unique_name(base: str) -> str:
    # Keras numbers names per process (conv2d, conv2d_1, ...); users see them in summary()
    n = _counts.get(base, 0)
    _counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def reset_names() -> None:
    _counts.clear()


def snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unsupported(what: str, fix: str = "remove it") -> UserError:
    return UserError(f"deepix.keras does not support {what} yet; {fix}")


def pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise UserError(f"{what} must be an int or a pair of ints; got {value!r}")


def to_keras(x: torch.Tensor) -> torch.Tensor:
    """Internal layout to Keras's: images are (N, C, H, W) inside, (N, H, W, C) in Keras."""
    return x.permute(0, 2, 3, 1) if x.ndim == 4 else x


def from_keras(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x


class Layer(nn.Module):
    """A Keras layer as an nn.Module: arguments at construction, weights made by build(shape)."""

    takes_images = False    # wants (H, W, C) inputs, so (N, H, W) arrays get a channel axis
    activation_name = None  # the name of a fused activation (Dense, Conv2D), if any

    def __init__(self, name=None, trainable=True, input_shape=None, input_dim=None, dtype=None, **unknown):
        super().__init__()
        kind = type(self).__name__
        for key, value in unknown.items():
            # Keras's optional arguments default to None; passing that is harmless
            if value is not None and value is not False:
                raise unsupported(f"{kind}({key}=...)")
        if dtype not in (None, "float32", torch.float32):
            raise unsupported(f"{kind}(dtype={dtype!r})",
                              "deepix.keras picks the precision itself (bf16 where it pays)")
        self.name = name or unique_name(snake(kind))
        if input_shape is not None:
            self.input_shape_arg = tuple(int(s) for s in input_shape)
        elif input_dim is not None:
            self.input_shape_arg = (int(input_dim),)
        else:
            self.input_shape_arg = None
        self.built = False
        self.output_shape_ = None
        self._trainable = bool(trainable)

    # subclasses: config() gives their own arguments; build() makes weights and returns the output shape
    def config(self) -> dict:
        return {}

    def build(self, shape: tuple) -> tuple:
        return shape

    def setup(self, shape: tuple) -> tuple:
        """Builds for a Keras-form input shape (no batch axis); returns the output shape."""
        if not self.built:
            out = self.build(tuple(shape))
            self.built = True
            self.trainable = self._trainable
        else:
            out = self.compute_shape(tuple(shape))
        self.output_shape_ = tuple(out)
        return self.output_shape_

    def compute_shape(self, shape: tuple) -> tuple:
        return self.output_shape_

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self._trainable, **self.config()}
        if self.input_shape_arg is not None:
            cfg["input_shape"] = list(self.input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, cfg: dict) -> "Layer":
        return cls(**cfg)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for p in self.parameters():
            p.requires_grad_(self._trainable)

    def keras_weights(self) -> list[torch.Tensor]:
        """Weights in Keras's order and layout (e.g. conv kernels as (kh, kw, in, out))."""
        return [p.detach() for p in self.parameters()]

    def set_keras_weights(self, values: list) -> None:
        own = self.keras_weights()
        if len(values) != len(own):
            raise UserError(f"layer {self.name} has {len(own)} weights; got {len(values)}")
        with torch.no_grad():
            for mine, new in zip(own, values):
                new = torch.as_tensor(new, dtype=mine.dtype)
                if new.shape != mine.shape:
                    raise UserError(f"layer {self.name}: a weight of shape {tuple(new.shape)} cannot replace "
                                    f"one of shape {tuple(mine.shape)}")
                mine.copy_(new)

    def get_weights(self) -> list:
        return [w.cpu().numpy().copy() for w in self.keras_weights()]

    def set_weights(self, values: list) -> None:
        self.set_keras_weights(values)

    def extra_repr(self) -> str:
        return self.name


class WithActivation(Layer):
    """A layer that ends in an activation: linear() is the part before it."""

    def __init__(self, activation=None, **kw):
        super().__init__(**kw)
        self.activation_name = activations.name_of(activation)
        self.act = activations.get(self.activation_name)

    def linear(self, x):
        raise NotImplementedError

    def forward(self, x):
        return self.act(self.linear(x))
