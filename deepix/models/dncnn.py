"""DnCNN (Zhang et al. 2017): a plain conv + BatchNorm stack that predicts the noise, subtracted from the input."""
from __future__ import annotations

from torch import nn

from .registry import Spec, activation, register


class DnCNN(nn.Module):
    """Residual denoiser: output = input - body(input)."""

    def __init__(self, channels: int, depth: int, width: int, k: int = 3, act: str = "relu"):
        super().__init__()
        p = k // 2
        layers = [nn.Conv2d(channels, width, k, padding=p), activation(act)]
        for _ in range(depth - 2):
            # BatchNorm's shift makes a conv bias redundant
            layers += [nn.Conv2d(width, width, k, padding=p, bias=False), nn.BatchNorm2d(width), activation(act)]
        # noise is zero-mean, so the last layer needs no bias (and a zeroed last conv is the identity)
        layers.append(nn.Conv2d(width, channels, k, padding=p, bias=False))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d) and m is not layers[-1]:
                # He et al.'s init, as the paper: keeps activations at unit scale through 15+ ReLU layers
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return x - self.body(x)


def _dncnn(spec: Spec, depth: int, width: int) -> nn.Module:
    return DnCNN(spec.in_channels, depth, max(4, round(width * spec.width)), spec.kernel_size, spec.activation)


@register("dncnn", "DnCNN denoiser (Zhang et al. 2017): 17 conv layers, 64 wide, BatchNorm, predicts the noise", kind="restore")
def dncnn(spec: Spec) -> nn.Module:
    return _dncnn(spec, 17, 64)


@register("dncnn-s", "smaller DnCNN: 10 conv layers, 48 wide", kind="restore")
def dncnn_s(spec: Spec) -> nn.Module:
    return _dncnn(spec, 10, 48)


@register("dncnn-xs", "tiny DnCNN: 6 conv layers, 32 wide", kind="restore")
def dncnn_xs(spec: Spec) -> nn.Module:
    return _dncnn(spec, 6, 32)
