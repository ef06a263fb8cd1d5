"""A one-stage, anchor-free detector built for CPU speed: a small residual backbone, a feature
pyramid over strides 8/16/32, and FCOS-style heads (Tian et al. 2019) shared across levels.

The forward pass returns one tensor (B, P, C + 5) over every point P of every level:
C class logits, 4 distances left/top/right/bottom in pixels (positive), and a centre-ness
logit. `points(h, w)` gives the matching (P, 2) point coordinates, strides and size ranges,
so that the task can assign targets and decode boxes without knowing the layout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Spec, register

STRIDES = (8, 16, 32)


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.silu(x + self.body(x))


def stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cout, 2), *[Residual(cout) for _ in range(blocks)])


class Tower(nn.Module):
    """Head convolutions shared by the pyramid levels, each level with its own batch norm: the levels'
    statistics differ, and one running average over all of them (what a shared BatchNorm keeps) normalised
    every level wrongly at evaluation, while training had normalised each level by its own batch."""

    def __init__(self, c: int, convs: int, levels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3, 1, 1, bias=False) for _ in range(convs))
        self.norms = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(c) for _ in range(levels)) for _ in range(convs))

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        for conv, norms in zip(self.convs, self.norms):
            x = F.silu(norms[level](conv(x)), inplace=True)
        return x


class FCOS(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths: list[int], blocks: list[int], neck: int,
                 head_convs: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.stem = conv_bn(in_channels, widths[0], 2)
        self.stages = nn.ModuleList(stage(a, b, n) for a, b, n in zip(widths[:-1], widths[1:], blocks))
        # the last three stages are strides 8, 16, 32
        self.lateral = nn.ModuleList(nn.Conv2d(c, neck, 1) for c in widths[-3:])
        self.smooth = nn.ModuleList(conv_bn(neck, neck) for _ in widths[-3:])
        self.cls_tower = Tower(neck, head_convs, len(STRIDES))
        self.box_tower = Tower(neck, head_convs, len(STRIDES))
        self.cls = nn.Conv2d(neck, num_classes, 3, 1, 1)
        self.box = nn.Conv2d(neck, 4, 3, 1, 1)
        self.ctr = nn.Conv2d(neck, 1, 3, 1, 1)
        # one learnt scale per level, as FCOS: the shared head predicts distances in units of the stride
        self.scales = nn.Parameter(torch.ones(len(STRIDES)))
        # focal-loss prior: every point starts at 1% foreground, so the many background points
        # do not swamp the first steps
        nn.init.constant_(self.cls.bias, -math.log(99))
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.01)
        nn.init.zeros_(self.box.bias)

    def backbone(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output (strides 4, 8, 16, 32)."""
        x = self.stem(x)
        outs = []
        for s in self.stages:
            x = s(x)
            outs.append(x)
        return outs

    def features(self, x: torch.Tensor, outs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        c3, c4, c5 = (outs or self.backbone(x))[-3:]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        return [self.smooth[0](p3), self.smooth[1](p4), self.smooth[2](p5)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for level, (f, stride) in enumerate(zip(self.features(x), STRIDES)):
            c, b = self.cls_tower(f, level), self.box_tower(f, level)
            dist = F.softplus(self.box(b).float() * self.scales[level]) * stride
            out = torch.cat([self.cls(c).float(), dist, self.ctr(b).float()], 1)
            outs.append(out.flatten(2))
        return torch.cat(outs, 2).transpose(1, 2)

    @staticmethod
    def points(h: int, w: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 2) x, y centres of every output point for an h x w input, and (P,) their strides."""
        xy, strides = [], []
        for s in STRIDES:
            # the sizes the strided convolutions (kernel 3, padding 1) produce
            gh, gw = h, w
            for _ in range(int(math.log2(s))):
                gh, gw = (gh + 1) // 2, (gw + 1) // 2
            ys, xs = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
            xy.append(torch.stack([xs, ys], -1).reshape(-1, 2).float() * s + s // 2)
            strides.append(torch.full((gh * gw,), float(s), device=device))
        return torch.cat(xy), torch.cat(strides)


PRESETS = {
    # widths of stem + 4 stages (strides 2, 4, 8, 16, 32), residual blocks per stage, pyramid width
    "fcos-n": ([16, 24, 48, 96, 160], [1, 1, 2, 1], 64),
    "fcos-s": ([24, 32, 64, 128, 256], [1, 2, 2, 2], 96),
}


def _build(name: str, spec: Spec) -> FCOS:
    widths, blocks, neck = PRESETS[name]
    w = spec.width
    return FCOS(spec.in_channels, spec.num_classes, [max(8, round(c * w)) for c in widths], blocks,
                max(16, round(neck * w)))


@register("fcos-n", "anchor-free detector (FCOS heads, 3-level pyramid), nano: for CPUs and small images",
          kind="detect")
def fcos_n(spec: Spec) -> nn.Module:
    return _build("fcos-n", spec)


@register("fcos-s", "anchor-free detector (FCOS heads, 3-level pyramid), small: wider and deeper", kind="detect")
def fcos_s(spec: Spec) -> nn.Module:
    return _build("fcos-s", spec)


class FCOSSeg(FCOS):
    """The detector's backbone and pyramid (so a detector's or a pretrained backbone's weights load by name) with
    a light segmentation head in place of the box heads: the stride-8 pyramid level refined by the stride-4
    stage, class scores at stride 4, resized to the input."""

    def __init__(self, in_channels: int, num_classes: int, widths: list[int], blocks: list[int], neck: int):
        super().__init__(in_channels, num_classes, widths, blocks, neck, head_convs=0)
        for name in ("cls_tower", "box_tower", "cls", "box", "ctr"):
            setattr(self, name, None)
        del self.scales
        self.lateral4 = nn.Conv2d(widths[-4], neck, 1)
        self.seg = nn.Sequential(conv_bn(neck, neck), nn.Conv2d(neck, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.backbone(x)
        p3 = self.features(x, outs)[0]
        p2 = self.lateral4(outs[0]) + F.interpolate(p3, size=outs[0].shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.seg(p2), size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("fcos-n-seg", "segmenter on fcos-n's backbone and pyramid, a light head at stride 4 (loads a detector's "
          "or pretrained backbone's weights)", kind="segment")
def fcos_n_seg(spec: Spec) -> nn.Module:
    widths, blocks, neck = PRESETS["fcos-n"]
    w = spec.width
    return FCOSSeg(spec.in_channels, spec.num_classes, [max(8, round(c * w)) for c in widths], blocks,
                   max(16, round(neck * w)))
