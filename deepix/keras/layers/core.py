"""Input, Dense, Flatten, Reshape, Dropout, activation layers, Rescaling and BatchNormalization."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError
from .. import activations, initializers
from .base import Layer, WithActivation, from_keras, to_keras, unsupported


class InputLayer(Layer):
    """The input's shape (without the batch axis); Sequential keeps it apart from its layers."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, input_shape=None, **kw):
        super().__init__(name=name, dtype=dtype, **kw)
        shape = shape if shape is not None else input_shape  # `input_shape` is the Keras 2 spelling
        if shape is None and batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            raise UserError("Input needs shape=(height, width, channels) or another shape without the batch axis")
        self.shape = tuple(int(s) for s in shape)
        if any(s is None or s < 1 for s in self.shape):
            raise unsupported(f"Input(shape={shape}) with unknown sizes", "give every size (e.g. (28, 28, 1))")

    def config(self):
        return {"shape": list(self.shape)}

    def forward(self, x):
        return x


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kw) -> InputLayer:
    """An input placeholder for Sequential([Input(shape=...), ...]); the functional API is not supported."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name, **kw)


class Dense(WithActivation):
    """A fully connected layer on the last (channel) axis; glorot-uniform kernel, zero bias."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kw):
        super().__init__(activation=activation, **kw)
        self.units, self.use_bias = int(units), bool(use_bias)
        self.kernel_initializer = initializers.check(kernel_initializer)
        self.bias_initializer = initializers.check(bias_initializer)

    def config(self):
        return {"units": self.units, "activation": self.activation_name, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}

    def compute_shape(self, shape):
        return (*shape[:-1], self.units)

    def build(self, shape):
        self.weight = nn.Parameter(initializers.fill(torch.empty(self.units, shape[-1]), self.kernel_initializer))
        self.bias = nn.Parameter(initializers.fill(torch.empty(self.units), self.bias_initializer)) \
            if self.use_bias else None
        return self.compute_shape(shape)

    def linear(self, x):
        if x.ndim == 4:  # per pixel, on the channels, as Keras does for images
            return from_keras(F.linear(to_keras(x), self.weight, self.bias))
        return F.linear(x, self.weight, self.bias)

    def keras_weights(self):
        return [self.weight.detach().t()] + ([self.bias.detach()] if self.bias is not None else [])


class Flatten(Layer):
    """One vector per sample, in Keras's (height, width, channel) order."""

    def __init__(self, data_format=None, **kw):
        super().__init__(**kw)
        if data_format not in (None, "channels_last"):
            raise unsupported(f"Flatten(data_format={data_format!r})")

    def compute_shape(self, shape):
        return (math.prod(shape),)

    build = compute_shape

    def forward(self, x):
        # channels-last memory makes this permute free
        return torch.flatten(to_keras(x), 1)


class Reshape(Layer):
    """A new shape per sample (one size may be -1), read in Keras's channels-last order."""

    def __init__(self, target_shape, **kw):
        super().__init__(**kw)
        self.target_shape = tuple(int(s) for s in target_shape)

    def config(self):
        return {"target_shape": list(self.target_shape)}

    def compute_shape(self, shape):
        n, target = math.prod(shape), list(self.target_shape)
        known = math.prod(s for s in target if s != -1)
        if target.count(-1) == 1 and known and n % known == 0:
            target[target.index(-1)] = n // known
        if target.count(-1) or math.prod(target) != n:
            raise UserError(f"{self.name} (Reshape) cannot turn shape {shape} ({n} values) into {self.target_shape}")
        return tuple(target)

    build = compute_shape

    def forward(self, x):
        return from_keras(to_keras(x).reshape(x.shape[0], *self.output_shape_))


class Dropout(Layer):
    """Zeroes a fraction `rate` of values while training, scaling the rest up."""

    def __init__(self, rate, noise_shape=None, seed=None, **kw):
        super().__init__(**kw)
        if noise_shape is not None:
            raise unsupported("Dropout(noise_shape=...)", "use SpatialDropout2D to drop whole channels")
        self.rate = float(rate)

    def config(self):
        return {"rate": self.rate}

    def compute_shape(self, shape):
        return shape

    build = compute_shape

    def forward(self, x):
        return F.dropout(x, self.rate, self.training)


