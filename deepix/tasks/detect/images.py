"""Detection images as the model takes them: read as RGB, scaled to fit a square side, padded in grey."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ...data.boxes import DetImage, empty_boxes
from ...data.folder import read_rgb
from ...errors import UserError
from .augment import FILL


def unlabelled(path: str | Path) -> DetImage:
    """An image file to predict on: no boxes, its size read when its pixels are."""
    return DetImage(str(path), (0, 0), *empty_boxes())


def pixels(im: DetImage) -> torch.Tensor:
    """The image as uint8 RGB (3, H, W)."""
    if im.image is not None:
        x = im.image
    else:
        try:
            x = torch.from_numpy(read_rgb(im.file)).permute(2, 0, 1).contiguous()
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise UserError(f"cannot read image {im.file}: {e}") from None
    return x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]


def letterbox(images: list[DetImage], imgsz: int):
    """uint8 (N, 3, imgsz, imgsz) with each image scaled to fit and padded right and bottom in grey,
    (N, M, 5) box targets [label, x1, y1, x2, y2] (label -1 pads), and each image's scale."""
    n, m = len(images), max([len(im.labels) for im in images] + [1])
    x = torch.full((n, 3, imgsz, imgsz), round(FILL * 255), dtype=torch.uint8)
    t = torch.zeros(n, m, 5)
    t[..., 0] = -1
    scales = torch.zeros(n)
    for i, im in enumerate(images):
        px = pixels(im)
        h, w = px.shape[1:]
        s = imgsz / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        if (nh, nw) != (h, w):
            px = F.interpolate(px[None].float(), size=(nh, nw), mode="bilinear", antialias=True,
                               align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
        x[i, :, :nh, :nw] = px
        k = len(im.labels)
        t[i, :k, 0] = im.labels.float()
        t[i, :k, 1:] = im.boxes * torch.tensor([nw / w, nh / h, nw / w, nh / h])
        scales[i] = s
    return x, t, scales
