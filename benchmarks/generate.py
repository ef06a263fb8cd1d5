"""Generation on mnist-5k: the default conditional GAN, the unconditional DCGAN and the small diffusion
model, each trained in the same wall-clock budget, judged by the same classifier's features.

    python benchmarks/generate.py --minutes 10 --threads 2 [--models cgan dcgan ddpm] [--inception 1000]

Prints a markdown table (FID, KID, precision, recall, smallest class share, asked-class accuracy, the
real-vs-real floor, epochs, wall time); the figures go to docs/benchmarks.md."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"cgan": [], "dcgan": [], "ddpm": ["--lr", "0.001", "--batch", "128"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per model (the judge and tests come on top)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--inception", type=int, default=0, help="also Inception FID on this many samples")
    p.add_argument("--out", default="")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="deepix-generate-bench-"))
    rows = []
    for model in a.models:
        cmd = [sys.executable, "-m", "deepix", "train", "generate", "--model", model, "--epochs", "1000",
               "--time-limit", str(a.minutes), "--threads", str(a.threads), "--project", str(out), "--name", model,
               "--quiet", "--inception", str(a.inception), *SETTINGS[model]]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        s = json.loads((out / "generate" / model / "summary.json").read_text())
        t, tr = s["test"], s["train"]
        rows.append([model, f"{t['fid']:.2f}", f"{t['fid_floor']:.2f}", f"{t['kid']:.4f}", f"{t['precision']:.3f}",
                     f"{t['recall']:.3f}", f"{t['coverage_min']:.1%}",
                     "-" if t["class_accuracy"] is None else f"{t['class_accuracy']:.1%}",
                     "-" if t["inception_fid"] is None else f"{t['inception_fid']:.1f} ({t['inception_samples']})",
                     f"{t['samples']:,}", str(tr["epochs_run"]), f"{tr['seconds'] / 60:.1f}", f"{wall / 60:.1f}"])
    head = ["model", "FID (judge)", "floor", "KID", "precision", "recall", "smallest class", "asked class",
            "Inception FID (n)", "samples", "epochs", "train min", "wall min"]
    print(f"\nmnist-5k, {a.threads} threads, {a.minutes:g} min of training each; runs in {out}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
