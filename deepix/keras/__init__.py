"""deepix.keras: Keras programs on PyTorch with only their imports changed.

    from deepix.keras.models import Sequential
    from deepix.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense, Dropout

Models are torch.nn.Modules (forward takes float (N, C, H, W) tensors) that deepix.train also accepts.
"""
from . import callbacks, layers, losses, metrics, mixed_precision, models, optimizers, utils
from .layers import Input
from .models import Model, Sequential, load_model
from ..errors import UserError

__all__ = ["Input", "Model", "Sequential", "callbacks", "layers", "load_model", "losses", "metrics",
           "mixed_precision", "models", "optimizers", "utils"]

_MISSING = {"applications", "backend", "constraints", "datasets", "ops", "preprocessing", "regularizers"}


def __getattr__(name: str):
    # `keras.datasets.mnist` and the like name what is missing instead of a bare AttributeError
    if name in _MISSING:
        fix = "load images as NumPy arrays (deepix.data.builtin.load_builtin has mnist-5k offline)" \
            if name == "datasets" else "remove it"
        raise UserError(f"deepix.keras does not support keras.{name} yet; {fix}")
    raise AttributeError(name)
