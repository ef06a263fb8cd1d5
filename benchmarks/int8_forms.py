"""Which int8 file `deepix export --int8` should write, on a classify run: onnxruntime's QDQ form (deepix's)
against its integer-operator form (QOperator), each with the layers in the order deepix trains them (max-pool,
then ReLU) and in the order deepix writes them (ReLU, then max-pool: the same function). Each file's test
accuracy, its images/s at 1 thread and batch 64 (median of 7 rounds, all files timed in turn within each round,
so a noisy machine slows them alike), and where its time goes (onnxruntime's profiler, share of kernel time).

    .venv/bin/python benchmarks/int8_forms.py --model vgg7 --epochs 1
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import onnxruntime.quantization as oq

import deepix
import deepix.export as ex
from deepix.engine.machine import cpu_bf16_why


def session(path: Path, profile: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.enable_profiling = 1, 1, profile
    so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "deepix-int8-profile")  # not in the working folder
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def where_time_goes(path: Path, x: np.ndarray) -> str:
    s = session(path, profile=True)
    for _ in range(30):
        s.run(None, {"images": x})
    by = collections.Counter()
    for e in json.loads(Path(s.end_profiling()).read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
    total = sum(by.values())
    return ", ".join(f"{k} {v / total:.0%}" for k, v in by.most_common(4))


def speeds(paths: dict[str, Path], x: np.ndarray, rounds: int = 7, runs: int = 20) -> dict[str, float]:
    sessions = {k: session(p) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, {"images": x})
    got = {k: [] for k in paths}
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            for _ in range(runs):
                s.run(None, {"images": x})
            got[k].append(runs * len(x) / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in got.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg7")
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    print(f"CPU: {cpu_bf16_why()[1]}; onnxruntime {ort.__version__}; 1 thread, batch 64")
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    plain_quantize, plain_swap = oq.quantize_static, ex._relu_before_pool
    files, accuracy = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        run = deepix.train(data="mnist-5k", model=a.model, epochs=a.epochs, quiet=True, project=tmp)["run"]
        for order in ("pool, ReLU (as trained)", "ReLU, pool (as written)"):
            tag = "written" if order.startswith("ReLU") else "trained"
            ex._relu_before_pool = plain_swap if tag == "written" else (lambda graph: 0)
            try:
                files[("fp32", order)] = Path(ex.export(run, out=Path(tmp) / f"fp32-{tag}.onnx")["file"])
                for form in ("QDQ", "QOperator"):
                    def quantize(*args, form=form, **kw):
                        return plain_quantize(*args, **{**kw, "quant_format": getattr(oq.QuantFormat, form)})
                    oq.quantize_static = quantize  # export imports it from the module when it quantises
                    r = ex.export(run, out=Path(tmp) / f"{form}-{tag}.onnx", int8=True)
                    files[(f"int8 {form}", order)] = Path(r["file"])
                    accuracy[(f"int8 {form}", order)] = r["parity"]["int8"]["accuracy"]
                    accuracy[("fp32", order)] = r["parity"]["float"]["accuracy"]
            finally:
                oq.quantize_static, ex._relu_before_pool = plain_quantize, plain_swap
        got = speeds(files, x)
        print("\n| file | layer order | test accuracy | images/s | ratio to fp32 (same order) | kernel time |\n"
              "|---|---|---|---|---|---|")
        for (form, order), path in files.items():
            print(f"| {form} | {order} | {accuracy[(form, order)]:.4f} | {got[(form, order)]:,.0f} | "
                  f"{got[(form, order)] / got[('fp32', order)]:.2f}x | {where_time_goes(path, x)} |")


if __name__ == "__main__":
    main()
