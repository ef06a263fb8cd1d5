"""Where a detector's single image goes in onnxruntime: fcos-n trained for --epochs on the built-in shapes, pruned
50% (`deepix prune`, --prune-epochs of fine-tuning), each exported as fp32 and int8 ONNX; every file timed in turn
(deepix.deploy.timed, at --threads) and its kernel time split by operator (onnxruntime's profiler). --relu also
writes every file with the SiLU swapped for a ReLU (timing only: the weights were not trained for it).

    .venv/bin/python benchmarks/detect_single_image.py --runs 3 --relu
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import deepix
from deepix.deploy import onnx_timer, timed
from deepix.export import export


def files(root: Path, a) -> list[Path]:
    run = deepix.train("detect", epochs=a.epochs, threads=a.threads_train, quiet=True, project=str(root), name="o")["run"]
    deepix.prune(run, 0.5, epochs=a.prune_epochs, threads=a.threads_train)
    out = []
    for tag, r in (("", run), ("pruned ", Path(f"{run}-pruned"))):
        for int8 in (False, True):
            out.append(root / f"{tag}{'int8' if int8 else 'fp32'}.onnx")
            export(r, out=out[-1], int8=int8)
    if a.relu:  # the same weights with ReLUs: fcos's SiLUs are nn.SiLU modules and F.silu calls
        import deepix.models.fcos as fcos
        silu, module = fcos.F.silu, torch.nn.SiLU.forward
        fcos.F.silu = lambda x, inplace=False: F.relu(x)
        torch.nn.SiLU.forward = lambda self, x: F.relu(x)
        try:
            for tag, r in (("", run), ("pruned ", Path(f"{run}-pruned"))):
                for int8 in (False, True):
                    out.append(root / f"{tag}{'int8' if int8 else 'fp32'} relu.onnx")
                    export(r, out=out[-1], int8=int8)
        finally:
            fcos.F.silu, torch.nn.SiLU.forward = silu, module
    return out


def kernels(path: Path, x: np.ndarray, threads: int, n: int = 400) -> str:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.enable_profiling = threads, 1, True
    so.profile_file_prefix = str(path.with_suffix(""))
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(n):
        s.run(None, {"images": x[:1]})
    by = collections.Counter()
    for e in json.loads(Path(s.end_profiling()).read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
    total = sum(by.values())
    return ", ".join(f"{op} {100 * t / total:.0f}%" for op, t in by.most_common(4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--prune-epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timing runs, every file in turn in each")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    p.add_argument("--threads-train", type=int, default=2)
    p.add_argument("--relu", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = files(Path(tmp), a)
        x = torch.rand(16, 3, 128, 128).numpy()
        runs = []
        for _ in range(a.runs):
            rows = timed([{"timer": onnx_timer(f, "images", x, a.threads)} for f in paths], seconds=4.0, rounds=8)
            runs.append(rows)
        print("| file | single-image p50 per run (ms) | against fp32 | batch-16 images/s | kernel time |")
        print("|---|---|---|---|---|")
        for i, f in enumerate(paths):
            p50 = " / ".join(f"{r[i]['p50_ms']:.2f}" for r in runs)
            ratio = " / ".join(f"{r[0]['p50_ms'] / r[i]['p50_ms']:.2f}x" for r in runs)
            ips = " / ".join(f"{r[i]['images_per_s']:,.0f}" for r in runs)
            print(f"| {f.stem} | {p50} | {ratio} | {ips} | {kernels(f, x, a.threads)} |")


if __name__ == "__main__":
    main()
