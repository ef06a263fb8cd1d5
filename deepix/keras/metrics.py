"""Keras metrics by name or class, each one value per sample, averaged over an epoch."""
from __future__ import annotations

from ..errors import UserError
from .losses import head_fn, auto_crossentropy, channel_dim, per_sample


class Metric:
    """A metric by Keras's name; `bind(head)` gives fn(z, y) on the model's pre-head output z."""

    kind = ""

    def __init__(self, name=None, **kw):
        if kw:
            raise UserError(f"deepix.keras does not support {type(self).__name__}({next(iter(kw))}=...) yet; remove it")
        self.name = name or self.kind

    def get_config(self) -> dict:
        return {"kind": self.kind, "name": self.name}

    def bind(self, head):
        raise NotImplementedError


class CategoricalAccuracy(Metric):
    kind = "categorical_accuracy"

    def bind(self, head):
        # softmax keeps the order, so the logits' argmax is the prediction
        def fn(z, y):
            d = channel_dim(z)
            return per_sample((z.argmax(d) == y.argmax(d)).float())
        return fn


class SparseCategoricalAccuracy(Metric):
    kind = "sparse_categorical_accuracy"

    def bind(self, head):
        return lambda z, y: per_sample((z.argmax(channel_dim(z)) == y).float())


class BinaryAccuracy(Metric):
    kind = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        super().__init__(name)
        self.threshold = float(threshold)

    def bind(self, head):
        if head == "sigmoid" and self.threshold == 0.5:
            return lambda z, y: per_sample(((z > 0) == (y > 0.5)).float())
        act = head_fn(head)
        return lambda z, y: per_sample(((act(z) > self.threshold) == (y > 0.5)).float())


class MeanSquaredError(Metric):
    kind = "mean_squared_error"

    def bind(self, head):
        act = head_fn(head)
        return lambda z, y: per_sample((act(z) - y).square())


class MeanAbsoluteError(Metric):
    kind = "mean_absolute_error"

    def bind(self, head):
        act = head_fn(head)
        return lambda z, y: per_sample((act(z) - y).abs())


CLASSES = {c.kind: c for c in (CategoricalAccuracy, SparseCategoricalAccuracy, BinaryAccuracy, MeanSquaredError,
                               MeanAbsoluteError)}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


def get(metric, y_shape, out_shape) -> Metric:
    """A Metric from a name or object; 'accuracy' / 'acc' picks its kind from the label and output shapes."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, dict) and metric.get("kind") in CLASSES:
        return CLASSES[metric["kind"]](name=metric.get("name"))
    name = metric
    if not isinstance(name, str):
        raise UserError(f"metrics must be names like 'accuracy' or deepix.keras.metrics objects; got {metric!r}")
    key = ALIASES.get(name.lower(), name.lower())
    if key in ("accuracy", "acc"):
        kind = auto_crossentropy(y_shape, out_shape).replace("crossentropy", "accuracy")
        return CLASSES[kind](name=name)
    if key not in CLASSES:
        raise UserError(f"deepix.keras does not support metric {metric!r} yet; use one of "
                        f"accuracy, {', '.join(sorted((*CLASSES, *ALIASES)))}")
    return CLASSES[key](name=name)
