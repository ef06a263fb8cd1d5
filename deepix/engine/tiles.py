"""Whole-image inference in overlapping tiles, blended with a smooth window: bounded memory, no seams."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    # the last tile is shifted inward to end at the border: every tile is full size, none padded
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _window(start: int, size: int, length: int, scale: int, overlap: int) -> Tensor:
    """1-D weights over one tile's output: 0 near an edge shared with a neighbour, 1 from overlap/2 inward."""
    # centre of each output pixel, in input pixels from the tile's two edges
    pos = (torch.arange(size * scale, dtype=torch.float32) + 0.5) / scale
    w = torch.ones(size * scale)
    dead, full = overlap / 4, overlap / 2
    for interior, dist in ((start > 0, pos), (start + size < length, size - pos)):
        if not interior:
            continue                 # an image border has no neighbour to blend with
        if full > dead:
            # the quarter of the overlap nearest the edge lacks context (weight 0), then a Hann ramp
            r = ((dist - dead) / (full - dead)).clamp(0, 1)
            w = w * (0.5 - 0.5 * torch.cos(math.pi * r))
        else:
            w = w * (dist >= full).float()
    return w


@torch.no_grad()
def predict_tiled(model: nn.Module, x: Tensor, scale: int = 1, tile: int = 256, overlap: int = 32,
                  bf16: bool = False) -> Tensor:
    """model(x) for (B, C, H, W) x, run on tile x tile pieces overlapping by `overlap`; returns (B, C, H*scale, W*scale)."""
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile (got tile={tile}, overlap={overlap})")
    was_training = model.training
    model.eval()
    try:
        h, w = x.shape[-2:]
        th, tw = min(tile, h), min(tile, w)
        out = wsum = None
        for y0 in _starts(h, tile, overlap):
            wy = _window(y0, th, h, scale, overlap).to(x.device)
            for x0 in _starts(w, tile, overlap):
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                    y = model(x[..., y0:y0 + th, x0:x0 + tw]).float()
                if out is None:
                    out = y.new_zeros(*y.shape[:2], h * scale, w * scale)
                    wsum = y.new_zeros(1, 1, h * scale, w * scale)
                if y.shape[-2:] != (th * scale, tw * scale):
                    raise ValueError(f"model output {tuple(y.shape)} is not the tile x scale={scale}")
                win = wy[:, None] * _window(x0, tw, w, scale, overlap).to(x.device)
                region = (..., slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
                out[region] += y * win
                wsum[region] += win
        # every pixel lies overlap/2 inside some tile, so wsum >= 1 wherever tiles meet
        return out / wsum
    finally:
        model.train(was_training)


def _dihedral(x: Tensor, k: int, inverse: bool = False) -> Tensor:
    """The k-th of the 8 flips/rotations of the square's symmetry group (on the last two axes), or its inverse."""
    if not inverse:
        x = x.flip(-1) if k & 4 else x
        return torch.rot90(x, k & 3, (-2, -1))
    x = torch.rot90(x, -(k & 3), (-2, -1))
    return x.flip(-1) if k & 4 else x


@torch.no_grad()
def predict_ensemble(model: nn.Module, x: Tensor, scale: int = 1, tile: int = 256, overlap: int = 32,
                     bf16: bool = False) -> Tensor:
    """predict_tiled averaged over the 8 flips/rotations of the input, each undone on the output
    (the "self-ensemble" of Lim et al. 2017 and Timofte et al. 2016): a little more accuracy for 8x the time."""
    out = None
    for k in range(8):
        y = _dihedral(predict_tiled(model, _dihedral(x, k), scale, tile, overlap, bf16).float(), k, inverse=True)
        out = y if out is None else out + y
    return out / 8
