"""deepix.keras.layers: Keras's image layers as torch modules (the names Keras uses)."""
from __future__ import annotations

from .augment import RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .base import Layer
from .conv import (AveragePooling2D, AvgPool2D, Conv2D, Convolution2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                   GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .core import (Activation, BatchNormalization, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU,
                   Rescaling, Reshape, Softmax, SpatialDropout2D)
from ...errors import UserError

# class name -> class, for rebuilding saved models
LAYERS = {cls.__name__: cls for cls in (
    Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D,
    GlobalMaxPooling2D, InputLayer, LeakyReLU, MaxPooling2D, RandomFlip, RandomRotation, RandomTranslation,
    RandomZoom, ReLU, Rescaling, Reshape, Softmax, SpatialDropout2D)}

ALIASES = ["AvgPool2D", "Convolution2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "MaxPool2D"]
__all__ = sorted(LAYERS) + ALIASES + ["Input", "Layer"]


def __getattr__(name: str):
    # `from deepix.keras.layers import LSTM` names what is missing instead of a bare ImportError
    if name[:1].isupper():
        raise UserError(f"deepix.keras does not support layers.{name} yet; the supported layers are "
                        f"{', '.join(sorted(LAYERS))}")
    raise AttributeError(name)
