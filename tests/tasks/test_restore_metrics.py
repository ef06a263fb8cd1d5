import math

import numpy as np
import pytest
import torch
from skimage import data

from deepix.errors import UserError
from deepix.tasks.restore import classical
from deepix.tasks.restore.classical import baselines_for, bicubic, nlm, tv
from deepix.tasks.restore.degrade import parse, protocol_noise
from deepix.tasks.restore.metrics import mean_table, psnr, ssim, to_y


def camera(side=128):
    return data.camera()[64:64 + side, 160:160 + side] / 255


def test_psnr_identical_is_inf_and_known_mse_gives_20_db():
    a = camera(32)
    assert psnr(a, a) == math.inf
    clean = np.full((16, 16), 0.5)
    assert psnr(clean + 0.1, clean) == pytest.approx(20)
    assert psnr(255 * (clean + 0.1), 255 * clean, data_range=255) == pytest.approx(20)
    assert psnr(np.full((8, 8), 1.3), np.ones((8, 8))) == math.inf  # the output is clipped to [0, 1] first


def test_tensors_are_read_as_chw():
    rgb = data.astronaut()[:32, :32] / 255
    noisy = np.clip(rgb + 0.05, 0, 1)
    assert psnr(torch.tensor(noisy).permute(2, 0, 1), rgb) == pytest.approx(psnr(noisy, rgb))
    assert ssim(torch.tensor(noisy).permute(2, 0, 1), rgb) == pytest.approx(ssim(noisy, rgb))


def test_shave_and_y_channel():
    clean = np.full((20, 20, 3), 0.5)
    out = clean.copy()
    out[:2] = 0.9  # damage only the border
    assert psnr(out, clean) < 30 and psnr(out, clean, shave=2) == math.inf
    assert to_y(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235 / 255)
    assert to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16 / 255)
    # a grey offset of 0.1 becomes 219/255 * 0.1 in Y
    expected = 20 - 20 * math.log10(219 / 255)
    assert psnr(clean + 0.1, clean, y_channel=True) == pytest.approx(expected)
    assert ssim(out, clean, shave=2, y_channel=True) == pytest.approx(1)


def test_ssim_and_errors():
    a = camera(64)
    assert ssim(a, a) == pytest.approx(1)
    assert ssim(protocol_noise(a, 25), a) < 0.8
    with pytest.raises(UserError, match="shape"):
        psnr(a, a[:32])


def test_mean_table():
    rows = [{"image": "a", "psnr": 30.0, "ssim": 0.8}, {"image": "b", "psnr": np.float32(32.0), "ssim": 0.9}]
    assert mean_table(rows) == {"psnr": pytest.approx(31), "ssim": pytest.approx(0.85)}
    assert mean_table([]) == {}


@pytest.mark.parametrize("method", [nlm, tv])
def test_denoisers_beat_the_noisy_input_at_sigma_25(method):
    clean = camera()
    noisy = protocol_noise(clean, 25)
    deg = parse("noise:25")
    assert psnr(method(noisy, deg, 25), clean) > psnr(noisy, clean) + 5
    assert psnr(method(noisy, deg, None), clean) > psnr(noisy, clean) + 4  # sigma estimated


def test_rgb_denoising():
    clean = data.astronaut()[100:164, 180:244] / 255
    noisy = protocol_noise(clean, 25)
    out = tv(noisy, parse("noise:25"), 25)
    assert out.shape == clean.shape and psnr(out, clean) > psnr(noisy, clean) + 3


def blurred(spec):
    deg = parse(spec)
    clean = camera()
    out = deg(torch.tensor(clean, dtype=torch.float32)[None, None], torch.Generator().manual_seed(0))
    return clean, out[0, 0].numpy(), deg


@pytest.mark.parametrize("name", ["wiener", "richardson_lucy"])
def test_deconvolution_beats_the_blurred_input(name):
    clean, degraded, deg = blurred("blur:1.6+noise:2")
    out = baselines_for(deg)[name](degraded, deg, deg.sigma)
    assert out.shape == clean.shape and psnr(out, clean) > psnr(degraded, clean) + 1


def test_deconvolution_needs_a_known_psf():
    _, degraded, deg = blurred("motion:9")
    with pytest.raises(UserError, match="blur"):
        classical.wiener(degraded, deg, None)


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 3)])
def test_bicubic_returns_the_clean_shape(shape):
    out = bicubic(np.random.default_rng(0).random(shape), parse("down:3"), None)
    assert out.shape == (96, 96) + shape[2:] and out.min() >= 0 and out.max() <= 1


def test_which_baselines_apply(monkeypatch):
    bm3d = ["bm3d"] if classical._has_bm3d() else []
    assert list(baselines_for(parse("noise:25"))) == ["noisy input", "nlm", "tv"] + bm3d
    assert list(baselines_for(parse("blur:1.6+noise:2"))) == ["blurred input", "wiener", "richardson_lucy"]
    assert list(baselines_for(parse("down:2+noise:5"))) == ["bicubic"]
    for spec in ("jpeg:20", "poisson:30", "motion:9"):
        assert list(baselines_for(parse(spec))) == ["degraded input", "nlm", "tv"]
    monkeypatch.setattr(classical, "_has_bm3d", lambda: False)
    assert "bm3d" not in baselines_for(parse("noise:25"))


def test_noise_level_estimate():
    clean = camera()
    for sigma in (15, 25, 50):  # at low sigma image detail inflates any MAD estimate
        assert classical.estimate_sigma(protocol_noise(clean, sigma)) == pytest.approx(sigma, rel=0.15)
    rgb = protocol_noise(data.astronaut()[100:228, 150:278] / 255, 25)
    assert classical.estimate_sigma(rgb) == pytest.approx(25, rel=0.15)
