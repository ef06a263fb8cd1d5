"""Where a network's convolution and pooling stages are, what they output, how far each one sees
(its receptive field), and which layer Grad-CAM looks at."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..models import Logits, Preprocess
from ..keras.layers import conv, core
from ..models.fcos import FCOS
from ..keras import activations

TORCH_CONV = (nn.Conv2d,)
TORCH_POOL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _keras():
    return conv, core


def is_conv(m: nn.Module) -> bool:
    conv, _ = _keras()
    return isinstance(m, (*TORCH_CONV, conv.Conv2D))


def is_pool(m: nn.Module) -> bool:
    conv, _ = _keras()
    return isinstance(m, (*TORCH_POOL, conv._Pooling2D, conv._GlobalPooling2D))


class KerasPlain(nn.Module):
    """A deepix.keras Sequential run layer by layer as written, up to its logits. Its own plan fuses
    Conv2D + MaxPooling2D into calls that bypass the modules, so hooks (and Grad-CAM) would never see the
    convolution; this order computes the same function through every layer's module."""

    def __init__(self, seq):
        super().__init__()
        _, core = _keras()
        layers = list(seq.layers)
        head = seq.head
        self.tail_linear = False  # the last layer's activation is the softmax / sigmoid to leave out
        if head:
            if isinstance(layers[-1], core.Softmax) or (isinstance(layers[-1], core.Activation)
                                                        and layers[-1].activation_name in activations.HEADS):
                layers = layers[:-1]
            else:
                self.tail_linear = True
        self.layers = nn.ModuleList(layers)
        dense = [i for i, m in enumerate(layers) if isinstance(m, core.Dense)]
        self.last_dense = dense[-1] if dense else -1
        self.features = nn.Identity()  # its input is what the last Dense layer reads: the embedding

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == self.last_dense:
                x = self.features(x)
            x = layer.linear(x) if i == last and self.tail_linear else layer(x)
        return x


def net_of(model: nn.Module) -> nn.Module:
    """The network inside deepix's Sequential(Preprocess, net) wrapper."""
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], Preprocess):
        return model[1]
    return model


@contextlib.contextmanager
def hookable(model: nn.Module):
    """The model in a form whose every stage can be hooked: Keras-front networks in plain layer order,
    in-place activations made out-of-place (they would overwrite the maps the hooks keep); undone after."""
    inner = net_of(model)
    if isinstance(inner, Logits) and hasattr(inner.net, "plan"):
        plain = KerasPlain(inner.net)
        model = plain if inner is model else nn.Sequential(model[0], plain)
    flipped = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in flipped:
        m.inplace = False
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        for m in flipped:
            m.inplace = True
        model.train(was)