class SpatialDropout2D(Dropout):
    """Zeroes whole channels while training."""

    takes_images = True

    def forward(self, x):
        return F.dropout2d(x, self.rate, self.training)


class _Elementwise(Layer):
    """Shape-preserving layers; `monotonic` ones may swap places with a following max-pool."""

    monotonic = False

    def compute_shape(self, shape):
        return shape

    build = compute_shape


class Activation(WithActivation):
    """An activation function by name."""

    def __init__(self, activation, **kw):
        super().__init__(activation=activation, **kw)
        self.monotonic = self.activation_name in activations.MONOTONIC

    def config(self):
        return {"activation": self.activation_name}

    def compute_shape(self, shape):
        return shape

    build = compute_shape

    def linear(self, x):
        return x


class ReLU(_Elementwise):
    """max(x, 0), optionally capped at max_value and leaky below zero."""

    monotonic = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kw):
        super().__init__(**kw)
        if threshold:
            raise unsupported(f"ReLU(threshold={threshold})")
        if negative_slope < 0:
            raise UserError(f"ReLU(negative_slope={negative_slope}) must be >= 0")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)

    def config(self):
        return {"max_value": self.max_value, "negative_slope": self.negative_slope}

    def forward(self, x):
        x = F.leaky_relu(x, self.negative_slope) if self.negative_slope else F.relu(x)
        return x if self.max_value is None else x.clamp(max=self.max_value)


class LeakyReLU(_Elementwise):
    """x for x > 0, negative_slope * x below (Keras 3's default slope: 0.3)."""

    monotonic = True

    def __init__(self, negative_slope=0.3, alpha=None, **kw):
        super().__init__(**kw)
        self.negative_slope = float(alpha if alpha is not None else negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Softmax(_Elementwise):
    """Softmax over the last (channel) axis."""

    activation_name = "softmax"

    def __init__(self, axis=-1, **kw):
        super().__init__(**kw)
        if axis != -1:
            raise unsupported(f"Softmax(axis={axis})", "use the default axis=-1")

    def forward(self, x):
        return activations.softmax(x)


class Rescaling(_Elementwise):
    """x * scale + offset, e.g. Rescaling(1/255) for pixel values."""

    def __init__(self, scale, offset=0.0, **kw):
        super().__init__(**kw)
        self.scale, self.offset = float(scale), float(offset)
        self.monotonic = self.scale >= 0

    def config(self):
        return {"scale": self.scale, "offset": self.offset}

    def forward(self, x):
        return x * self.scale + self.offset if self.offset else x * self.scale


class BatchNormalization(Layer):
    """Per-channel normalisation: batch statistics in training, moving averages after (momentum 0.99)."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 synchronized=False, **kw):
        super().__init__(**kw)
        if axis not in (-1, 3, [-1], [3]):
            raise unsupported(f"BatchNormalization(axis={axis})", "normalise the channel axis (axis=-1)")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.inits = {k: initializers.check(v) for k, v in (
            ("beta_initializer", beta_initializer), ("gamma_initializer", gamma_initializer),
            ("moving_mean_initializer", moving_mean_initializer),
            ("moving_variance_initializer", moving_variance_initializer))}

    def config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                **self.inits}

    def compute_shape(self, shape):
        return shape

    def build(self, shape):
        c = shape[-1]
        make = lambda key: initializers.fill(torch.empty(c), self.inits[key])  # noqa: E731
        self.weight = nn.Parameter(make("gamma_initializer")) if self.scale else None
        self.bias = nn.Parameter(make("beta_initializer")) if self.center else None
        self.register_buffer("running_mean", make("moving_mean_initializer"))
        self.register_buffer("running_var", make("moving_variance_initializer"))
        return shape

    def forward(self, x):
        # Keras runs a frozen (trainable=False) BatchNormalization in inference mode
        training = self.training and self._trainable
        steps = x.ndim == 3  # (N, steps, channels): torch wants the channels at dim 1
        y = F.batch_norm(x.transpose(1, 2) if steps else x, self.running_mean, self.running_var, self.weight,
                         self.bias, training, 1 - self.momentum, self.epsilon)
        return y.transpose(1, 2) if steps else y

    def keras_weights(self):
        own = [p.detach() for p in (self.weight, self.bias) if p is not None]
        return own + [self.running_mean, self.running_var]
