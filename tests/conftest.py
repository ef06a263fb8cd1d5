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


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Tiny classify, restore, detect and GAN runs (1 epoch each) for export and serve."""
    import skimage.data
    from PIL import Image

    import deepix
    from tests.test_generate import digits_28
    root = tmp_path_factory.mktemp("runs")
    photos = tmp_path_factory.mktemp("photos")
    cam = skimage.data.camera()
    for split, crops in (("train", [cam[:96, :96], cam[200:296, 300:396]]), ("val", [cam[300:364, 100:164]]),
                         ("test", [cam[100:180, 150:250]])):
        (photos / split).mkdir()
        for i, c in enumerate(crops):
            Image.fromarray(c).save(photos / split / f"{i}.png")
    common = dict(project=str(root), quiet=True, threads=1, epochs=1)
    return {
        "classify": deepix.train(data="mnist-5k", model="vgg7", width=0.25, batch=256, name="c", **common)["run"],
        "restore": deepix.train("restore", data=str(photos), model="unet-s", width=0.25, patches=32, batch=16, patch=32,
                                name="r", **common)["run"],
        "detect": deepix.train("detect", data="shapes", precision="fp32", name="d", **common)["run"],
        "generate": deepix.train("generate", data=digits_28(), model="dcgan", width=0.25, batch=32, judge_epochs=1,
                                 name="g", **common)["run"],
    }
