"""What the loaded runs take: file paths, PIL images, NumPy images or batches, made one float batch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .builtin import as_uint8_nchw
from .folder import load_image


def to_batch(images, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """(N, channels, *size) floats in [0, 1] from a path, a PIL image, an array (H, W), (H, W, C), (N, H, W),
    (N, H, W, C) or (N, C, H, W) in uint8 or [0, 1] floats, or a list of paths / PIL images."""
    if isinstance(images, (str, Path)) or not isinstance(images, (list, tuple, np.ndarray)):
        images = [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4) and images.shape[0] > 4):
            images = images[None]
        x = torch.from_numpy(as_uint8_nchw(images)).float()
        if channels == 1 and x.shape[1] != 1:
            x = x[:, :3].mean(1, keepdim=True)
        elif channels == 3:
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        if tuple(x.shape[2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True)
        return x.div(255)
    return torch.stack([load_image(i, channels, size[0]) for i in images]).float().div(255)
