"""Keras's random augmentation layers: active while training, the identity in evaluate/predict.
Each transforms the whole batch at once (one affine warp per batch)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...errors import UserError
from .base import Layer, unsupported

_FILL = {"reflect": "reflection", "nearest": "border", "constant": "zeros"}


def _range(factor, what: str) -> tuple[float, float]:
    if isinstance(factor, (int, float)):
        return -abs(float(factor)), abs(float(factor))
    if isinstance(factor, (tuple, list)) and len(factor) == 2:
        lo, hi = float(factor[0]), float(factor[1])
        if lo > hi:
            raise UserError(f"{what}: the lower bound {lo} is above the upper bound {hi}")
        return lo, hi
    raise UserError(f"{what} must be a number or a (lower, upper) pair; got {factor!r}")


class _Random(Layer):
    takes_images = True

    def __init__(self, seed=None, **kw):
        super().__init__(**kw)
        self.seed = seed
        self._generator = None

    def compute_shape(self, shape):
        if len(shape) != 3:
            raise UserError(f"{self.name} ({type(self).__name__}) needs (height, width, channels) inputs; "
                            f"got shape {shape}")
        return shape

    build = compute_shape

    def rand(self, *size, like: torch.Tensor) -> torch.Tensor:
        # a seed gives the layer its own stream, as in Keras; otherwise torch's global one
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator().manual_seed(int(self.seed))
        return torch.rand(*size, generator=self._generator).to(like.device)


class RandomFlip(_Random):
    """Flips each image left-right and/or up-down with probability 1/2."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kw):
        super().__init__(seed=seed, **kw)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise UserError(f"RandomFlip mode {mode!r}: use 'horizontal', 'vertical' or 'horizontal_and_vertical'")
        self.mode = mode

    def config(self):
        return {"mode": self.mode, "seed": self.seed}

    def forward(self, x):
        if not self.training:
            return x
        for axis, on in ((3, "horizontal" in self.mode), (2, "vertical" in self.mode)):
            if on:
                flip = self.rand(x.shape[0], like=x) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(axis), x)
        return x


class _RandomAffine(_Random):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kw):
        super().__init__(seed=seed, **kw)
        kind = type(self).__name__
        if fill_mode not in _FILL:
            raise unsupported(f"{kind}(fill_mode={fill_mode!r})", "use 'reflect', 'nearest' or 'constant'")
        if interpolation not in ("bilinear", "nearest"):
            raise unsupported(f"{kind}(interpolation={interpolation!r})", "use 'bilinear' or 'nearest'")
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, float(fill_value)

    def config(self):
        return {"fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}

    def uniform(self, lo: float, hi: float, n: int, like) -> torch.Tensor:
        return lo + (hi - lo) * self.rand(n, like=like)

    def matrix(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2, 3) maps from output to input positions, in grid_sample's [-1, 1] coordinates."""
        raise NotImplementedError

    def forward(self, x):
        if not self.training:
            return x
        theta = self.matrix(x).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        fill = self.fill_value if self.fill_mode == "constant" else 0.0
        # zero padding of (x - fill) plus fill pads with the constant fill
        out = F.grid_sample(x - fill if fill else x, grid, mode=self.interpolation,
                            padding_mode=_FILL[self.fill_mode], align_corners=False)
        return out + fill if fill else out


def _eye(n: int, like) -> torch.Tensor:
    return torch.eye(2, 3, device=like.device).repeat(n, 1, 1)


class RandomRotation(_RandomAffine):
    """Turns each image by factor * 360 degrees at most (positive: counter-clockwise)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kw):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kw)
        self.factor = factor
        self.lo, self.hi = _range(factor, "RandomRotation factor")

    def config(self):
        return {"factor": self.factor, **super().config()}

    def matrix(self, x):
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        angle = self.uniform(self.lo, self.hi, n, x) * 2 * math.pi
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = _eye(n, x)
        # a turn in pixels, expressed in coordinates scaled by width and height separately
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
        theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
        return theta


class RandomZoom(_RandomAffine):
    """Zooms each image by 1 + a drawn factor (positive: out); width_factor None keeps the aspect."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kw):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kw)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.h = _range(height_factor, "RandomZoom height_factor")
        self.w = None if width_factor is None else _range(width_factor, "RandomZoom width_factor")
        if min(self.h[0], *(self.w or (0,))) < -1:
            raise UserError("RandomZoom factors must be >= -1 (zooming in by more than 100% is impossible)")

    def config(self):
        return {"height_factor": self.height_factor, "width_factor": self.width_factor, **super().config()}

    def matrix(self, x):
        n = x.shape[0]
        zh = 1 + self.uniform(*self.h, n, x)
        zw = zh if self.w is None else 1 + self.uniform(*self.w, n, x)
        theta = _eye(n, x)
        theta[:, 0, 0], theta[:, 1, 1] = zw, zh
        return theta


class RandomTranslation(_RandomAffine):
    """Shifts each image by fractions of its height and width (positive: down and right)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kw):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kw)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.h = _range(height_factor, "RandomTranslation height_factor")
        self.w = _range(width_factor, "RandomTranslation width_factor")

    def config(self):
        return {"height_factor": self.height_factor, "width_factor": self.width_factor, **super().config()}

    def matrix(self, x):
        n = x.shape[0]
        theta = _eye(n, x)
        # grid coordinates span 2 per side; the output at q shows the input at q - shift
        theta[:, 0, 2] = -2 * self.uniform(*self.w, n, x)
        theta[:, 1, 2] = -2 * self.uniform(*self.h, n, x)
        return theta
