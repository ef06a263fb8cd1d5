"""Augmentation of whole batches where image and mask move together: one affine map per image (flip, scale,
shift, turn) applied to both by one grid, the image sampled bilinearly and the mask by nearest neighbour
(a class index has no in-between), then brightness and contrast on the image alone."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SegAugment:
    hflip: bool = True
    scale: float = 0.25        # zoom by a factor in [1 - scale, 1 + scale]
    translate: float = 0.1     # shift by up to this share of the side
    degrees: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator | None = None):
        """x float (B, C, H, W) in [0, 1], y (B, H, W) class indices -> the same, transformed alike."""
        b = len(x)
        u = lambda: torch.rand(b, generator=g) * 2 - 1  # noqa: E731  (uniform in [-1, 1], one per image)
        zoom = 1 + self.scale * u()
        turn = self.degrees * math.pi / 180 * u()
        flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if self.hflip else torch.ones(b)
        cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
        theta = torch.stack([torch.stack([cos * flip, -sin, self.translate * 2 * u()], 1),
                             torch.stack([sin * flip, cos, self.translate * 2 * u()], 1)], 1).to(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # reflection at the borders for both, so that no pixel of the mask is invented where the image has none
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        y = F.grid_sample(y[:, None].float(), grid.float(), mode="nearest", padding_mode="reflection",
                          align_corners=False)[:, 0].to(torch.uint8)
        if self.brightness or self.contrast:
            mean = x.mean((1, 2, 3), keepdim=True)
            c = (1 + self.contrast * u()).view(b, 1, 1, 1).to(x)
            d = (self.brightness * u()).view(b, 1, 1, 1).to(x)
            x = ((x - mean) * c + mean + d).clamp(0, 1)
        return x, y
