"""Keras losses by name or class. Each gives one value per sample; when the model ends in
softmax/sigmoid, cross-entropies are computed from the logits before it, which is stable."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from . import activations
from .layers.base import to_keras

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] before taking logs


def per_sample(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).mean(1) if t.ndim > 1 else t


def channel_dim(t: torch.Tensor) -> int:
    return 1 if t.ndim == 4 or t.ndim == 2 else -1


def _classes_first(t: torch.Tensor) -> torch.Tensor:
    # torch's cross-entropy wants classes at dim 1; (N, steps, classes) keeps them last
    return t.transpose(1, 2) if t.ndim == 3 else t


class Loss:
    """A loss by Keras's name; `bind(head)` gives fn(z, y) on the model's pre-head output z."""

    name = "loss"
    kind = ""
    head = None  # the final activation whose logits this loss prefers

    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size", name=None, **kw):
        if kw:
            raise UserError(f"deepix.keras does not support {type(self).__name__}({next(iter(kw))}=...) yet; remove it")
        if reduction not in ("sum_over_batch_size", "auto", None):
            raise UserError(f"deepix.keras does not support {type(self).__name__}(reduction={reduction!r}) yet; "
                            f"remove it")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        if name:
            self.name = name

    def get_config(self) -> dict:
        return {"kind": self.kind, "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def bind(self, head: str | None):
        """fn(z, y) -> per-sample losses, where z is the output before the model's final `head` activation."""
        if self.from_logits or head == self.head:
            if self.from_logits and head in ("softmax", "sigmoid"):
                raise UserError(f"the loss has from_logits=True but the model ends in {head}; remove the "
                                f"activation from the last layer or use from_logits=False")
            return self.on_logits
        act = head_fn(head)
        return lambda z, y: self.on_outputs(act(z), y)

    def on_logits(self, z, y):
        raise NotImplementedError

    def on_outputs(self, p, y):
        raise NotImplementedError


def head_fn(head):
    """The model's final activation as a function (identity when there is none)."""
    return activations.get(head) if head else activations.linear


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) labels."""

    kind, head = "categorical_crossentropy", "softmax"

    def on_logits(self, z, y):
        return per_sample(F.cross_entropy(_classes_first(z), _classes_first(y), reduction="none",
                                          label_smoothing=self.label_smoothing))

    def on_outputs(self, p, y):
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / y.shape[channel_dim(y)]
        d = channel_dim(p)
        p = (p / p.sum(d, keepdim=True)).clamp(EPSILON, 1 - EPSILON)
        return per_sample(-(y * p.log()).sum(d))


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels."""

    kind, head = "sparse_categorical_crossentropy", "softmax"

    def on_logits(self, z, y):
        return per_sample(F.cross_entropy(_classes_first(z), y, reduction="none"))

    def on_outputs(self, p, y):
        return per_sample(F.nll_loss(_classes_first(p.clamp(EPSILON, 1 - EPSILON).log()), y, reduction="none"))


class BinaryCrossentropy(Loss):
    """Cross-entropy of independent yes/no outputs (labels 0 or 1)."""

    kind, head = "binary_crossentropy", "sigmoid"

    def _smooth(self, y):
        return y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing if self.label_smoothing else y

    def on_logits(self, z, y):
        return per_sample(F.binary_cross_entropy_with_logits(z, self._smooth(y), reduction="none"))

    def on_outputs(self, p, y):
        return per_sample(F.binary_cross_entropy(p.clamp(EPSILON, 1 - EPSILON), self._smooth(y), reduction="none"))


class _Regression(Loss):
    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name)

    def get_config(self):
        return {"kind": self.kind}

    def bind(self, head):
        act = head_fn(head)
        return lambda z, y: self.on_outputs(act(z), y)


class MeanSquaredError(_Regression):
    kind = "mean_squared_error"

    def on_outputs(self, p, y):
        return per_sample(F.mse_loss(p, y, reduction="none"))


class MeanAbsoluteError(_Regression):
    kind = "mean_absolute_error"

    def on_outputs(self, p, y):
        return per_sample(F.l1_loss(p, y, reduction="none"))


class Huber(_Regression):
    kind = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name)
        self.delta = float(delta)

    def get_config(self):
        return {"kind": self.kind, "delta": self.delta}

    def on_outputs(self, p, y):
        return per_sample(F.huber_loss(p, y, reduction="none", delta=self.delta))


class Custom(Loss):
    """A user's fn(y_true, y_pred) on torch tensors in Keras's layout, per sample or already averaged."""

    kind = "custom"

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def get_config(self):
        return {"kind": self.kind, "function": getattr(self.fn, "__name__", "?")}

    def bind(self, head):
        act = head_fn(head)

        def call(z, y):
            out = self.fn(to_keras(y), to_keras(act(z)))
            return per_sample(out) if out.ndim else out.expand(z.shape[0])
        return call


CLASSES = {c.kind: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
                               MeanSquaredError, MeanAbsoluteError, Huber)}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber_loss": "huber"}


def get(loss, y_true=None, out_shape=None) -> Loss:
    """A Loss from a name, a Loss object or a function; 'crossentropy' picks by the label's shape."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        key = ALIASES.get(loss.lower(), loss.lower())
        if key in ("crossentropy", "ce"):
            key = auto_crossentropy(y_true, out_shape)
        if key not in CLASSES:
            raise UserError(f"deepix.keras does not support loss {loss!r} yet; use one of "
                            f"{', '.join(sorted((*CLASSES, *ALIASES)))}, or a function fn(y_true, y_pred)")
        return CLASSES[key]()
    if isinstance(loss, dict) and loss.get("kind") in CLASSES:
        cfg = {k: v for k, v in loss.items() if k != "kind"}
        return CLASSES[loss["kind"]](**cfg)
    if callable(loss):
        return Custom(loss)
    raise UserError(f"loss must be a name like 'categorical_crossentropy', a deepix.keras.losses object or a "
                    f"function; got {loss!r}")


def auto_crossentropy(y_shape, out_shape) -> str:
    """Keras's choice for 'crossentropy' and 'accuracy': binary, sparse or categorical, by shapes."""
    if out_shape is None or y_shape is None:
        raise UserError("loss='crossentropy' needs the model built; give the first layer input_shape=...")
    if out_shape[-1] == 1:
        return "binary_crossentropy"
    if len(y_shape) < len(out_shape) + 1 or (y_shape[-1] == 1 and out_shape[-1] > 1):
        return "sparse_categorical_crossentropy"
    return "categorical_crossentropy"
