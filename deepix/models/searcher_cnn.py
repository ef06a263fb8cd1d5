"""The locate searcher's crop encoder as a classifier (`searcher-cnn`), so that a pretrain (or classify) run
can train it on any images and `deepix train locate --init RUN` can start the searcher from it: the same
four stride-2 blocks under the same tensor names."""
from __future__ import annotations

from torch import nn

from .registry import Spec, register


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU())


def trunk(width: float = 1.0, channels: int = 3) -> list[nn.Module]:
    """Four stride-2 blocks (a 64x64 crop to a 4x4 map); their widths for `width`, the last one's last."""
    c = [max(8, int(round(k * width / 8)) * 8) for k in (32, 64, 96, 128)]
    return [block(channels, c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3])]


@register("searcher-cnn", "the locate searcher's crop encoder: four stride-2 conv blocks with GroupNorm, global pooling")
def searcher_cnn(spec: Spec) -> nn.Module:
    blocks = trunk(spec.width, spec.in_channels)
    out = blocks[-1][0].out_channels
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(out, spec.num_classes))
