import numpy as np
import pytest
import torch
from skimage import data

from deepix.errors import UserError
from deepix.tasks.restore.degrade import crop_to_scale, gaussian_kernel, motion_kernels, parse, protocol_noise


def camera(n=2, side=96):
    x = torch.tensor(data.camera()[80:80 + side, 200:200 + side] / 255, dtype=torch.float32)
    return x[None, None].repeat(n, 1, 1, 1)


def astronaut(n=2, side=64):
    x = torch.tensor(data.astronaut()[100:100 + side, 180:180 + side] / 255, dtype=torch.float32)
    return x.permute(2, 0, 1)[None].repeat(n, 1, 1, 1)


def run(spec, x, seed=0):
    return parse(spec)(x, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec", ["noise:25", "noise:0-55", "poisson:30", "motion:9", "blur:1.6+noise:2",
                                  "down:2+noise:5", "jpeg:20+noise:3"])
def test_same_seed_repeats_other_seed_differs(spec):
    x = camera()
    assert torch.equal(run(spec, x, 0), run(spec, x, 0))
    assert not torch.equal(run(spec, x, 0), run(spec, x, 1))


def test_shapes_and_crop_rule():
    x = torch.rand(2, 1, 95, 95)
    assert torch.equal(crop_to_scale(x, 3), x[..., :93, :93])  # bottom rows and right columns dropped
    assert run("down:3", crop_to_scale(x, 3)).shape == (2, 1, 31, 31)
    assert run("down:3", x).shape == (2, 1, 31, 31)
    assert run("down:4+noise:5", astronaut()).shape == (2, 3, 16, 16)
    assert run("blur:1.6+noise:2", astronaut()).shape == (2, 3, 64, 64)
    d = parse("down:2+noise:5")
    assert (d.scale, d.sigma, parse("blur:1.6").scale, parse("noise:0-55").sigma) == (2, 5.0, 1, None)


def test_gaussian_noise_level_and_not_clipped():
    x = camera(4)
    y = run("noise:25", x)
    assert abs(float((y - x).std()) - 25 / 255) < 0.03 * 25 / 255
    assert y.min() < 0 or y.max() > 1
    bright = run("noise:25", torch.full((2, 1, 32, 32), 0.98))
    assert bright.max() > 1  # the protocol keeps the noisy input unclipped


def test_blind_noise_draws_a_sigma_per_image():
    x = torch.full((8, 1, 48, 48), 0.5)
    stds = (run("noise:0-55", x) - x).flatten(1).std(1) * 255
    assert float(stds.max()) < 55 * 1.1 and float(stds.max() - stds.min()) > 10


@pytest.mark.parametrize("make", [camera, astronaut])
def test_jpeg_changes_the_image_and_stays_in_range(make):
    x = make()
    y = run("jpeg:10", x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    assert float((y - x).abs().mean()) > 0.005
    assert float((run("jpeg:95", x) - x).abs().mean()) < float((y - x).abs().mean())


def test_poisson_in_range_and_unbiased():
    x = torch.full((4, 1, 64, 64), 0.5)
    y = run("poisson:30", x)
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    assert abs(float(y.mean()) - 0.5) < 0.01 and float(y.std()) > 0.05


def test_blur_kernels_and_psf():
    assert gaussian_kernel(1.6).shape == (11, 11) and float(gaussian_kernel(1.6).sum()) == pytest.approx(1)
    psf = parse("blur:1.6+noise:2").blur_kernel()
    assert psf.shape == (11, 11) and psf.sum() == pytest.approx(1)
    assert parse("blur:1+blur:1").blur_kernel().sum() == pytest.approx(1)
    assert parse("motion:9").blur_kernel() is None and parse("noise:25").blur_kernel() is None
    lines = motion_kernels(9, torch.tensor([0.0, 0.7, 2.0]))
    assert lines.shape == (3, 9, 9) and torch.allclose(lines.sum((1, 2)), torch.ones(3, dtype=torch.float64))
    flat = torch.full((2, 3, 24, 24), 0.3)
    assert torch.allclose(run("blur:1.6", flat), flat) and torch.allclose(run("motion:9", flat), flat)


def test_motion_angle_differs_per_image():
    y = run("motion:9", camera(2))
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("spec", ["", "foo:1", "noise", "noise:300", "noise:abc", "noise:30-10", "jpeg:0",
                                  "jpeg:101", "jpeg:20.5", "blur:0", "motion:2.5", "down:5", "down:2+blur:1",
                                  "down:2+down:2", "poisson:0"])
def test_bad_specs_are_user_errors(spec):
    with pytest.raises(UserError, match="noise:25"):
        parse(spec)


def test_user_errors_at_call_time():
    with pytest.raises(UserError):
        run("blur:5", torch.rand(1, 1, 10, 10))  # kernel larger than the image
    with pytest.raises(UserError):
        run("noise:25", torch.rand(1, 32, 32))


def test_protocol_noise_matches_the_published_recipe():
    img = data.camera()[:32, :32] / 255
    np.random.seed(0)
    expected = img + np.random.normal(0, 25 / 255, img.shape)
    out = protocol_noise(img, 25)
    assert out.dtype == np.float64 and np.array_equal(out, expected)
    assert np.array_equal(protocol_noise(img, 25), out)  # reseeded every call
    with pytest.raises(UserError):
        protocol_noise(data.camera(), 25)
