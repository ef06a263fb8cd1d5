import pytest
import torch

from deepix.errors import UserError
from deepix.models import Spec, build_model, count_params
from deepix.models import dncnn, sr, unet_small  # noqa: F401  (registers the restoration models)

DENOISERS = ["dncnn", "dncnn-s", "dncnn-xs", "unet-s", "unet"]
SUPER_RES = ["espcn", "edsr-s"]


def spec(channels: int, scale: int = 1, **kw) -> Spec:
    s = Spec(channels, 1, (40, 40), **kw)
    s.scale = scale     # set as an attribute so this works before and after Spec has the field
    return s


@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_restorers_keep_odd_sizes_and_learn(name, channels):
    model = build_model(name, spec(channels))
    x = torch.rand(2, channels, 37, 45)
    y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model(x[:1]).shape == (1, channels, 37, 45)


@pytest.mark.parametrize("name", SUPER_RES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_super_resolution_multiplies_the_size(name, channels, scale):
    model = build_model(name, spec(channels, scale)).eval()
    with torch.no_grad():
        y = model(torch.rand(2, channels, 37, 45))
    assert y.shape == (2, channels, 37 * scale, 45 * scale) and torch.isfinite(y).all()


def test_super_resolution_at_scale_one_is_a_restorer():
    for name in SUPER_RES:
        assert build_model(name, Spec(3, 1, (40, 40))).eval()(torch.rand(1, 3, 11, 13)).shape == (1, 3, 11, 13)


def test_bad_scale_is_a_user_error():
    with pytest.raises(UserError):
        build_model("edsr-s", spec(1, 0))


def test_dncnn_is_the_papers_network():
    model = build_model("dncnn", spec(1))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(norms) == 15 and convs[1].out_channels == 64
    # 1->64 conv with bias, 15 x (64->64 conv + BatchNorm), 64->1 conv
    assert count_params(model) == 640 + 15 * (64 * 64 * 9 + 128) + 576 == 556_096


def test_dncnn_predicts_the_noise():
    model = build_model("dncnn-s", spec(3))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    x = torch.rand(2, 3, 21, 17) + 0.1 * torch.randn(2, 3, 21, 17)
    assert torch.equal(model(x), x) and torch.equal(model.eval()(x), x)


@pytest.mark.parametrize("name", ["unet-s", "unet"])
def test_unet_takes_sizes_not_divisible_by_eight(name):
    model = build_model(name, spec(1)).eval()
    for h, w in [(1, 1), (2, 3), (30, 30), (37, 45)]:
        x = torch.rand(1, 1, h, w)
        y = model(x)
        assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, x)


def test_settings_change_the_restorers():
    for name in DENOISERS + SUPER_RES:
        assert count_params(build_model(name, spec(1, width=0.5))) < count_params(build_model(name, spec(1)))
        model = build_model(name, spec(1, activation="gelu"))
        assert any(isinstance(m, torch.nn.GELU) for m in model.modules())


def test_restorers_run_in_bf16_channels_last():
    for name, scale in [("dncnn-xs", 1), ("unet-s", 1), ("edsr-s", 2)]:
        model = build_model(name, spec(3, scale)).to(memory_format=torch.channels_last)
        x = torch.rand(2, 3, 24, 24).to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
        y.float().mean().backward()
        assert y.shape == (2, 3, 24 * scale, 24 * scale) and torch.isfinite(y.float()).all()


def test_unet_is_scale_equivariant():
    # bias-free convs, ReLU and the residual output: f(a x) = a f(x), so it is not tied to the training noise level
    model = build_model("unet-s", spec(1)).eval()
    x = torch.rand(1, 1, 21, 19)
    with torch.no_grad():
        assert torch.allclose(model(3 * x), 3 * model(x), atol=1e-5)
