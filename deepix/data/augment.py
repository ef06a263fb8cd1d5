"""Augmentation of whole batches on the device: one affine warp, flips and colour jitter
for the batch at once, drawn from a seeded generator so that a run repeats exactly."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..errors import UserError


@dataclass
class Augment:
    translate: float = 0.0      # largest shift, as a fraction of the image side
    degrees: float = 0.0
    scale: float = 0.0          # zoom in [1 - scale, 1 + scale]
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    padding: str = "zeros"      # what the warp brings in at the borders
    crop: float = 0.0           # random-resized crop: the smallest kept share of the image's area (0: off)
    blur: float = 0.0           # probability of a Gaussian blur (sigma 0.1-2 px at 32 px, scaled with the side)
    erase: float = 0.0          # probability of erasing a random rectangle (2-25% of the area)

    @property
    def active(self) -> bool:
        return bool(self.translate or self.degrees or self.scale or self.hflip or self.brightness or self.contrast
                    or self.crop or self.blur or self.erase)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """x: float (B, C, H, W) in [0, 1]."""
        b = x.shape[0]
        # drawn on the CPU generator (seeded, device-independent), then moved: tiny tensors
        rand = lambda *s: torch.rand(*s, generator=g).to(x.device, non_blocking=True)  # noqa: E731
        if self.translate or self.degrees or self.scale or self.crop:
            angle = (rand(b) * 2 - 1) * math.radians(self.degrees)
            zoom = 1 + (rand(b) * 2 - 1) * self.scale
            shift = (rand(b, 2) * 2 - 1) * self.translate * 2  # grid coordinates span 2
            if self.crop:  # a crop of area a in [crop, 1] blown up to the full side, kept inside the image
                inv = (self.crop + rand(b) * (1 - self.crop)).sqrt()
                zoom = zoom / inv
                shift = shift + (rand(b, 2) * 2 - 1) * (1 - inv)[:, None]
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
        if self.blur:
            x = _blur(x, rand(b) < self.blur, 0.1 + rand(b) * 1.9 * max(x.shape[2:]) / 32)
        if self.erase:
            x = _erase(x, rand(b) < self.erase, rand(b, 4), rand(b, 1, 1, 1))
        return x


def _blur(x: torch.Tensor, on: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur with each image's own sigma, as one grouped convolution per axis."""
    b, c, h, w = x.shape
    r = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-t[None] ** 2 / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)              # (b*c, 2r+1)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k[:, None, :, None], groups=b * c)
    return torch.where(on[:, None, None, None], y.reshape(b, c, h, w), x)


def _erase(x: torch.Tensor, on: torch.Tensor, u: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Random erasing: a rectangle of 2-25% of the area, aspect 1/3-3, filled with one random grey."""
    b, _, h, w = x.shape
    area = 0.02 + u[:, 0] * 0.23
    aspect = torch.exp((u[:, 1] * 2 - 1) * math.log(3))
    eh, ew = (area * aspect).sqrt().clamp(max=1) * h, (area / aspect).sqrt().clamp(max=1) * w
    y0, x0 = u[:, 2] * (h - eh), u[:, 3] * (w - ew)
    rows = torch.arange(h, device=x.device)[None]
    cols = torch.arange(w, device=x.device)[None]
    inside = (((rows >= y0[:, None]) & (rows < (y0 + eh)[:, None]))[:, :, None]
              & ((cols >= x0[:, None]) & (cols < (x0 + ew)[:, None]))[:, None, :])
    mask = (inside & on[:, None, None])[:, None]
    return torch.where(mask, value.to(x.dtype), x)


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


# the two views of each image; for digits no flips (a flipped 2 is not a 2)
VIEWS = {"digits": Augment(crop=0.4, degrees=15, translate=0.05, brightness=0.4, contrast=0.4, blur=0.3, erase=0.5),
         "natural": Augment(crop=0.2, hflip=True, brightness=0.4, contrast=0.4, blur=0.5, erase=0.25,
                            padding="reflection")}


def make_views(cfg, kind: str) -> Augment:
    """The preset of views (--augment digits|natural, auto: by kind of data) with any flag that is set."""
    if cfg.augment == "none":
        raise UserError("pretraining learns from two augmented views of each image: --augment none leaves nothing "
                        "to learn; use auto, digits, natural or strong")
    preset = cfg.augment if cfg.augment in VIEWS else "digits" if cfg.augment == "auto" and kind == "digits" else "natural"
    changes = {k: getattr(cfg, k) for k in ("translate", "degrees", "scale", "brightness", "contrast")
               if getattr(cfg, k) != -1}
    if cfg.hflip != "auto":
        changes["hflip"] = cfg.hflip == "on"
    return replace(VIEWS[preset], **changes)
