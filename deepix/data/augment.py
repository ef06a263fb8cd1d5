"""Augmentation of whole batches on the device: one affine warp, flips and colour jitter
for the batch at once, drawn from a seeded generator so that a run repeats exactly."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    translate: float = 0.0      # largest shift, as a fraction of the image side
    degrees: float = 0.0
    scale: float = 0.0          # zoom in [1 - scale, 1 + scale]
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    padding: str = "zeros"      # what the warp brings in at the borders

    @property
    def active(self) -> bool:
        return bool(self.translate or self.degrees or self.scale or self.hflip or self.brightness or self.contrast)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """x: float (B, C, H, W) in [0, 1]."""
        b = x.shape[0]
        # drawn on the CPU generator (seeded, device-independent), then moved: tiny tensors
        rand = lambda *s: torch.rand(*s, generator=g).to(x.device, non_blocking=True)  # noqa: E731
        if self.translate or self.degrees or self.scale:
            angle = (rand(b) * 2 - 1) * math.radians(self.degrees)
            zoom = 1 + (rand(b) * 2 - 1) * self.scale
            shift = (rand(b, 2) * 2 - 1) * self.translate * 2  # grid coordinates span 2
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                                 torch.stack([sin, cos, shift[:, 1]], 1)], 1)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding, align_corners=False)
        if self.hflip:
            flip = rand(b) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.brightness or self.contrast:
            bright = 1 + (rand(b, 1, 1, 1) * 2 - 1) * self.brightness
            contrast = 1 + (rand(b, 1, 1, 1) * 2 - 1) * self.contrast
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * contrast + mean) * bright
            x = x.clamp(0, 1)
        return x


PRESETS = {
    "none": Augment(),
    # digits: no flips (a flipped 2 is not a 2), small shifts and turns
    "digits": Augment(translate=0.1, degrees=10, scale=0.1),
    "natural": Augment(translate=0.125, hflip=True, brightness=0.2, contrast=0.2, padding="reflection"),
    "strong": Augment(translate=0.15, degrees=15, scale=0.15, hflip=True, brightness=0.3, contrast=0.3,
                      padding="reflection"),
}


def make_augment(preset: str, kind: str, **overrides) -> Augment:
    """The preset ("auto" picks by kind of data), with any override that is set (not -1 / "auto")."""
    if preset == "auto":
        preset = "digits" if kind == "digits" else "natural"
    changes = {k: v for k, v in overrides.items() if v not in (-1, -1.0, "auto", None)}
    if "hflip" in changes:
        changes["hflip"] = changes["hflip"] == "on"
    return replace(PRESETS[preset], **changes)
