"""Sequential models: an nn.Module taking (N, C, H, W) float tensors (deepix's convention) with
Keras's compile / fit / evaluate / predict / summary / save on channels-last NumPy arrays."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_bytes
from torch import nn

from ..errors import UserError
from . import activations, losses, optimizers, saving, training
from .layers import LAYERS, Activation, InputLayer, Layer, MaxPooling2D, Softmax
from .layers.base import WithActivation, from_keras, to_keras, unique_name, unsupported
from .summary import count, summary_text


class Model(nn.Module):
    """Keras's training API over forward(); networks are built with Sequential (no functional API yet)."""

    def __init__(self, *args, name=None, **kw):
        super().__init__()
        if args or kw:
            raise unsupported("the functional API (Model(inputs, outputs))", "build the network with Sequential([...])")
        self.name = name or unique_name("model")
        self.optimizer = None
        self.loss = None
        self.metrics_spec: list = []
        self.compile_config = None
        self.stop_training = False
        self.history = None

    # -- training (deepix/keras/training.py holds the loops)
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, **kw):
        """Sets the optimizer (name or object), the loss and the metrics, as in Keras."""
        for key, value in {"loss_weights": loss_weights, "weighted_metrics": weighted_metrics, **kw}.items():
            if value is not None:
                raise unsupported(f"compile({key}=...)")
        if loss is None:
            raise UserError("compile() needs a loss, e.g. loss='categorical_crossentropy'")
        # a dict with "kind" is one saved loss; other dicts and lists are per-output losses
        several = isinstance(loss, list) or (isinstance(loss, dict) and "kind" not in loss)
        if several or isinstance(metrics, dict):
            raise unsupported("several outputs (dict or list of losses / metrics)",
                              "use one loss and a list of metrics")
        self.optimizer = optimizers.get(optimizer)
        if not (isinstance(loss, str) and loss.lower() in ("crossentropy", "ce")):
            losses.get(loss)  # a wrong name fails here, as in Keras; 'crossentropy' waits for the labels
        self.loss = loss
        listed = isinstance(metrics, (list, tuple))
        self.metrics_spec = [] if metrics is None else list(metrics) if listed else [metrics]
        self.compile_config = {"optimizer": self.optimizer.get_config(), "loss": _describe(loss),
                               "metrics": [_describe(m) for m in self.metrics_spec]}

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains on channels-last arrays (N, H, W, C) or (N, H, W); returns a History."""
        for key, value in {"steps_per_epoch": steps_per_epoch, "validation_steps": validation_steps}.items():
            if value is not None:
                raise unsupported(f"fit({key}=...)", "pass whole arrays; an epoch is one pass over them")
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                            shuffle, class_weight, sample_weight, initial_epoch, validation_batch_size,
                            validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss, or [loss, metric, ...] when compiled with metrics (a dict with return_dict=True)."""
        logs = training.evaluate(self, x, y, batch_size, sample_weight, verbose)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None) -> np.ndarray:
        """The model's outputs (after its final activation) as a float32 NumPy array."""
        return training.predict(self, x, batch_size)

    def predict_on_batch(self, x) -> np.ndarray:
        return self.predict(x)

    # -- weights
    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of every weight and statistic, for restore()."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights in Keras's order and layout."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        weights = list(weights)
        for layer in self.layers:
            n = len(layer.keras_weights())
            layer.set_keras_weights(weights[:n])
            weights = weights[n:]
        if weights:
            raise UserError(f"set_weights got {len(weights)} more arrays than the model has weights")

    def count_params(self) -> int:
        return sum(sum(count(layer)) for layer in self.layers)

    def save(self, filepath, overwrite=True, **kw) -> None:
        """Writes config.json and model.safetensors: a zip for '*.keras', a folder otherwise."""
        saving.save_model(self, filepath, overwrite)

    def save_weights(self, filepath, overwrite=True) -> None:
        """Writes the weights alone as safetensors."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath, **kw) -> None:
        saving.load_weights(self, filepath)

    def summary(self, line_length=None, positions=None, print_fn=None, **kw) -> None:
        """Prints the layers, their output shapes and parameter counts, as Keras does."""
        text = summary_text(self, line_length)
        (print_fn or print)(text)

    def to_json(self, **kw) -> str:
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()}, **kw)


def _describe(spec):
    """A JSON-able record of a loss or metric given by name or object."""
    if isinstance(spec, str):
        return spec
    if hasattr(spec, "get_config"):
        return spec.get_config()
    return getattr(spec, "name", None) or getattr(spec, "kind", None) or getattr(spec, "__name__", repr(spec))


class Sequential(Model):
    """A stack of layers; forward takes float (N, C, H, W) tensors, fit/predict channels-last arrays."""

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name or unique_name("sequential"))
        self.layers = nn.ModuleList()
        self.input_shape_ = None    # Keras form, without the batch axis
        self.output_shape_ = None
        self.built = False
        self._plan = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        if isinstance(layer, Model):
            raise unsupported("models nested in a Sequential", "add its layers one by one")
        if isinstance(layer, InputLayer):
            if len(self.layers):
                raise UserError("Input must come first in a Sequential model")
            self.input_shape_ = layer.shape
            return
        if not isinstance(layer, Layer):
            raise UserError(f"Sequential.add takes a deepix.keras layer; got {type(layer).__name__}")
        if not len(self.layers) and self.input_shape_ is None and layer.input_shape_arg is not None:
            self.input_shape_ = layer.input_shape_arg
        self.layers.append(layer)
        self._plan = None
        if self.input_shape_ is not None:
            self._build_layers()  # as in Keras: shapes are known, so summary() works right away

    def pop(self) -> Layer:
        if not len(self.layers):
            raise UserError("pop() on a Sequential model with no layers")
        layer = self.layers[-1]
        del self.layers[-1]
        self._plan = None
        if self.input_shape_ is not None and len(self.layers):
            self._build_layers()
        return layer

    def build(self, input_shape=None) -> None:
        """Makes the weights for inputs of `input_shape`, with its batch axis: (None, 28, 28, 1)."""
        if input_shape is not None:
            self.input_shape_ = tuple(int(s) for s in tuple(input_shape)[1:])
        if self.input_shape_ is None:
            raise UserError("build() needs input_shape, e.g. model.build((None, 28, 28, 1))")
        self._build_layers()

    def _build_layers(self) -> None:
        shape = self.input_shape_
        for layer in self.layers:
            shape = layer.setup(shape)
        self.output_shape_ = shape
        self.built = len(self.layers) > 0

    @property
    def input_shape(self):
        return None if self.input_shape_ is None else (None, *self.input_shape_)

    @property
    def output_shape(self):
        return None if self.output_shape_ is None else (None, *self.output_shape_)

    def ensure_built(self, shape: tuple) -> None:
        """Builds from the first batch's Keras-form shape (without the batch axis) if not yet built."""
        if not self.built:
            if not len(self.layers):
                raise UserError("the Sequential model has no layers; add some with model.add(...)")
            self.input_shape_ = tuple(int(s) for s in shape)
            self._build_layers()

    # -- the computation
    @property
    def head(self) -> str | None:
        """The final activation that forward_logits leaves out ('softmax', 'sigmoid' or None)."""
        return self.plan()[1]

    def plan(self):
        """(steps, head): the layers as calls in a cheaper but equal order, and the held-back head."""
        if self._plan is None:
            self._plan = _make_plan(list(self.layers))
        return self._plan

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before a final softmax / sigmoid (the same as forward when there is none)."""
        if not self.built:
            self.ensure_built((x.shape[2], x.shape[3], x.shape[1]) if x.ndim == 4 else tuple(x.shape[1:]))
        if not x.is_floating_point():
            x = x.float()
        for step in self.plan()[0]:
            x = step(x)
        return x

    def forward(self, x, training=None):
        if not torch.is_tensor(x):  # model(array) as in Keras: channels-last in and out
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
            return to_keras(self.forward(from_keras(x)))
        z = self.forward_logits(x)
        head = self.head
        # probabilities in float32 even under bf16 autocast, so that they sum to 1
        return activations.get(head)(z.float()) if head else z

    # -- configuration
    def get_config(self) -> dict:
        """JSON-able: the layers' classes and arguments, and the input shape if known."""
        return {"name": self.name, "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                                              for l in self.layers],
                "build_input_shape": None if self.input_shape_ is None else [None, *self.input_shape_]}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        model = cls(name=config.get("name"))
        for spec in config.get("layers", []):
            kind = spec.get("class_name")
            if kind not in LAYERS:
                raise UserError(f"the saved model has a {kind} layer, which deepix.keras does not support")
            model.layers.append(LAYERS[kind].from_config(spec.get("config", {})))
        shape = config.get("build_input_shape")
        if shape is None and len(model.layers) and model.layers[0].input_shape_arg is not None:
            shape = [None, *model.layers[0].input_shape_arg]
        if shape is not None:
            model.build(shape)
        return model


