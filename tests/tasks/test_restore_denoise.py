"""The denoiser shipped inside the package: present, loads, denoises, and the command works."""
import numpy as np
import pytest
import skimage.data
from PIL import Image

import deepix
from deepix.cli import main
from deepix.tasks.restore.denoise import WEIGHTS
from deepix.errors import UserError
from deepix.tasks.restore.degrade import protocol_noise
from deepix.tasks.restore.metrics import psnr


def test_weights_ship_with_the_package():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 8 * 2**20
    assert WEIGHTS.with_suffix(".json").is_file()


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_denoises_better_than_the_noisy_input(sigma):
    clean = skimage.data.camera()[100:260, 150:310].astype(np.float64) / 255
    noisy = protocol_noise(clean, sigma)
    out, used = deepix.denoise(noisy.astype(np.float32))
    assert abs(used - sigma) < 0.2 * sigma  # estimated from the image
    assert psnr(out[0].numpy(), clean) > psnr(np.clip(noisy, 0, 1), clean) + 5


def test_command_keeps_colour_size_and_depth(tmp_path):
    rgb = (skimage.data.astronaut()[:90, :70] * 1.0 + np.random.default_rng(0).normal(0, 20, (90, 70, 3)))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(tmp_path / "in.png")
    with pytest.raises(SystemExit) as e:
        main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")])
    assert e.value.code == 0
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (90, 70, 3)
    with pytest.raises(UserError, match="sigma"):
        deepix.denoise(np.zeros((20, 20)), sigma=300)
