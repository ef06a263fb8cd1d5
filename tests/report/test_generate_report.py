"""Generation pictures, the diagnosis of a GAN's curves, and the report of a fake generate run."""
import csv
import json
import math
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from deepix.tasks.generate import pictures
from deepix.report import write_report
from deepix.tasks.generate.report import findings

CLASSES = [str(i) for i in range(10)]
NAN = math.nan


def digits(n, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 28, 28, generator=g)


def gan_rows(d_loss, fid, cov, d_real=None, d_fake=None):
    n = len(d_loss)
    d_real = d_real or [0.6] * n
    d_fake = d_fake or [0.4] * n
    return [{"epoch": i + 1, "train_d_loss": d_loss[i], "train_g_loss": 1.2, "train_d_real": d_real[i],
             "train_d_fake": d_fake[i], "val_fid": fid[i], "val_kid": NAN, "val_coverage_min": cov[i],
             "val_class_accuracy": NAN, "val_precision": NAN, "val_recall": NAN, "lr": 0.0002, "seconds": 3.0}
            for i in range(n)]


def smooth_rows():
    fid = [80, 50, 35, 26, 20, 16, 13, 11]
    return gan_rows([1.2, 1.1, 1.1, 1.0, 1.05, 1.0, 1.0, 1.02], fid, [0.06, 0.08, 0.08, 0.09, 0.09, 0.09, 0.09, 0.095])


def summary(coverage_min=0.091, class_accuracy=0.97):
    cov = [0.1] * 10
    cov[3] = coverage_min
    return {"task": "generate",
            "data": {"name": "mnist-5k", "classes": CLASSES, "images": {"train": 4000, "val": 500, "test": 500},
                     "channels": 1, "size": [28, 28], "resized": None},
            "model": {"name": "cgan", "params": 123, "params_g": 100, "params_d": 23, "conditional": True,
                      "summary": "Generator(...)\nDiscriminator(...)"},
            "classifier": {"model": "vgg7", "test_accuracy": 0.99, "weights": "classifier/weights.safetensors"},
            "train": {"epochs_run": 8, "best_epoch": 8, "seconds": 42.0, "images_per_s": 900.0,
                      "precision": "bf16", "device": "cpu"},
            "test": {"samples": 10000, "feature_space": "penultimate layer of the run's vgg7 classifier (256-d)",
                     "evaluator": "torchmetrics FID/KID", "fid": 3.1, "kid": 0.002, "kid_std": 0.0004,
                     "fid_floor": 0.5, "kid_floor": 0.0001, "precision": 0.8, "recall": 0.7, "coverage": cov,
                     "coverage_min": coverage_min, "class_accuracy": class_accuracy, "inception_fid": 21.5,
                     "inception_samples": 2000, "sample_seconds": 1.2}}


def names(found):
    return " | ".join(f["finding"].lower() for f in found)


def test_grid_shapes_and_border():
    g = pictures.grid(torch.ones(6, 1, 28, 28), nrow=3)
    assert g.dtype == np.uint8 and g.shape == (2 * 30 + 2, 3 * 30 + 2)
    assert g[0, 0] < 60 and g[5, 5] == 255  # dark border, white tile
    assert pictures.grid(np.random.rand(4, 3, 8, 8), nrow=2).shape == (22, 22, 3)


def test_save_grid_scales_up(tmp_path):
    out = pictures.save_grid(digits(8), tmp_path / "samples.png", nrow=4, scale=2)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (2 * (4 * 30 + 2), 2 * (2 * 30 + 2))


def test_progress_gif_caps_frames_and_holds_the_last(tmp_path):
    frames = [pictures.save_grid(digits(4, seed=i), tmp_path / f"epoch_{i:03d}.png", nrow=2) for i in range(1, 71)]
    out = pictures.progress_gif(frames, tmp_path / "progress.gif", ms=100)
    with Image.open(out) as im:
        assert im.format == "GIF" and 1 < im.n_frames <= 60
        im.seek(0)
        first = im.info["duration"]
        im.seek(im.n_frames - 1)
        assert im.info["duration"] > first


def test_loss_and_coverage_plots(tmp_path):
    assert pictures.plot_gan_losses([], tmp_path / "none.png") is None
    for rows in (smooth_rows(), [{"epoch": i + 1, "train_loss": 0.1 / (i + 1), "val_fid": 100 / (i + 1) ** 2}
                                 for i in range(5)]):
        out = pictures.plot_gan_losses(rows, tmp_path / "losses.png")
        with Image.open(out) as im:
            assert im.format == "PNG"
    out = pictures.plot_coverage([0.1] * 9 + [0.01], CLASSES, tmp_path / "coverage.png")
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_neighbours_finds_the_copy(tmp_path):
    train = digits(4000, seed=1)
    feats = train.flatten(1)
    # two planted near-copies (training images 5 and 1717, faintly noised) among fresh images
    planted = train[[5, 1717]] + 0.02 * torch.randn(2, *train.shape[1:], generator=torch.Generator().manual_seed(0))
    samples = torch.cat([planted, digits(3, seed=2)])
    dist, idx = pictures.nearest(samples.flatten(1), feats, k=3)
    assert idx[:2, 0].tolist() == [5, 1717]
    assert (dist[:2, 0] < 0.5 * dist[2:, 0].min()).all()  # the copies stand out from real samples
    assert (dist[:, :-1] <= dist[:, 1:]).all()             # nearest first
    out = pictures.neighbours(samples, train, samples.flatten(1), feats, tmp_path / "nn.png", k=3, n=5,
                              space="raw pixels")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > im.size[0] * 0.9  # five rows of four


