"""A small VGG-style net for small images: pairs of 3x3 conv + BatchNorm, pooling, global average."""
from __future__ import annotations

from torch import nn

from .registry import Spec, act_pool, activation, register


def _vgg(spec: Spec, plan: list) -> nn.Sequential:
    k, layers, cin = spec.kernel_size, [], spec.in_channels
    for i, item in enumerate(plan):
        if item == "M":
            continue
        cout = max(4, round(item * spec.width))
        layers += [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]
        pooled = i + 1 < len(plan) and plan[i + 1] == "M"
        layers += act_pool(spec.activation, nn.MaxPool2d(2)) if pooled else [activation(spec.activation)]
        cin = cout
    dropout = 0.1 if spec.dropout < 0 else spec.dropout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, spec.num_classes))


def _plan(spec: Spec, plan: list) -> list:
    # drop the pools a small image cannot afford (8x8 digits keep one)
    pools, side, out = plan.count("M"), min(spec.size), []
    allowed = 0
    while allowed < pools and side // 2 >= 3:
        side //= 2
        allowed += 1
    for item in plan:
        if item == "M":
            if allowed == 0:
                continue
            allowed -= 1
        out.append(item)
    return out


@register("vgg7", "small VGG: 32-32-pool-64-64-pool-128-128 convs with BatchNorm, global pooling")
def vgg7(spec: Spec) -> nn.Module:
    return _vgg(spec, _plan(spec, [32, 32, "M", 64, 64, "M", 128, 128]))