def _make_plan(layers: list[Layer]):
    steps, head, i = [], None, 0
    last = len(layers) - 1
    if layers:
        tail = layers[-1]
        if isinstance(tail, Softmax) or (isinstance(tail, Activation) and tail.activation_name in activations.HEADS):
            head, layers, last = tail.activation_name, layers[:-1], last - 1
        elif isinstance(tail, WithActivation) and tail.activation_name in activations.HEADS:
            head = tail.activation_name
    while i <= last:
        layer = layers[i]
        pool = layers[i + 1] if i < last else None
        if isinstance(pool, MaxPooling2D) and _monotonic(layer):
            # the activation commutes with max, so pooling first applies it to a quarter of the values
            if isinstance(layer, WithActivation) and not isinstance(layer, Activation):
                steps += [layer.linear, pool, layer.act]
            else:
                steps += [pool, layer]
            i += 2
            continue
        steps.append(layer.linear if i == last and head and isinstance(layer, WithActivation) else layer)
        i += 1
    return steps, head


def _monotonic(layer: Layer) -> bool:
    if isinstance(layer, WithActivation) and not isinstance(layer, Activation):
        return layer.activation_name in activations.MONOTONIC and layer.activation_name != "linear"
    return bool(getattr(layer, "monotonic", False))


def model_from_config(config: dict) -> Sequential:
    """Rebuilds a model from get_config() (or {"class_name": "Sequential", "config": ...})."""
    if "class_name" in config and "config" in config:
        if config["class_name"] != "Sequential":
            raise unsupported(f"{config['class_name']} models", "use Sequential")
        config = config["config"]
    return Sequential.from_config(config)


def model_from_json(text: str) -> Sequential:
    return model_from_config(json.loads(text))


def load_model(filepath, compile=True, **kw) -> Sequential:
    """A model saved by `model.save(path)`: its architecture, weights and (when compile) its compile settings."""
    config, weights = saving.read(Path(filepath))
    model = model_from_config(config)
    model.load_state_dict(load_bytes(weights))
    cc = config.get("compile_config")
    if compile and cc:
        try:
            model.compile(optimizer=cc["optimizer"], loss=cc["loss"], metrics=cc["metrics"] or None)
        except UserError as e:
            warnings.warn(f"the model loaded uncompiled: {e}", stacklevel=2)
    return model


def clone_model(model: Sequential) -> Sequential:
    """The same architecture with fresh weights."""
    return model_from_config(model.get_config())
