"""Conv2D and the 2-D pooling layers, with Keras's 'valid' / 'same' padding rules."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError
from .. import initializers
from .base import Layer, WithActivation, pair, unsupported


def _check_format(kind: str, data_format) -> None:
    if data_format not in (None, "channels_last"):
        raise unsupported(f"{kind}(data_format={data_format!r})",
                          "pass channels-last arrays (N, H, W, C); deepix.keras transposes them itself")


def _check_padding(kind: str, padding: str) -> str:
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise unsupported(f"{kind}(padding={padding!r})", "use padding='valid' or 'same'")
    return padding


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding: output ceil(size / stride), any odd pixel padded at the end."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return math.ceil(size / stride) if padding == "same" else (size - kernel) // stride + 1


class Conv2D(WithActivation):
    """Keras's Conv2D on (N, C, H, W) tensors: glorot-uniform kernel, zero bias by default."""

    takes_images = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kw):
        super().__init__(activation=activation, **kw)
        _check_format("Conv2D", data_format)
        self.filters, self.groups, self.use_bias = int(filters), int(groups), bool(use_bias)
        self.kernel_size = pair(kernel_size, "Conv2D kernel_size")
        self.strides = pair(strides, "Conv2D strides")
        self.dilation_rate = pair(dilation_rate, "Conv2D dilation_rate")
        self.padding = _check_padding("Conv2D", padding)
        if self.padding == "same" and max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise UserError("Conv2D cannot combine strides > 1 with dilation_rate > 1 (Keras refuses it too)")
        self.kernel_initializer = initializers.check(kernel_initializer)
        self.bias_initializer = initializers.check(bias_initializer)
        self._pad = (0, 0, 0, 0)

    def config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": self.activation_name, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}

    def _effective(self):
        return [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]

    def compute_shape(self, shape):
        if len(shape) != 3:
            raise UserError(f"{self.name} (Conv2D) needs (height, width, channels) inputs; got shape {shape}")
        h, w, _ = shape
        kh, kw = self._effective()
        oh = out_size(h, kh, self.strides[0], self.padding)
        ow = out_size(w, kw, self.strides[1], self.padding)
        if oh < 1 or ow < 1:
            raise UserError(f"{self.name} (Conv2D) gets {h}x{w} inputs, smaller than its {kh}x{kw} kernel; "
                            f"use padding='same' or fewer pooling layers before it")
        return oh, ow, self.filters

    def build(self, shape):
        out = self.compute_shape(shape)
        cin = shape[2]
        if cin % self.groups or self.filters % self.groups:
            raise UserError(f"{self.name} (Conv2D): groups={self.groups} must divide both its {cin} input "
                            f"channels and its {self.filters} filters")
        self.weight = nn.Parameter(initializers.fill(torch.empty(self.filters, cin // self.groups, *self.kernel_size),
                                                     self.kernel_initializer))
        self.bias = nn.Parameter(initializers.fill(torch.empty(self.filters), self.bias_initializer)) \
            if self.use_bias else None
        if self.padding == "same":
            (top, bottom), (left, right) = (same_pads(n, k, s) for n, k, s in
                                            zip(shape[:2], self._effective(), self.strides))
            self._pad = (left, right, top, bottom)
        return out

    def linear(self, x):
        left, right, top, bottom = self._pad
        if left == right and top == bottom:
            padding = (top, left)
        else:  # uneven 'same' padding (even kernel or stride > 1): pad explicitly, extra at the end
            x, padding = F.pad(x, self._pad), (0, 0)
        return F.conv2d(x, self.weight, self.bias, self.strides, padding, self.dilation_rate, self.groups)

    def keras_weights(self):
        kernel = self.weight.detach().permute(2, 3, 1, 0)  # Keras keeps (kh, kw, in, out)
        return [kernel] + ([self.bias.detach()] if self.bias is not None else [])


class _Pooling2D(Layer):
    takes_images = True
    mode = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kw):
        super().__init__(**kw)
        kind = type(self).__name__
        _check_format(kind, data_format)
        self.pool_size = pair(pool_size, f"{kind} pool_size")
        self.strides = pair(strides, f"{kind} strides") if strides is not None else self.pool_size
        self.padding = _check_padding(kind, padding)
        self._pad = (0, 0, 0, 0)

    def config(self):
        return {"pool_size": list(self.pool_size), "strides": list(self.strides), "padding": self.padding}

    def compute_shape(self, shape):
        if len(shape) != 3:
            raise UserError(f"{self.name} ({type(self).__name__}) needs (height, width, channels) inputs; "
                            f"got shape {shape}")
        h, w, c = shape
        oh = out_size(h, self.pool_size[0], self.strides[0], self.padding)
        ow = out_size(w, self.pool_size[1], self.strides[1], self.padding)
        if oh < 1 or ow < 1:
            raise UserError(f"{self.name} ({type(self).__name__}) gets {h}x{w} inputs, smaller than its "
                            f"{self.pool_size[0]}x{self.pool_size[1]} pool; use padding='same' or fewer pooling layers")
        return oh, ow, c

    def build(self, shape):
        out = self.compute_shape(shape)
        if self.padding == "same":
            (top, bottom), (left, right) = (same_pads(n, k, s) for n, k, s in
                                            zip(shape[:2], self.pool_size, self.strides))
            self._pad = (left, right, top, bottom)
        return out

    def forward(self, x):
        left, right, top, bottom = self._pad
        even = left == right and top == bottom
        if self.mode == "max":
            if not even:  # padding never wins a max, as in Keras
                x = F.pad(x, self._pad, value=-math.inf)
            return F.max_pool2d(x, self.pool_size, self.strides, (top, left) if even else 0)
        if even:  # Keras averages over the real pixels only
            return F.avg_pool2d(x, self.pool_size, self.strides, (top, left), count_include_pad=False)
        ones = torch.ones_like(x[:1, :1])
        return (F.avg_pool2d(F.pad(x, self._pad), self.pool_size, self.strides)
                / F.avg_pool2d(F.pad(ones, self._pad), self.pool_size, self.strides))


class MaxPooling2D(_Pooling2D):
    """The largest value of each window."""

    mode = "max"


class AveragePooling2D(_Pooling2D):
    """The mean of each window (of its real pixels, where 'same' pads)."""

    mode = "avg"


class _GlobalPooling2D(Layer):
    takes_images = True

    def __init__(self, data_format=None, keepdims=False, **kw):
        super().__init__(**kw)
        _check_format(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def config(self):
        return {"keepdims": self.keepdims}

    def compute_shape(self, shape):
        if len(shape) != 3:
            raise UserError(f"{self.name} ({type(self).__name__}) needs (height, width, channels) inputs; "
                            f"got shape {shape}")
        return (1, 1, shape[2]) if self.keepdims else (shape[2],)

    def build(self, shape):
        return self.compute_shape(shape)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over the image."""

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The largest value of each channel over the image."""

    def forward(self, x):
        return x.amax((2, 3), keepdim=self.keepdims)


MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D = MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, \
    GlobalMaxPooling2D
Convolution2D = Conv2D