def test_interpolation(tmp_path):
    out = pictures.interpolation([digits(7, seed=s) for s in range(3)], tmp_path / "interp.png")
    with Image.open(out) as im:
        assert im.format == "PNG"


def test_collapse_is_found():
    rows = gan_rows([0.9] * 8, [60, 40, 30, 25, 30, 40, 50, 60], [0.08, 0.09, 0.09, 0.07, 0.05, 0.03, 0.02, 0.01])
    found = findings(rows, summary(coverage_min=0.01))
    assert "mode collapse" in names(found) and "healthy" not in names(found)
    collapse = next(f for f in found if "collapse" in f["finding"].lower())
    assert "1.0%" in collapse["evidence"] and any("--sn on" in r for r in collapse["remedies"])


def test_winning_discriminator_is_found():
    rows = gan_rows([0.3, 0.05, 0.01, 0.004, 0.002, 0.001, 0.001, 0.001], [60, 50, 45, 44, 44, 44, 44, 44],
                    [0.09] * 8, d_real=[0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.99, 0.99],
                    d_fake=[0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01, 0.01])
    found = findings(rows, summary())
    winning = [f for f in found if "discriminator is winning" in f["finding"].lower()]
    assert winning and any("--d-lr" in r for r in winning[0]["remedies"])
    assert any("--gp 10" in r for r in winning[0]["remedies"])


def test_smooth_run_is_healthy_and_still_improving():
    found = findings(smooth_rows(), summary())
    assert found[0]["finding"].startswith("Healthy")
    assert "train longer" in names(found) and "mode collapse" not in names(found)
    assert "discriminator" not in names(found)


def test_oscillating_fid_and_diffusion_rows():
    fid = [80, 40, 30, 20, 30, 18, 28, 17, 27, 19]
    rows = [{"epoch": i + 1, "train_loss": 0.05, "val_fid": f, "val_coverage_min": 0.001} for i, f in enumerate(fid)]
    found = findings(rows, summary(coverage_min=0.01))
    assert "swings" in names(found)
    assert "mode collapse" not in names(found) and "discriminator" not in names(found)  # GAN findings only for GANs


def make_run(tmp_path, rows, missing=()):
    run = tmp_path / "runs" / "generate" / "exp"
    plots = run / "plots"
    plots.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "generate", "data": "mnist-5k", "model": "cgan"}))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run / "summary.json").write_text(json.dumps(summary()))
    if "samples" not in missing:
        pictures.save_grid(digits(20), plots / "samples.png", nrow=10)
    if "progress" not in missing:
        frames = [pictures.save_grid(digits(4, seed=i), plots / "epochs" / f"epoch_{i:03d}.png", nrow=2)
                  for i in (1, 2, 3)]
        pictures.progress_gif(frames, plots / "progress.gif")
    return run


@pytest.mark.parametrize("missing", [(), ("samples", "progress")])
def test_write_report(tmp_path, missing):
    run = make_run(tmp_path, smooth_rows(), missing)
    html = write_report(run).read_text()
    assert "FID 3.1 in classifier features (real-vs-real floor 0.5)" in html
    assert "all 10 classes covered (min 9.1%)" in html and "97% of conditional samples" in html
    assert "penultimate layer of the run&#x27;s vgg7 classifier" in html and "Inception FID" in html
    assert "memorisation" not in html  # no neighbours.png: no sentence about it
    pngs = len(re.findall(r'src="data:image/png;base64,', html))
    assert pngs >= (2 if missing else 3)  # losses and coverage drawn from the run's files, + samples
    assert ('src="data:image/gif;base64,' in html) == (not missing)
    assert "Healthy" in html and (run / "plots" / "losses.png").is_file()


def test_little_variety_is_found_from_recall_against_the_training_images():
    from deepix.tasks.generate.report import findings
    rows = [{"epoch": e, "train_d_loss": 1.2, "train_g_loss": 0.9, "train_d_real": 0.3, "train_d_fake": -0.3,
             "val_fid": 2.0, "val_coverage_min": 0.09, "lr": 2e-4} for e in range(1, 6)]
    low = {"test": {"recall": 0.1, "recall_train": 0.6, "precision": 0.9, "coverage_min": 0.09}}
    found = findings(rows, low)
    assert any("variety" in f["finding"] and "--diversity 1" in " ".join(f["remedies"]) for f in found)
    assert not any(f["finding"].startswith("Healthy") for f in found)
    fine = {"test": {"recall": 0.5, "recall_train": 0.6, "precision": 0.9, "coverage_min": 0.09}}
    assert not any("variety" in f["finding"] for f in findings(rows, fine))
