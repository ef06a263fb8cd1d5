"""Training speed on one process and on several (torchrun, gloo on CPUs), and on a GPU when there is one:
the default classification run (vgg7 on mnist-5k) for a fixed number of epochs in each setting, one after
the other in the same call so that the ratios compare like with like.

    python benchmarks/distributed.py [--epochs 4] [--setups cpu-1x2 cpu-2x1] [--out results.json]

Setups: cpu-PxT is P processes of T threads each on the CPU (CUDA hidden); gpu-1 is one GPU in one process;
gpu-ddp-1 is one GPU under torchrun (DDP over nccl with one rank: the launcher's and DDP's overhead).
Prints a markdown table; the figures go to docs/benchmarks.md."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(setup: str, epochs: int, data: str, model: str, root: Path, extra: list[str], name: str) -> dict:
    env = dict(os.environ)
    args = [sys.executable, "-m", "deepix", "train", "--data", data, "--model", model, "--epochs", str(epochs),
            "--quiet", "--project", str(root), "--name", name, *extra]
    if setup.startswith("cpu-"):
        procs, threads = (int(v) for v in setup[4:].split("x"))
        env["CUDA_VISIBLE_DEVICES"] = ""
        args += ["--threads", str(threads)] + (["--nproc", str(procs)] if procs > 1 else [])
    elif setup == "gpu-ddp-1":
        args += ["--nproc", "1"]
    t0 = time.perf_counter()
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        return {"setup": setup, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    s = json.loads((root / "classify" / name / "summary.json").read_text())
    return {"setup": setup, "device": s["train"]["device"], "processes": s["train"].get("processes", 1),
            "threads": s["train"]["threads"], "precision": s["train"]["precision"],
            "train_seconds": s["train"]["seconds"], "images_per_s": s["train"]["images_per_s"],
            "test_accuracy": s["test"]["accuracy"], "wall_seconds": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--model", default="vgg7")
    p.add_argument("--setups", nargs="+", default=["cpu-1x2", "cpu-2x1"])
    p.add_argument("--out")
    p.add_argument("--imgsz", type=int, default=0, help="resize the images (more work per step)")
    a = p.parse_args()
    extra = ["--imgsz", str(a.imgsz)] if a.imgsz else []
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(s, a.epochs, a.data, a.model, Path(tmp), extra, f"{i}-{s}") for i, s in enumerate(a.setups)]
    base = next((r for r in results if "error" not in r), None)
    size = f" at {a.imgsz}x{a.imgsz}" if a.imgsz else ""
    print(f"\n{a.model} on {a.data}{size}, {a.epochs} epochs, default settings\n")
    print("| setup | device | processes x threads | precision | training s | images/s | vs first | test acc | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['setup']} | failed: {r['error']} |||||||")
            continue
        print(f"| {r['setup']} | {r['device']} | {r['processes']} x {r['threads']} | {r['precision']} | "
              f"{r['train_seconds']:.1f} | {r['images_per_s']:,.0f} | {r['images_per_s'] / base['images_per_s']:.2f}x | "
              f"{r['test_accuracy']:.4f} | {r['wall_seconds']:.1f} |")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
