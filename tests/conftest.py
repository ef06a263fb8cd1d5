import os

import numpy as np
import pytest

# tests must never reach the network or a user's cache
os.environ.setdefault("DEEPIX_DATA", "/nonexistent-deepix-data")


@pytest.fixture
def tiny_arrays():
    """A 3-class set of 8x8 images whose class is where a bright square sits: easy to learn."""
    rng = np.random.default_rng(0)
    n = 90
    y = np.repeat(np.arange(3), n // 3)
    x = rng.integers(0, 40, size=(n, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c:2 * c + 3, 1:4] = 230
    return x, y


FAST = dict(data="digits", model="seed-cnn", epochs=2, batch=64, quiet=True, threads=1)
