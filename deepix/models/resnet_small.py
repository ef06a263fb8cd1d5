"""A small ResNet for small images (CIFAR-style: 3x3 stem, three stages, global pooling)."""
from __future__ import annotations

from torch import nn

from .registry import Spec, activation, register


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, k: int, act: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), activation(act),
            nn.Conv2d(cout, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


def _resnet(spec: Spec, blocks: int) -> nn.Module:
    widths = [max(4, round(w * spec.width)) for w in (32, 64, 128)]
    k = spec.kernel_size
    layers = [nn.Conv2d(spec.in_channels, widths[0], k, 1, k // 2, bias=False), nn.BatchNorm2d(widths[0]),
              activation(spec.activation)]
    cin = widths[0]
    for stage, w in enumerate(widths):
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 and min(spec.size) >= 8 * stage else 1
            layers.append(Block(cin, w, stride, k, spec.activation))
            cin = w
    dropout = 0.0 if spec.dropout < 0 else spec.dropout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, spec.num_classes)]
    return nn.Sequential(*layers)


@register("resnet8", "small ResNet, 3 stages x 1 block (32-64-128 channels)")
def resnet8(spec: Spec) -> nn.Module:
    return _resnet(spec, 1)


@register("resnet14", "small ResNet, 3 stages x 2 blocks (32-64-128 channels)")
def resnet14(spec: Spec) -> nn.Module:
    return _resnet(spec, 2)
