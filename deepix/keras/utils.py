"""to_categorical, set_random_seed and clear_session, as in keras.utils."""
from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import UserError
from .layers.base import reset_names


def to_categorical(x, num_classes=None) -> np.ndarray:
    """Integer labels (N,) or (N, 1) to one-hot float32 rows (N, num_classes)."""
    y = np.asarray(x)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and (not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0):
        raise UserError("to_categorical takes non-negative integer labels")
    y = y.astype(np.int64)
    n = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if y.size else 0)
    if y.size and y.max() >= n:
        raise UserError(f"to_categorical: label {int(y.max())} does not fit num_classes={n}")
    return np.eye(n, dtype=np.float32)[y]


def set_random_seed(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's generators (weights, shuffling, dropout, augmentation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def clear_session() -> None:
    """Restarts layer and model names at conv2d, dense, sequential, ..."""
    reset_names()
