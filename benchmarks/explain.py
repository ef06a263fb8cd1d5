"""Do the explanation maps mean something? (issue 10)

Trains seed-cnn through deepix.train on the synthetic patch set (deepix.explain.sanity.patch_set: the class
is decided by a mark on an 8x8 tile at a random place, a decoy tile elsewhere, a fifth class with no mark)
once per seed, and prints:
- the share of test images whose Grad-CAM peak lies on the deciding tile (goal: at least 90%), beside the
  share on the decoy tile and on a random 8x8 box (the peers of this measurement), and the share when the
  map is stretched over the image (captum's interpolation) instead of placed by receptive field;
- the cascading randomisation (Adebayo et al. 2018): the Spearman rank correlation of Grad-CAM and of
  integrated gradients with the trained model's maps, as the layers are re-drawn from the output down.

    .venv/bin/python benchmarks/explain.py [--seeds 3] [--train 1500] [--epochs 12]

The defaults are the test's (tests/explain/test_explain.py trains seed 0 of them).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

import deepix
from deepix.explain.cam import grad_cam
from deepix.explain.layers import hookable, pick_target, trace
from deepix.explain.sanity import cascading_randomisation, localisation, patch_set, peak_on_patch


def stretched_share(model, x, y, boxes) -> float:
    """The localisation share with the map stretched over the image, as captum's interpolate does."""
    keep = torch.from_numpy(boxes[:, 0] >= 0)
    with hookable(model) as m:
        _, layer, _ = pick_target(m, x[keep], trace(m, x[keep][:1]), None)
        maps = grad_cam(m, x[keep], layer, y[keep], None)
    return float(peak_on_patch(maps, boxes[keep.numpy()]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train", type=int, default=1500, help="training images (a tenth of them held out for val)")
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    xt, yt, boxes, decoys = patch_set(a.test, seed=1000)
    xb, yb = torch.from_numpy(xt)[:, None].float().div(255), torch.from_numpy(yt)
    rng = np.random.default_rng(0)
    corner = rng.integers(0, 32 - 8 + 1, size=(a.test, 2))
    rand = np.concatenate([corner, corner + 8], 1)
    print(f"patch set: {a.train} training images 32x32, 5 classes, seed-cnn {a.epochs} epochs; {a.test} test images")
    print(f"{'seed':<6}{'accuracy':>10}{'peak on tile':>14}{'within 2 px':>13}{'on decoy':>10}{'random box':>12}"
          f"{'stretched':>11}{'train s':>9}")
    models, shares = [], []
    for seed in range(a.seeds):
        x, y, _, _ = patch_set(a.train, seed=seed)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = deepix.train(data=(x, y), model="seed-cnn", epochs=a.epochs, batch=64, augment="none", seed=seed,
                             threads=a.threads, quiet=True, project=tmp, test_fraction=0.0)
            model = deepix.load(r["run"]).model
        seconds = time.perf_counter() - t0
        loc = localisation(model, xb, yb, boxes)
        kept = loc["kept"].numpy()
        shares.append(loc["share"])
        models.append(model)
        print(f"{seed:<6}{loc['accuracy']:>10.1%}{loc['share']:>14.1%}{loc['share_within_2px']:>13.1%}"
              f"{peak_on_patch(loc['maps'], decoys[kept]).mean():>10.1%}"
              f"{peak_on_patch(loc['maps'], rand[kept]).mean():>12.1%}{stretched_share(model, xb, yb, boxes):>11.1%}"
              f"{seconds:>9.1f}")
    print(f"mean peak on tile {np.mean(shares):.1%} over {a.seeds} seeds ({loc['images']} test images with a tile "
          f"each; Grad-CAM of the true class at layer {loc['layer']}, the last convolution)")
    t0 = time.perf_counter()
    rows = [cascading_randomisation(m, xb[:64], yb[:64], methods=("grad-cam", "integrated-gradients"), seed=s)
            for s, m in enumerate(models)]
    print(f"\ncascading randomisation, 64 test images, mean over {len(rows)} seeds ({time.perf_counter() - t0:.1f} s): "
          f"Spearman rank correlation with the trained model's maps")
    print(f"{'layers re-drawn (cumulative, from the output)':<48}{'Grad-CAM':>10}{'int. gradients':>16}")
    for i, row in enumerate(rows[0]):
        what = "none (the trained model)" if i == 0 else f"+ {row['randomised']}"
        gc = np.mean([r[i]["grad-cam"] for r in rows])
        ig = np.mean([r[i]["integrated-gradients"] for r in rows])
        print(f"{what:<48}{gc:>10.3f}{ig:>16.3f}")


if __name__ == "__main__":
    main()
