"""Class activation maps by captum: Grad-CAM (Selvaraju et al. 2017) at a layer, upsampled to the input,
and integrated gradients (Sundararajan et al. 2017) on the input pixels."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def _targets(target, n: int) -> torch.Tensor:
    t = torch.as_tensor(target, dtype=torch.long)
    return t.expand(n).clone() if t.ndim == 0 else t


def place(a: torch.Tensor, size: tuple[int, int], where: tuple | None) -> torch.Tensor:
    """(N, 1, h, w) layer maps on the input's (H, W) pixels. With `where` = (start, jump), map cell i sits at
    input pixel start + i * jump, the centre of its receptive field: a network without padding sees the
    border less, and stretching its map over the whole image would shift every peak towards the edges."""
    if where is None:
        from captum.attr import LayerAttribution  # captum: only deepix explain needs it
        return LayerAttribution.interpolate(a, size, "bilinear")
    (start, jump), (h, w) = where, a.shape[-2:]
    axes = []
    for n_in, n_map, s0, j in zip(size, (h, w), start, jump):
        u = (torch.arange(n_in, dtype=torch.float32, device=a.device) - s0) / j   # fractional cell index
        axes.append(u * 2 / (n_map - 1) - 1 if n_map > 1 else torch.zeros_like(u))
    gy, gx = torch.meshgrid(*axes, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None].expand(len(a), -1, -1, -1)
    return torch.nn.functional.grid_sample(a, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def grad_cam(forward: Callable | nn.Module, x: torch.Tensor, layer: nn.Module, target,
             where: tuple | None = None) -> torch.Tensor:
    """(N, H, W) maps in [0, 1] (1 at each image's peak; all 0 where nothing speaks for the class):
    the layer's channels weighted by the mean gradient of the target's score, summed, ReLU, and placed on
    the input by `place`."""
    from captum.attr import LayerGradCam  # captum: only deepix explain needs it
    with torch.enable_grad():
        a = LayerGradCam(forward, layer).attribute(x, target=_targets(target, len(x)), relu_attributions=True)
    a = place(a.detach().float(), tuple(x.shape[-2:]), where)[:, 0].clamp_min(0)
    return a / a.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


def integrated_gradients(forward: Callable | nn.Module, x: torch.Tensor, target, steps: int = 32) -> torch.Tensor:
    """(N, H, W) maps in [0, 1]: |integrated gradients| from a black image, summed over channels, scaled
    so that the 99th percentile is 1 (a few extreme pixels would otherwise wash the rest out)."""
    from captum.attr import IntegratedGradients  # captum: only deepix explain needs it
    with torch.enable_grad():
        a = IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x), target=_targets(target, len(x)),
                                                   n_steps=steps, internal_batch_size=256)
    a = a.detach().float().abs().sum(1)
    top = torch.quantile(a.flatten(1), 0.99, dim=1).clamp_min(1e-12)
    return (a / top[:, None, None]).clamp(0, 1)


def box_score(model: nn.Module, point: int, cls: int) -> Callable:
    """A detector's class logit at one output point (the one that produced a box), as a forward function."""
    return lambda x: model(x)[:, point, cls:cls + 1]
