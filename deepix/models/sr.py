"""Super-resolution: ESPCN (Shi et al. 2016) and a small EDSR (Lim et al. 2017); output is the input x spec.scale."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .registry import Spec, activation, register


def _scale(spec: Spec) -> int:
    scale = getattr(spec, "scale", 1)
    if not isinstance(scale, int) or scale < 1:
        raise UserError(f"scale must be a whole number >= 1 (got {scale!r}): use --scale 2, 3 or 4")
    return scale


def _w(spec: Spec, c: int) -> int:
    return max(4, round(c * spec.width))


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ESPCN(nn.Module):
    """All convs at low resolution, then one sub-pixel (PixelShuffle) step to the high one."""

    def __init__(self, channels: int, scale: int, w1: int, w2: int, k: int = 3, act: str = "relu"):
        super().__init__()
        self.net = nn.Sequential(
            _conv(channels, w1, 5), activation(act), _conv(w1, w2, k), activation(act),
            _conv(w2, channels * scale * scale, k), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.net(x)


class ResBlock(nn.Module):
    def __init__(self, n: int, k: int, act: str, res_scale: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(_conv(n, n, k), activation(act), _conv(n, n, k))
        # EDSR's residual scaling: keeps the sum's variance from growing block after block without BatchNorm
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.body(x)


class EDSR(nn.Module):
    """Residual blocks without BatchNorm, a PixelShuffle up-sampler, and a bicubic global skip."""

    def __init__(self, channels: int, scale: int, n: int, blocks: int, k: int = 3, act: str = "relu"):
        super().__init__()
        self.scale = scale
        self.head = _conv(channels, n, k)
        self.body = nn.Sequential(*(ResBlock(n, k, act) for _ in range(blocks)), _conv(n, n, k))
        # x4 as two x2 steps (as EDSR): each shuffle's conv stays n -> 4n instead of n -> 16n
        steps = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
        up = []
        for s in steps:
            up += [_conv(n, n * s * s, k), nn.PixelShuffle(s)]
        self.up = nn.Sequential(*up)
        self.tail = _conv(n, channels, k)

    def forward(self, x):
        f = self.head(x)
        y = self.tail(self.up(f + self.body(f)))
        if self.scale == 1:
            return x + y
        # the net learns only what bicubic misses: a small net starts at bicubic quality, not at zero
        return y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


@register("espcn", "ESPCN super-resolution (Shi et al. 2016): 3 low-resolution convs (64-32), PixelShuffle x scale", kind="upscale")
def espcn(spec: Spec) -> nn.Module:
    return ESPCN(spec.in_channels, _scale(spec), _w(spec, 64), _w(spec, 32), spec.kernel_size, spec.activation)


@register("edsr-s", "small EDSR super-resolution: 8 residual blocks, 32 wide, no BatchNorm, bicubic skip", kind="upscale")
def edsr_s(spec: Spec) -> nn.Module:
    return EDSR(spec.in_channels, _scale(spec), _w(spec, 32), 8, spec.kernel_size, spec.activation)
