"""deepix vs the reference Keras listing on mnist-5k: same split, same threads, one run.

    python benchmarks/classify.py            # sets up benchmarks/.venv-keras on first use
    python benchmarks/classify.py --no-keras # deepix rows only

Each configuration trains in its own process (so peak memory is its own); test accuracy is
scored after every epoch off the clock. Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak import peak_rss_mb

HERE = Path(__file__).resolve().parent
TARGET = 0.98
SPLIT = dict(val_fraction=0.1, test_fraction=0.2, seed=0)
# the listing's own recipe (Adam 1e-3, batch 32, no augmentation, 10 epochs) run by deepix,
# deepix's recipe on the same reference network, and deepix's default (model and recipe)
RUNS = {
    "deepix, listing recipe, fp32": dict(model="seed-cnn", epochs=10, batch=32, optimizer="adam", lr=1e-3,
                                         weight_decay=0.0, schedule="constant", augment="none",
                                         label_smoothing=0.0, precision="fp32", channels_last="off"),
    "deepix, listing recipe, bf16": dict(model="seed-cnn", epochs=10, batch=32, optimizer="adam", lr=1e-3,
                                         weight_decay=0.0, schedule="constant", augment="none",
                                         label_smoothing=0.0, precision="bf16"),
    "deepix recipe, seed-cnn, 8 ep, bf16": dict(model="seed-cnn", epochs=8, precision="bf16"),
    "deepix recipe, seed-cnn, 8 ep, fp32": dict(model="seed-cnn", epochs=8, precision="fp32"),
    "deepix default (vgg7, 20 ep)": dict(),
}


def worker(name: str, settings: dict, threads: int, out: Path) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import deepix
    from deepix.data.builtin import load_builtin
    from deepix.engine.fit import autocast

    ds = load_builtin("mnist-5k", **SPLIT)
    x_test, y_test = ds.test.x.float() / 255, ds.test.y
    accs, evals, epochs = [], [], []

    def score(row, model):
        t0 = time.perf_counter()
        model.eval()
        bf16 = next(model.parameters()).dtype == torch.bfloat16 or settings.get("precision", "auto") != "fp32"
        with torch.no_grad(), autocast(bf16, torch.device("cpu")):
            x = x_test.contiguous(memory_format=torch.channels_last)
            accs.append((model(x).argmax(1) == y_test).float().mean().item())
        epochs.append(row["seconds"])
        evals.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = deepix.train(data="mnist-5k", project=tmp, quiet=True, threads=threads, callbacks=[score],
                         **SPLIT, **settings)
        wall = time.perf_counter() - t0 - sum(evals)
        model = deepix.load(r["run"]).model
    # FLOPs of one training step (forward + backward) per image, counted by PyTorch itself
    model.train()
    x = torch.rand(64, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    flops = counter.get_total_flops() / 64
    elapsed = [sum(epochs[:i + 1]) for i in range(len(epochs))]
    hit = next((t for t, a in zip(elapsed, accs) if a >= TARGET), None)
    train_s = r["train"]["seconds"]
    result = {"name": name, "epochs": len(epochs), "epoch_seconds": sum(epochs) / len(epochs), "fit_seconds": sum(epochs),
              "wall_seconds": wall, "images_per_s": r["train"]["images_per_s"], "seconds_to_target": hit,
              "final_test_accuracy": accs[-1], "best_weights_test_accuracy": r["test"]["accuracy"],
              "test_accuracy_per_epoch": accs, "elapsed_per_epoch": elapsed,
              "gflops": flops * r["train"]["images_per_s"] / 1e9, "mflop_per_image": flops / 1e6,
              "train_seconds": train_s, "precision": r["train"]["precision"],
              "peak_rss_mb": peak_rss_mb()}
    out.write_text(json.dumps(result))


def keras(threads: int, tmp: Path) -> dict:
    import numpy as np

    from deepix.data.builtin import load_builtin
    ds = load_builtin("mnist-5k", **SPLIT)
    npz = tmp / "split.npz"
    np.savez(npz, **{f"{a}_{s}": getattr(getattr(ds, s), a).numpy()[:, 0] if a == "x" else getattr(getattr(ds, s), a).numpy()
                     for s in ("train", "val", "test") for a in ("x", "y")})
    subprocess.run(["bash", str(HERE / "setup_keras_env.sh")], check=True, stdout=subprocess.DEVNULL)
    out = tmp / "keras.json"
    subprocess.run([str(HERE / ".venv-keras" / "bin" / "python"), str(HERE / "keras_reference.py"), "--data", str(npz),
                    "--epochs", "10", "--threads", str(threads), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    k = json.loads(out.read_text())
    return {"name": f"Keras {k['keras_version']} / TF {k['tensorflow_version']}, listing", "epochs": k["epochs"],
            "epoch_seconds": sum(k["epoch_seconds"]) / k["epochs"], "fit_seconds": sum(k["epoch_seconds"]),
            "wall_seconds": k["fit_seconds"], "images_per_s": k["images_per_second"],
            "seconds_to_target": k["seconds_to_target"], "final_test_accuracy": k["final_test_accuracy"],
            "test_accuracy_per_epoch": k["test_accuracy_per_epoch"],
            "elapsed_per_epoch": [sum(k["epoch_seconds"][:i + 1]) for i in range(k["epochs"])],
            "best_weights_test_accuracy": None, "gflops": 15.0e6 * k["images_per_second"] / 1e9, "precision": "fp32",
            "peak_rss_mb": k["peak_rss_mb"]}


def table(rows: list[dict], keras: dict | None) -> str:
    head = ("| run | epochs | s/epoch | train s | vs Keras time | img/s | GFLOP/s | s to 98% | s to Keras's final acc "
            "| final test acc | peak MB |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        ratio = f"{r['fit_seconds'] / keras['fit_seconds']:.2f}x" if keras else "-"
        hit = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "not reached"
        beat = "-"
        if keras:
            beat = next((f"{t:.1f}" for t, a in zip(r["elapsed_per_epoch"], r["test_accuracy_per_epoch"])
                         if a >= keras["final_test_accuracy"]), "not reached")
        lines.append(f"| {r['name']} | {r['epochs']} | {r['epoch_seconds']:.2f} | {r['fit_seconds']:.1f} | {ratio} | "
                     f"{r['images_per_s']:,.0f} | {r['gflops']:.0f} | {hit} | {beat} | {r['final_test_accuracy']:.4f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-keras", action="store_true")
    p.add_argument("--only", help="run only the deepix rows whose name contains this")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker, RUNS[a.worker], a.threads, Path(a.out))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not a.no_keras:
            rows.append(keras(a.threads, tmp))
            print(f"done: {rows[-1]['name']}", file=sys.stderr)
        for name in RUNS:
            if a.only and a.only not in name:
                continue
            out = tmp / "w.json"
            subprocess.run([sys.executable, __file__, "--worker", name, "--threads", str(a.threads), "--out", str(out)],
                           check=True)
            rows.append(json.loads(out.read_text()))
            print(f"done: {name}", file=sys.stderr)
    print(table(rows, rows[0] if not a.no_keras else None))
    print(json.dumps(rows, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
