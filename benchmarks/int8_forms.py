"""Which of onnxruntime's int8 forms `deepix export --int8` should write: the QDQ form (deepix's) against the
integer-operator form (QOperator), on a classify run, each timed at 1 thread at batch 64 beside the fp32 file,
with its test accuracy and where its time goes (onnxruntime's profiler, share of kernel time by operator).

    .venv/bin/python benchmarks/int8_forms.py --model vgg7 --epochs 1
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import onnxruntime.quantization as oq

import deepix
from deepix.deploy import onnx_speed
from deepix.engine.machine import cpu_bf16_why
from deepix.export import export


def where_time_goes(path: Path, x: np.ndarray) -> str:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.enable_profiling = 1, True
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(30):
        s.run(None, {"images": x})
    by = collections.Counter()
    for e in json.loads(Path(s.end_profiling()).read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
    total = sum(by.values())
    return ", ".join(f"{k} {v / total:.0%}" for k, v in by.most_common(4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg7")
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    print(f"CPU: {cpu_bf16_why()[1]}; onnxruntime {ort.__version__}; 1 thread, batch 64")
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    plain = oq.quantize_static
    with tempfile.TemporaryDirectory() as tmp:
        run = deepix.train(data="mnist-5k", model=a.model, epochs=a.epochs, quiet=True, project=tmp)["run"]
        f = Path(export(run, out=Path(tmp) / "float.onnx")["file"])
        print("\n| file | test accuracy | images/s | ratio to fp32 | kernel time |\n|---|---|---|---|---|")
        fp32 = onnx_speed(f, "images", x, 1)["images_per_s"]
        for form in ("QDQ", "QOperator"):
            def quantize(*args, **kw):
                return plain(*args, **{**kw, "quant_format": getattr(oq.QuantFormat, form)})
            oq.quantize_static = quantize  # export imports it from the module when it quantises
            try:
                r = export(run, out=Path(tmp) / f"{form}.onnx", int8=True)
            finally:
                oq.quantize_static = plain
            if form == "QDQ":
                print(f"| fp32 | {r['parity']['float']['accuracy']:.4f} | {fp32:,.0f} | 1.00x | {where_time_goes(f, x)} |")
            q = Path(r["file"])
            speed = onnx_speed(q, "images", x, 1)["images_per_s"]
            print(f"| int8 {form} | {r['parity']['int8']['accuracy']:.4f} | {speed:,.0f} | {speed / fp32:.2f}x | "
                  f"{where_time_goes(q, x)} |")


if __name__ == "__main__":
    main()
