"""deepix train restore end to end on a tiny folder of photo crops: run folder, table, predict -o, errors."""
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

import deepix
from deepix.errors import UserError
from deepix.tasks.restore import images as imgio

FAST = dict(task="restore", model="dncnn-xs", epochs=1, patches=64, batch=16, patch=32, quiet=True, threads=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    cam, astro = skimage.data.camera(), skimage.data.astronaut()
    for split, crops in (("train", [cam[:96, :96], cam[200:296, 300:396], astro[:96, :96, 1]]),
                         ("val", [cam[300:364, 100:164]]), ("test", [cam[100:180, 150:250]])):
        (root / split).mkdir()
        for i, c in enumerate(crops):
            Image.fromarray(c).save(root / split / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory):
    return deepix.train(data=str(photos), project=str(tmp_path_factory.mktemp("runs")),
                        **{**FAST, "epochs": 8, "patches": 256})


def test_run_folder_and_table(run):
    folder = run["run"]
    for name in ("config.yaml", "metrics.csv", "summary.json", "report.html", "weights/best.safetensors",
                 "plots/panel_1.png", "plots/loss.png"):
        assert (folder / name).is_file(), name
    methods = run["test"]["methods"]
    assert {"deepix", "noisy input", "nlm", "tv"} <= set(methods)
    # the noisy input of the protocol at sigma 25 sits near 20.2 dB on any image
    assert 19.5 < methods["noisy input"]["psnr"] < 21 and methods["nlm"]["psnr"] > methods["noisy input"]["psnr"]
    # deepix's own network learned to denoise: measured 25.96 dB against the input's 20.88 (8 epochs of 256 patches)
    assert methods["deepix"]["psnr"] > methods["noisy input"]["psnr"] + 3
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["task"] == "restore" and summary["test"]["per_image"][0]["image"] == "test/0.png"
    assert "Test PSNR" in (folder / "report.html").read_text()


def test_predict_keeps_size_and_bit_depth(run, tmp_path):
    a16 = (np.linspace(0, 65535, 70 * 50).reshape(70, 50)).astype(np.uint16)
    src = tmp_path / "deep.png"
    Image.fromarray(a16).save(src)
    from deepix.cli import main
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run["run"]), str(src), "-o", str(tmp_path / "out.png")])
    assert e.value.code == 0
    out, depth = imgio.read(tmp_path / "out.png")
    assert depth == 16 and out.shape == (1, 70, 50)
    restored = deepix.load(run["run"]).restore(np.zeros((40, 30, 3), np.uint8))
    assert restored.shape == (1, 40, 30) and restored.min() >= 0 and restored.max() <= 1
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run["run"]), str(src)])
    assert e.value.code == 2


def test_super_resolution_and_rgb(photos, tmp_path):
    r = deepix.train(data=str(photos), project=str(tmp_path), **{**FAST, "model": "espcn", "degrade": "down:2",
                                                                "channels": 3})
    assert "bicubic" in r["test"]["methods"]
    out = deepix.load(r["run"]).restore(np.zeros((21, 30, 3), np.uint8))
    assert out.shape == (3, 42, 60)


@pytest.mark.parametrize("settings,words", [
    (dict(patch=128), "smaller than --patch"),
    (dict(model="seed-cnn"), "classifier"),
    (dict(degrade="noise:300"), "noise"),
    (dict(degrade="down:2"), "super-resolution model"),
    (dict(loss="cross-entropy"), "--loss"),
])
def test_user_errors(photos, tmp_path, settings, words):
    with pytest.raises(UserError, match=words):
        deepix.train(data=str(photos), project=str(tmp_path), **{**FAST, **settings})


def _pairs(root, scale=1, noise=20):
    rng = np.random.default_rng(0)
    cam = skimage.data.camera()
    for i, (r, c) in enumerate([(0, 0), (100, 200), (250, 300), (300, 100), (150, 50)]):
        clean = cam[r:r + 64, c:c + 64]
        low = clean[::scale, ::scale] if scale > 1 else clean
        noisy = np.clip(low + rng.normal(0, noise, low.shape), 0, 255).astype(np.uint8)
        for d, a in (("input", noisy), ("target", clean)):
            (root / d).mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(root / d / f"p{i}.png")
    return root


def test_paired_folders(tmp_path):
    data = _pairs(tmp_path / "pairs")
    r = deepix.train(data=str(data), project=str(tmp_path / "runs"), val_fraction=0.2, test_fraction=0.2, **FAST)
    assert r["test"]["split"] == "test" and "degraded input" in r["test"]["methods"]
    assert deepix.load(r["run"]).restore(np.zeros((30, 20), np.uint8)).shape == (1, 30, 20)
    sr = _pairs(tmp_path / "sr", scale=2, noise=0)
    r = deepix.train(data=str(sr), project=str(tmp_path / "runs"), val_fraction=0.2, test_fraction=0.2,
                     **{**FAST, "model": "espcn"})
    assert "bicubic" in r["test"]["methods"]
    assert deepix.load(r["run"]).restore(np.zeros((30, 20), np.uint8)).shape == (1, 60, 40)


def test_broken_pairs_are_user_errors(tmp_path):
    data = _pairs(tmp_path / "pairs")
    (data / "target" / "p1.png").unlink()
    with pytest.raises(UserError, match="pair missing"):
        deepix.train(data=str(data), project=str(tmp_path / "runs"), **FAST)
    Image.fromarray(np.zeros((50, 47), np.uint8)).save(data / "target" / "p1.png")
    with pytest.raises(UserError, match="does not fit"):
        deepix.train(data=str(data), project=str(tmp_path / "runs"), **FAST)
