"""The restoration field's metrics, computed the way its papers do: PSNR and SSIM on [0, 1] images.

Inputs are NumPy HxW or HxWxC arrays in [0, 1] (torch tensors CHW or HW are accepted). The output is clipped to
[0, 1] first, as the denoising protocol does. Super-resolution papers also shave `scale` border pixels and score
the luminance Y of ITU-R BT.601 (Y in [16, 235] / 255); pass shave=scale, y_channel=True for that.
"""
import math
import numbers

import numpy as np
import torch
from skimage.metrics import structural_similarity

from deepix.errors import UserError


def _hwc(x) -> np.ndarray:
    """A float64 HxW or HxWxC array; tensors are read as CHW."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double()
        x = x.permute(1, 2, 0) if x.ndim == 3 else x
        x = x.numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (2, 3):
        raise UserError(f"metrics: expected one image HxW or HxWxC, got shape {x.shape}; score images one at a time")
    return x


def to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luminance of an RGB image in [0, 1], as SR papers (and MATLAB rgb2ycbcr) compute it: [16, 235] / 255."""
    return (16 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255


def _prepare(out, clean, shave, y_channel, data_range=1.0):
    out, clean = np.clip(_hwc(out) / data_range, 0, 1), _hwc(clean) / data_range
    if out.shape != clean.shape:
        raise UserError(f"metrics: output shape {out.shape} differs from clean shape {clean.shape}; "
                        "crop the clean image to the output (crop_to_scale for super-resolution)")
    if y_channel and out.ndim == 3 and out.shape[-1] == 3:
        out, clean = to_y(out), to_y(clean)
    if shave:
        out, clean = out[shave:-shave, shave:-shave], clean[shave:-shave, shave:-shave]
    return out, clean


def psnr(out, clean, data_range: float = 1.0, shave: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB, output clipped to [0, data_range]; identical images give float('inf')."""
    out, clean = _prepare(out, clean, shave, y_channel, data_range)
    mse = float(np.mean((out - clean) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def ssim(out, clean, shave: int = 0, y_channel: bool = False) -> float:
    """Structural similarity via skimage (its default 7x7 uniform window, data_range=1)."""
    out, clean = _prepare(out, clean, shave, y_channel)
    return float(structural_similarity(out, clean, data_range=1, channel_axis=-1 if out.ndim == 3 else None))


def mean_table(rows: list[dict]) -> dict:
    """Average each numeric column over the rows that have it (per-image numbers into one row; an inf stays inf)."""
    def numeric(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    keys = dict.fromkeys(k for row in rows for k, v in row.items() if numeric(v))
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}
