"""deepix's default segmenter on real images with expert labels: the 30 electron-microscopy slices of the ISBI
2012 challenge (../shared/data/segment/membrane, 512x512 grey, labels 255 = cell, 0 = membrane), split by seed 0
into 20 train / 5 val / 5 test, written as a folder of pairs (cell = 0, membrane = 1) and trained by the
command a user would type. Real pixels and real labels; not photographs (one grey channel, one texture, two
classes), and only 20 training images.

    python benchmarks/segment_membrane.py --minutes 10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "segment" / "membrane"


def pairs(out: Path, seed: int = 0) -> None:
    names = sorted((SOURCE / "image").glob("*.png"), key=lambda p: int(p.stem))
    order = np.random.default_rng(seed).permutation(len(names))
    parts = {"test": order[:5], "val": order[5:10], "train": order[10:]}
    for split, idx in parts.items():
        (out / split / "images").mkdir(parents=True)
        (out / split / "masks").mkdir(parents=True)
        for i in idx:
            p = names[i]
            Image.open(p).convert("RGB").save(out / split / "images" / p.name)
            label = np.asarray(Image.open(SOURCE / "label" / p.name).convert("L"))
            Image.fromarray((label < 128).astype(np.uint8)).save(out / split / "masks" / p.name)
    (out / "classes.txt").write_text("cell\nmembrane\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", default="unet-seg")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "membrane"
        pairs(data)
        subprocess.run([sys.executable, "-m", "deepix", "train", "segment", "--data", str(data), "--model", a.model,
                        "--time-limit", str(a.minutes), "--project", tmp, "--quiet"], check=True)
        s = json.loads((Path(tmp) / "segment" / "exp1" / "summary.json").read_text())
    t, tr = s["test"], s["train"]
    print(json.dumps({"model": a.model, "test": {k: t[k] for k in ("miou", "pixel_accuracy", "dice", "iou_per_class",
                                                                   "boundary_accuracy", "interior_accuracy")},
                      "epochs": tr["epochs_run"], "best_epoch": tr["best_epoch"], "seconds": tr["seconds"],
                      "images_per_s": tr["images_per_s"], "precision": tr["precision"]}, indent=1))


if __name__ == "__main__":
    main()
