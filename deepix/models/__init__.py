"""A registry: name -> builder. `tv:NAME` and `timm:NAME` reach torchvision's and timm's classifiers."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from . import external
from .registry import ACTIVATIONS, KINDS, REGISTRY, Spec, act_pool, activation, register  # noqa: F401 (public)


def kind_of(name: str) -> str:
    _load_families()
    return REGISTRY[name][2] if name in REGISTRY else "classify"


def _load_families() -> None:
    # on first use, not at import: `deepix --help` need not build the model families
    from . import ddpm, dncnn, fcos, gan, resnet_small, searcher_cnn, seed_cnn, sr, unet_small, vgg_small  # noqa: F401  (registers them)


def build_model(name: str, spec: Spec) -> nn.Module:
    _load_families()
    if name.startswith(("tv:", "timm:")):
        return external.build(name, spec)
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}: run `deepix models` for the list, or use tv:NAME / timm:NAME")
    return REGISTRY[name][0](spec)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[tuple[str, str, str, int]]:
    """(name, kind, description, parameters: 28x28 gray in and 10 classes out, gray images in and out,
    generators 28x28 gray with 10 classes, or for detectors RGB in and 5 classes out)."""
    _load_families()
    out = []
    for n, (fn, d, kind) in REGISTRY.items():
        classes = 10 if kind in ("classify", "generate") else 1
        spec = Spec(3, 5, (128, 128)) if kind == "detect" else Spec(1, classes, (28, 28))
        spec.scale = 2 if kind == "upscale" else 1
        out.append((n, kind, d, count_params(fn(spec))))
    return out


class Preprocess(nn.Module):
    """Standardises [0, 1] input with the training set's statistics, kept in the weights file."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def with_preprocess(net: nn.Module, mean: list[float], std: list[float]) -> nn.Sequential:
    return nn.Sequential(Preprocess(mean, std), net)


class Logits(nn.Module):
    """A model that ends in softmax/sigmoid (a Keras-front model), seen through its logits,
    which deepix's losses take for numerical stability."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_logits(x)


def adopt(net: nn.Module) -> nn.Module:
    """A user's own nn.Module made ready for deepix's classification losses."""
    return Logits(net) if hasattr(net, "forward_logits") else net


def build_classifier(cfg, classes: int, channels: int, size, mean, std, net: torch.nn.Module | None = None):
    """The registry's model for cfg.model, or the user's own `net`; with input standardisation."""
    if net is not None:
        # a user's model takes pixels in [0, 1] as they are, the way it was written to
        return with_preprocess(adopt(net), [0.0] * channels, [1.0] * channels)
    spec = Spec(channels, classes, tuple(size), cfg.activation, cfg.kernel_size, cfg.width, cfg.dropout)
    return with_preprocess(build_model(cfg.model, spec), mean, std)