def named_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the network's layers: Keras layer names for Keras-front models, module paths
    (as in `model.named_modules()`) otherwise."""
    net = net_of(model)
    if isinstance(net, KerasPlain):
        return [(layer.name, layer) for layer in net.layers]
    return [(n, m) for n, m in net.named_modules() if n]


@dataclass
class Stage:
    """A convolution or pooling layer as one forward pass saw it."""
    name: str
    kind: str                      # "conv" or "pool"
    layer: str                     # what it is, e.g. "conv 5x5 /1" or "max pool 2x2 /2"
    shape: tuple                   # its output (C, H, W), or (C,) for a global pooling
    rf: tuple[int, int]            # receptive field (rows, columns) in input pixels
    jump: tuple[int, int]          # input pixels between neighbouring outputs
    start: tuple[float, float]     # input pixel at the centre of the first output's field

    def rf_text(self) -> str:
        r, c = self.rf
        return f"{r} px" if r == c else f"{r}x{c} px"


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[-1]))


def geometry(m: nn.Module) -> tuple[str, tuple, tuple, tuple, tuple] | None:
    """(description, kernel, stride, dilation, padding before the first row and column) of a convolution
    or windowed pooling; None for a pooling that covers the whole map (adaptive / global)."""
    conv, _ = _keras()
    if isinstance(m, nn.Conv2d):
        k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        p = m.padding if not isinstance(m.padding, str) else (0 if m.padding == "valid" else
                                                               tuple((dd * (kk - 1)) // 2 for kk, dd in zip(k, d)))
        what = "conv"
    elif isinstance(m, conv.Conv2D):
        k, s, d = _pair(m.kernel_size), _pair(m.strides), _pair(m.dilation_rate)
        p = (m._pad[2], m._pad[0])
        what = "conv"
    elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
        d, p = _pair(getattr(m, "dilation", 1)), m.padding
        what = "max pool" if isinstance(m, nn.MaxPool2d) else "avg pool"
    elif isinstance(m, conv._Pooling2D):
        k, s, d, p = _pair(m.pool_size), _pair(m.strides), (1, 1), (m._pad[2], m._pad[0])
        what = "max pool" if m.mode == "max" else "avg pool"
    else:
        return None
    dil = f" dilation {d[0]}" if d != (1, 1) else ""
    return f"{what} {k[0]}x{k[1]} /{s[0]}{dil}", k, s, d, _pair(p)


@dataclass
class Trace:
    """What one forward pass showed: the stages in the order they ran, their outputs, the model's output,
    and for each map size the (receptive field, jump, start) of the last map of that size."""
    stages: list[Stage]
    maps: dict[str, torch.Tensor]
    output: torch.Tensor
    fields: dict[tuple, tuple]

    def placement(self, shape) -> tuple | None:
        """(start, jump) that puts a map of this (C, H, W) shape on the input's pixels."""
        f = self.fields.get(tuple(shape[-2:]))
        return (f[2], f[1]) if f else None


def trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """One forward pass of `x` through a hookable model, watching every convolution and pooling stage.

    Receptive fields follow the data: a stage reads the map of its input's size that was written last, and
    its field is that map's field plus (kernel - 1) x dilation of that map's steps; the centre of its first
    output moves by ((kernel - 1) / 2 - padding) steps. Where branches meet (a residual sum) the larger field
    is kept, so a ResNet's skip connections do not shrink it. Near the border part of a field falls on
    padding, outside the image."""
    hw = tuple(x.shape[-2:])
    fields = {hw: ((1, 1), (1, 1), (0.0, 0.0))}
    stages, maps = [], {}
    names = {id(m): n for n, m in named_layers(model)}

    def hook(m, inputs, out):
        if not torch.is_tensor(out) or id(m) not in names:
            return
        size = tuple(inputs[0].shape[-2:])
        if size in fields:
            rf, jump, start = fields[size]
        else:  # made by an operation that is no module (a functional resize): judge by the sizes
            rf = max(v[0] for v in fields.values())
            jump = tuple(max(1, round(a / b)) for a, b in zip(hw, size))
            start = tuple((j - 1) / 2 for j in jump)
        geo = geometry(m)
        if geo is None:  # global / adaptive pooling: each output sees all of its input
            desc = "global pool" if out.ndim == 2 or out.shape[-1] == 1 else "adaptive pool"
            k = tuple(-(-n // max(1, o)) for n, o in zip(size, out.shape[-2:] if out.ndim == 4 else (1, 1)))
            rf = tuple(r + (kk - 1) * j for r, kk, j in zip(rf, k, jump))
            start = tuple(s0 + (kk - 1) / 2 * j for s0, kk, j in zip(start, k, jump))
            jump = tuple(j * kk for j, kk in zip(jump, k))
        else:
            desc, k, s, d, p = geo
            rf = tuple(r + (kk - 1) * dd * j for r, kk, dd, j in zip(rf, k, d, jump))
            start = tuple(s0 + ((kk - 1) * dd / 2 - pp) * j for s0, kk, dd, pp, j in zip(start, k, d, p, jump))
            jump = tuple(j * ss for j, ss in zip(jump, s))
        if out.ndim == 4:
            old = fields.get(tuple(out.shape[-2:]))
            fields[tuple(out.shape[-2:])] = (tuple(map(max, rf, old[0])) if old else rf, jump, start)
        stages.append(Stage(names[id(m)], "conv" if is_conv(m) else "pool", desc, tuple(out.shape[1:]), rf, jump,
                            start))
        maps[names[id(m)]] = out.detach()

    handles = [m.register_forward_hook(hook) for _, m in named_layers(model) if is_conv(m) or is_pool(m)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return Trace(stages, maps, out, fields)


def map_layers(model: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """The layers that output a 2-D map once per forward pass (so Grad-CAM can take them; a layer run once
    per pyramid level has no single map), with their output shapes, in the order they ran."""
    calls: dict[str, int] = {}
    maps: dict[str, tuple] = {}

    def hook(name):
        def fn(m, inputs, out):
            calls[name] = calls.get(name, 0) + 1
            if torch.is_tensor(out) and out.ndim == 4 and name not in maps:
                maps[name] = tuple(out.shape[1:])
        return fn
    handles = [m.register_forward_hook(hook(n)) for n, m in named_layers(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: shape for n, shape in maps.items() if calls[n] == 1}


def valid_layers(once: dict[str, tuple], stages: list[Stage]) -> list[str]:
    """What --layer takes: the convolution and pooling stages, and the outermost blocks that output maps
    (a ResNet's layer1..layer4, a detector's stages.0..3)."""
    stage_names = {s.name for s in stages}
    return [n for n in once if n in stage_names or not any(n.startswith(o + ".") for o in once)]


def pick_target(model: nn.Module, x: torch.Tensor, tr: Trace, name: str | None) -> tuple[str, nn.Module, tuple | None]:
    """The layer Grad-CAM looks at (`name`, or the default), its module, and where its map lies on the input."""
    name = name or default_layer(model, tr.stages)
    once = map_layers(model, x[:1])
    module = find_layer(model, name, valid_layers(once, tr.stages))
    return name, module, tr.placement(once[name])


def default_layer(model: nn.Module, stages: list[Stage]) -> str:
    """The last convolution: the most abstract features that still have a place in the image."""
    net = net_of(model)
    if isinstance(net, FCOS):
        # every pyramid level is computed from the stride-8 stage; later layers run once per level
        return f"stages.{len(net.stages) - 3}"
    convs = [s for s in stages if s.kind == "conv" and len(s.shape) == 3 and min(s.shape[1:]) > 1]
    if not convs:
        convs = [s for s in stages if s.kind == "conv"]
    if not convs:
        raise UserError("the model has no convolution layer: filters, feature maps and Grad-CAM need one "
                        "(a model of Dense / Linear layers only has nothing that looks at places in the image)")
    return convs[-1].name


def find_layer(model: nn.Module, name: str, valid: list[str]) -> nn.Module:
    """The layer called `name`, or one line listing the valid names."""
    layers = dict(named_layers(model))
    if name not in layers or name not in valid:
        raise UserError(f"--layer {name!r} is not a layer of this model that outputs a map; valid layers: "
                        f"{', '.join(valid)}")
    return layers[name]


def penultimate(model: nn.Module) -> nn.Module | None:
    """The module whose input is the embedding: what the last Linear (Dense) layer reads."""
    net = net_of(model)
    if isinstance(net, KerasPlain):
        return net.features if net.last_dense >= 0 else None
    linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linear[-1] if linear else None


def embed(model: nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, logits) of float images, in batches."""
    layer = penultimate(model)
    feats, outs = [], []
    hook = layer.register_forward_pre_hook(lambda m, inputs: feats.append(inputs[0].detach().flatten(1).float()))
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                outs.append(model(x[i:i + batch]).float())
    finally:
        hook.remove()
    return torch.cat(feats).cpu(), torch.cat(outs).cpu()


def resolve_class(cls, classes: list[str]) -> int | None:
    """--class as a class name or an index; one line listing the classes otherwise."""
    if cls is None:
        return None
    if str(cls) in classes:
        return classes.index(str(cls))
    if str(cls).lstrip("-").isdigit() and 0 <= int(cls) < len(classes):
        return int(cls)
    shown = ", ".join(classes[:30]) + (", ..." if len(classes) > 30 else "")
    raise UserError(f"--class {cls!r} is neither a class of this run nor an index 0..{len(classes) - 1}; "
                    f"classes: {shown}")
