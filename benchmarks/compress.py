"""Smaller and faster classifiers, each measured against the model it came from, every row in one run at the
same threads: fp32 (onnxruntime), bf16 (torch, as deepix runs it), int8 (onnxruntime, `deepix export --int8`),
a distilled student about a tenth of the teacher's parameters (`--teacher`), pruned 50% of its channels
(`deepix prune`), and pruned + int8.

    .venv/bin/python benchmarks/compress.py --models seed-cnn vgg7 --epochs 10 --threads 1

Per row: parameters, file bytes, single-image latency (p50 / p95 ms), throughput at batch 64 (images/s) and
test accuracy on the run's whole test split (mnist-5k: 1,000 images). Prints Markdown for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

import deepix
from deepix.deploy import onnx_speed, torch_speed
from deepix.engine.machine import cpu_bf16_why
from deepix.export import export
from deepix.models import count_params


def onnx_row(path: Path, threads: int, shape) -> dict:
    x = np.random.default_rng(0).random((64, *shape), dtype=np.float32)
    return {"bytes": path.stat().st_size, **onnx_speed(path, "images", x, threads)}


def torch_row(run: Path, shape) -> dict:
    return {"bytes": (run / "weights" / "best.safetensors").stat().st_size,
            **torch_speed(deepix.load(run).model, torch.rand(64, *shape))}


def summary(run) -> dict:
    return json.loads((Path(run) / "summary.json").read_text())


def measure(name: str, a, out: Path) -> list[dict]:
    common = dict(data=a.data, threads=a.threads, quiet=True, project=str(out))
    shape = (1, 28, 28)
    print(f"{name}: training the original ({a.epochs} epochs)", flush=True)
    teacher = deepix.train(model=name, epochs=a.epochs, name=name, **common)["run"]
    params = count_params(deepix.load(teacher).model)
    q = export(teacher, int8=True, calibrate=256)
    f = Path(q["file"]).with_name("best.onnx")
    export(teacher, out=f)
    rows = [{"row": "fp32 (onnxruntime)", "params": params, "accuracy": q["parity"]["float"]["accuracy"],
             **onnx_row(f, a.threads, shape)},
            {"row": "bf16 (torch, channels-last)", "params": params, "accuracy": summary(teacher)["test"]["accuracy"],
             **torch_row(teacher, shape)},
            {"row": "int8 (onnxruntime)", "params": params, "accuracy": q["parity"]["int8"]["accuracy"],
             **onnx_row(Path(q["file"]), a.threads, shape)}]
    print(f"{name}: distilling a student at width {a.student_width}", flush=True)
    student = deepix.train(model=name, width=a.student_width, epochs=a.epochs, teacher=str(teacher),
                           name=f"{name}-student", **common)["run"]
    sf = export(student)["file"]
    s = summary(student)
    rows.append({"row": f"distilled student (width {a.student_width}, fp32 onnxruntime)",
                 "params": s["model"]["params"], "accuracy": s["test"]["accuracy"],
                 "alone": s["baseline"]["accuracy"], **onnx_row(Path(sf), a.threads, shape)})
    print(f"{name}: pruning 50% and fine-tuning {a.prune_epochs} epochs", flush=True)
    pruned = deepix.prune(teacher, 0.5, epochs=a.prune_epochs, threads=a.threads, quiet=True)["run"]
    pq = export(pruned, int8=True, calibrate=256)
    pf = Path(pq["file"]).with_name("best.onnx")
    export(pruned, out=pf)
    pp = summary(pruned)["pruned"]["params_after"]
    rows += [{"row": "pruned 50% (fp32 onnxruntime)", "params": pp, "accuracy": pq["parity"]["float"]["accuracy"],
              **onnx_row(pf, a.threads, shape)},
             {"row": "pruned 50% + int8 (onnxruntime)", "params": pp, "accuracy": pq["parity"]["int8"]["accuracy"],
              **onnx_row(Path(pq["file"]), a.threads, shape)}]
    return rows


def markdown(name: str, rows: list[dict]) -> str:
    base = rows[0]
    out = [f"**{name}**", "", "| row | parameters | file | latency p50 / p95 (ms) | batch-64 images/s | test accuracy |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        alone = f" (alone: {r['alone']:.4f})" if "alone" in r else ""
        out.append(f"| {r['row']} | {r['params']:,} | {r['bytes'] / 1e3:,.0f} kB | {r['p50_ms']:.3f} / {r['p95_ms']:.3f} | "
                   f"{r['images_per_s']:,.0f} | {r['accuracy']:.4f}{alone} |")
    by = {r["row"].split(" (")[0]: r for r in rows}
    q, st, pq = by["int8"], by["distilled student"], by["pruned 50% + int8"]
    out += ["", f"int8: {q['images_per_s'] / base['images_per_s']:.2f}x the fp32 ONNX throughput, "
                f"{(q['accuracy'] - base['accuracy']) * 100:+.1f} points; student: "
                f"{st['params'] / base['params']:.1%} of the parameters, {(st['accuracy'] - base['accuracy']) * 100:+.1f} "
                f"points ({(st['accuracy'] - st['alone']) * 100:+.1f} over the same student alone); pruned + int8: "
                f"{base['p50_ms'] / pq['p50_ms']:.2f}x faster single-image latency than fp32 ONNX "
                f"({by['bf16']['p50_ms'] / pq['p50_ms']:.2f}x against torch bf16), "
                f"{(pq['accuracy'] - base['accuracy']) * 100:+.1f} points.", ""]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["seed-cnn", "vgg7"])
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--prune-epochs", type=int, default=5)
    p.add_argument("--student-width", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"CPU: {cpu_bf16_why()}; {a.threads} thread(s); torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            print(markdown(name, measure(name, a, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
