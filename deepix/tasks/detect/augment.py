"""Box-aware augmentation of whole batches: mosaic, scale and shift, horizontal flip and colour
jitter for the batch at once, with the boxes moved by the same maps, clipped, and dropped when
too little of them is left. Seeded, like the classification augmentation.

torchvision.transforms.v2 does the same per image; on a 2-core CPU a per-image Python loop costs
as much as the detector's own step, so this does it per batch, and a test checks the boxes
against v2's affine on the same parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FILL = 114 / 255    # the grey that fills what the warp brings in (YOLO's letterbox colour)
MIN_SIDE = 2.0      # a box thinner than this (pixels) after clipping is dropped
MIN_KEPT = 0.25     # ...and so is one that keeps less than this share of its area


@dataclass
class BoxAugment:
    scale: float = 0.5          # zoom in [1 - scale, 1 + scale]
    translate: float = 0.1      # largest shift, as a fraction of the side
    hflip: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.5
    mosaic: float = 0.0         # probability that an image is replaced by a 2x2 mosaic of four

    def __call__(self, x: torch.Tensor, t: torch.Tensor, g: torch.Generator):
        """x: float (B, C, H, W) in [0, 1]; t: (B, M, 5) [label, x1, y1, x2, y2], label -1 = none."""
        if self.mosaic:
            x, t = mosaic(x, t, self.mosaic, g)
        b, _, h, w = x.shape
        rand = lambda *s: torch.rand(*s, generator=g).to(x.device)  # noqa: E731
        zoom = 1 + (rand(b) * 2 - 1) * self.scale
        shift = (rand(b, 2) * 2 - 1) * self.translate * torch.tensor([w, h], device=x.device)
        flip = rand(b) < 0.5 if self.hflip else torch.zeros(b, dtype=torch.bool, device=x.device)
        x, t = warp(x, t, zoom, shift, flip)
        if self.brightness or self.contrast or self.saturation:
            x = jitter(x, rand, self.brightness, self.contrast, self.saturation)
        return x, t


def warp(x: torch.Tensor, t: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor):
    """Per image: zoom about the centre, shift by `shift` pixels, then mirror where `flip`.
    In pixel-edge coordinates x_out = (x_in - W/2) * zoom + W/2 + dx (then W - x_out if flipped)."""
    b, _, h, w = x.shape
    sign = 1 - 2 * flip.to(x.dtype)
    # affine_grid maps output to input in [-1, 1] coordinates (align_corners=False: the outer pixel edges)
    inv = 1 / zoom
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = inv * sign
    theta[:, 0, 2] = -2 * shift[:, 0] / w * inv
    theta[:, 1, 1] = inv
    theta[:, 1, 2] = -2 * shift[:, 1] / h * inv
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + FILL
    boxes = t[..., 1:]
    cx, cy = torch.tensor([w / 2, h / 2], device=x.device)
    z = zoom[:, None]
    x1 = (boxes[..., 0] - cx) * z + cx + shift[:, :1]
    x2 = (boxes[..., 2] - cx) * z + cx + shift[:, :1]
    y1 = (boxes[..., 1] - cy) * z + cy + shift[:, 1:]
    y2 = (boxes[..., 3] - cy) * z + cy + shift[:, 1:]
    f = flip[:, None]
    x1, x2 = torch.where(f, w - x2, x1), torch.where(f, w - x1, x2)
    return x, clip(t[..., :1], torch.stack([x1, y1, x2, y2], -1), h, w)


def clip(labels: torch.Tensor, boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Boxes clipped to the image; those left too thin or with too little of their area become padding."""
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    bound = torch.tensor([w, h, w, h], device=boxes.device, dtype=boxes.dtype)
    clipped = torch.minimum(boxes.clamp(min=0), bound)
    bw, bh = clipped[..., 2] - clipped[..., 0], clipped[..., 3] - clipped[..., 1]
    keep = (labels[..., 0] >= 0) & (bw >= MIN_SIDE) & (bh >= MIN_SIDE) & (bw * bh >= MIN_KEPT * area)
    out = torch.cat([labels, clipped], -1)
    out[~keep] = torch.tensor([-1.0, 0, 0, 0, 0], device=out.device)
    return out


def mosaic(x: torch.Tensor, t: torch.Tensor, p: float, g: torch.Generator):
    """With probability p per image, replace it by four images of the batch at half size in a 2x2 grid."""
    b, _, h, w = x.shape
    use = torch.rand(b, generator=g) < p
    if not use.any():
        return x, t
    picks = torch.randint(0, b, (b, 4), generator=g)
    picks[:, 0] = torch.arange(b)
    hh, hw = h // 2, w // 2
    small = F.interpolate(x, size=(hh, hw), mode="bilinear", antialias=True, align_corners=False)
    sx, sy = hw / w, hh / h
    tiles, labels = [], []
    for k, (ox, oy) in enumerate(((0, 0), (hw, 0), (0, hh), (hw, hh))):
        tiles.append(small[picks[:, k]])
        tk = t[picks[:, k]].clone()
        valid = tk[..., 0] >= 0
        tk[..., 1:] = tk[..., 1:] * torch.tensor([sx, sy, sx, sy], device=t.device) + \
            torch.tensor([ox, oy, ox, oy], device=t.device, dtype=t.dtype)
        tk[~valid] = torch.tensor([-1.0, 0, 0, 0, 0], device=t.device)
        labels.append(tk)
    grid = torch.full_like(x, FILL)
    grid[..., :hh, :hw], grid[..., :hh, hw:2 * hw] = tiles[0], tiles[1]
    grid[..., hh:2 * hh, :hw], grid[..., hh:2 * hh, hw:2 * hw] = tiles[2], tiles[3]
    tm = torch.cat(labels, 1)
    use_d = use.to(x.device)
    x = torch.where(use_d[:, None, None, None], grid, x)
    pad = torch.full((b, tm.shape[1] - t.shape[1], 5), -1.0, device=t.device)
    pad[..., 1:] = 0
    t = torch.where(use_d[:, None, None], tm, torch.cat([t, pad], 1))
    return x, t


def jitter(x: torch.Tensor, rand, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    b = x.shape[0]
    gray = x.mean(1, keepdim=True) if x.shape[1] == 3 else x
    if saturation and x.shape[1] == 3:
        s = 1 + (rand(b, 1, 1, 1) * 2 - 1) * saturation
        x = (x - gray) * s + gray
    c = 1 + (rand(b, 1, 1, 1) * 2 - 1) * contrast
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    x = x * (1 + (rand(b, 1, 1, 1) * 2 - 1) * brightness)
    return x.clamp(0, 1)
