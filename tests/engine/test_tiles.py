import pytest
import torch

from deepix.models import Spec, build_model
from deepix.models import dncnn, sr  # noqa: F401  (registers the restoration models)
from deepix.engine.tiles import _starts, predict_tiled


def model(name: str, channels: int = 3, scale: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = Spec(channels, 1, (40, 40))
    spec.scale = scale
    return build_model(name, spec).eval()


def test_tiled_matches_whole_image():
    # dncnn-xs sees 6 pixels around each output: less than the quarter of the overlap that is never used
    net, x = model("dncnn-xs"), torch.rand(1, 3, 300, 260)
    with torch.no_grad():
        whole = net(x)
    tiled = predict_tiled(net, x, tile=128, overlap=32)
    assert tiled.shape == whole.shape and (tiled - whole).abs().max() < 1e-4


def test_tiled_super_resolution_matches_whole_image():
    net, x = model("espcn", channels=1, scale=2), torch.rand(1, 1, 300, 260)
    with torch.no_grad():
        whole = net(x)
    tiled = predict_tiled(net, x, scale=2, tile=128, overlap=32)
    assert tiled.shape == (1, 1, 600, 520) and (tiled - whole).abs().max() < 1e-4


def _lines(length: int, tile: int, overlap: int) -> list[int]:
    starts = _starts(length, tile, overlap)
    return sorted({v for s in starts for v in (s, s + tile - 1) if 0 < v < length - 1})


def test_no_seams_at_tile_borders():
    # a 10-layer net sees further than the overlap, so tiles do differ from the whole image: the
    # blend must keep that difference off the tile borders, where a plain tiler's seams sit
    torch.manual_seed(1)
    net = dncnn.DnCNN(1, 10, 16).eval()
    x = torch.rand(1, 1, 150, 130)
    with torch.no_grad():
        whole = net(x)
    err = (predict_tiled(net, x, tile=64, overlap=16) - whole).abs()[0, 0]
    border = torch.zeros(150, 130, dtype=torch.bool)
    border[_lines(150, 64, 16), :] = True
    border[:, _lines(130, 64, 16)] = True
    assert err.max() > 1e-3        # the test means something: the tiles do see less
    assert err[border].mean() <= err[~border].mean()


def test_tiles_are_full_size_and_restore_the_mode():
    seen = []
    net = model("dncnn-xs", channels=1).train()
    net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    y = predict_tiled(net, torch.rand(1, 1, 300, 260), tile=128, overlap=32)
    assert set(seen) == {(128, 128)} and len(seen) == 9
    assert net.training and not y.requires_grad


def test_small_images_go_through_whole():
    net, x = model("dncnn-xs", channels=1), torch.rand(1, 1, 50, 70)
    with torch.no_grad():
        assert torch.equal(predict_tiled(net, x, tile=128), net(x))
    # tiled along the long side only
    assert predict_tiled(net, torch.rand(1, 1, 50, 300), tile=128).shape == (1, 1, 50, 300)


def test_bf16_tiles_are_close():
    net, x = model("dncnn-xs"), torch.rand(1, 3, 90, 100)
    fp32 = predict_tiled(net, x, tile=48, overlap=16)
    bf16 = predict_tiled(net, x, tile=48, overlap=16, bf16=True)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.05


def test_bad_tiling_is_refused():
    with pytest.raises(ValueError):
        predict_tiled(model("dncnn-xs"), torch.rand(1, 3, 64, 64), tile=32, overlap=32)


def test_self_ensemble_undoes_each_flip_and_rotation():
    from deepix.engine.tiles import _dihedral, predict_ensemble
    x = torch.rand(1, 1, 5, 7)
    views = [_dihedral(x, k) for k in range(8)]
    assert all(torch.equal(_dihedral(v, k, inverse=True), x) for k, v in enumerate(views))
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8     # the 8 are distinct
    assert torch.allclose(predict_ensemble(torch.nn.Identity(), x, tile=4, overlap=2), x, atol=1e-6)
    # a net that is not rotation-invariant: the ensemble is the mean of its 8 transformed answers
    net = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.arange(9.0).reshape(1, 1, 3, 3))
    want = sum(_dihedral(net(_dihedral(x, k)), k, inverse=True) for k in range(8)) / 8
    assert torch.allclose(predict_ensemble(net, x, tile=64), want, atol=1e-5)
