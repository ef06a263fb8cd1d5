"""`deepix advise RUN --deploy`: the run's network in each form it can ship in (fp32 and int8 ONNX files run by
onnxruntime, bf16 in torch as deepix runs it; the same for RUN-pruned when `deepix prune` made one), each
measured here: size, single-image latency, batch throughput and the task's test figure; and the one row to
ship for the latency the user names. The torch row runs in bf16 where this CPU computes it natively, else fp32."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .config import make_config
from .engine import machine
from .errors import UserError
from .export import export
from .models import count_params
from .runs import find_run
from .tasks import get


def timings(run_batch, seconds: float = 2.0, batch: int = 64) -> dict:
    """Single-image latency (p50, p95 ms) and images/s at `batch` of `run_batch(n)`, each timed for `seconds`."""
    for _ in range(5):
        run_batch(1)
    lat, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(lat) < 20:
        t = time.perf_counter()
        run_batch(1)
        lat.append((time.perf_counter() - t) * 1000)
    run_batch(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2 * batch:
        run_batch(batch)
        n += batch
    return {"p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "images_per_s": n / (time.perf_counter() - t0)}


def onnx_speed(path: Path, name: str, x: np.ndarray, threads: int, seconds: float = 2.0) -> dict:
    """timings() of an exported file in onnxruntime at `threads` threads; x holds one batch."""
    import onnxruntime as ort  # onnxruntime: only exported files need it
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return timings(lambda n: s.run(None, {name: x[:n]}), seconds, len(x))


def torch_speed(module, x: torch.Tensor, seconds: float = 2.0, bf16: bool = True) -> dict:
    """timings() of a network in torch as deepix runs it on a CPU: channels-last, in bf16 autocast or fp32."""
    module = module.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

    def go(n):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            module(x[:n])
    return timings(go, seconds, len(x))


def rows_of(run: Path, label: str, threads: int, tmp: Path, seconds: float) -> tuple[list[dict], float]:
    """The run's rows, and what its task lets int8 lose of its figure (0 where int8 does not apply)."""
    cfg = make_config(run / "config.yaml")
    task = get(cfg.task)
    ex = task.exportable(run, "best", None)
    name, example = ex.input_names[0], ex.inputs[0]
    x = example[:1].expand(16 if example.dim() == 4 and example.shape[-1] > 64 else 64, *example.shape[1:]).contiguous()
    params = count_params(ex.module)
    summary = json.loads((run / "summary.json").read_text())
    metric, own = task.main_figure(summary.get("test") or {})
    key = metric.removeprefix("test_")
    bf16 = machine.use_bf16(cfg.precision, torch.device("cpu"))  # what deepix runs here: bf16 only where native
    rows = [{"row": f"{label}{'bf16' if bf16 else 'fp32'} (torch)", "run": str(run), "params": params,
             "bytes": (run / "weights" / "best.safetensors").stat().st_size, "figure": own,
             **torch_speed(ex.module, x, seconds, bf16)}]
    if task.no_int8:  # the float file only; the figure is the run's own
        f = export(run, out=tmp / f"{label}float.onnx")
        return rows + [{"row": f"{label}fp32 (onnxruntime)", "run": str(run), "params": params,
                        "bytes": Path(f["file"]).stat().st_size, "figure": own,
                        **onnx_speed(Path(f["file"]), name, x.numpy(), threads, seconds)}], 0.0
    q = export(run, out=tmp / f"{label}int8.onnx", int8=True)
    f = export(run, out=tmp / f"{label}float.onnx")
    par = q["parity"]
    return rows + [
        {"row": f"{label}fp32 (onnxruntime)", "run": str(run), "params": params, "bytes": q["float_bytes"],
         "figure": par["float"].get(key, par["float"][par["metric"]]), **onnx_speed(Path(f["file"]), name, x.numpy(), threads, seconds)},
        {"row": f"{label}int8 (onnxruntime)", "run": str(run), "params": params, "bytes": q["bytes"],
         "figure": par["int8"].get(key, par["int8"][par["metric"]]), **onnx_speed(Path(q["file"]), name, x.numpy(), threads, seconds)}], float(par["allowed"])


def deploy(run, latency_ms: float | None = None, threads: int = 1, seconds: float = 2.0) -> dict:
    """The table for RUN (and RUN-pruned if it exists), and the row to ship: the best figure among the rows whose
    p95 latency is within `latency_ms`; without a latency, the fastest row within the task's int8 allowance of the
    best figure. Writes RUN/deploy.json."""
    if latency_ms is not None and not latency_ms > 0:
        raise UserError(f"--latency-ms must be above 0 (got {latency_ms})")
    run = find_run(run)
    if not (run / "summary.json").is_file():
        raise UserError(f"{run} has no summary.json: is it a finished run?")
    torch.set_num_threads(threads)
    task = get(make_config(run / "config.yaml").task)
    metric = task.main_figure(json.loads((run / "summary.json").read_text()).get("test") or {})[0]
    higher = task.higher_is_better(metric.replace("test_", "val_"))
    pruned = run.parent / f"{run.name}-pruned"
    with tempfile.TemporaryDirectory() as tmp:
        rows, allowed = rows_of(run, "", threads, Path(tmp), seconds)
        if (pruned / "summary.json").is_file():
            rows += rows_of(pruned, "pruned: ", threads, Path(tmp), seconds)[0]
    pick, why = choose(rows, metric, higher, latency_ms, allowed)
    out = {"run": str(run), "threads": threads, "metric": metric, "rows": rows,
           "pick": pick, "why": why,
           "missing": None if pruned.exists() else f"deepix prune {run} --ratio 0.5 adds the pruned rows"}
    (run / "deploy.json").write_text(json.dumps(out, indent=1))
    return out


def choose(rows: list[dict], metric: str, higher: bool, latency_ms: float | None, allowed: float) -> tuple:
    """(the row to ship or None, why): the best figure within the latency (p95), the faster on a tie; without
    one, the fastest row (p50) within `allowed` of the best figure."""
    scored = [r for r in rows if r["figure"] is not None]
    sign = 1 if higher else -1
    if latency_ms is not None:
        fits = [r for r in scored if r["p95_ms"] <= latency_ms]
        if not fits:
            return None, (f"no row is within {latency_ms:g} ms at p95; the fastest is "
                          f"{min(rows, key=lambda r: r['p95_ms'])['row']}")
        return max(fits, key=lambda r: (sign * r["figure"], -r["p95_ms"]))["row"], \
            f"the best {metric} among the rows within {latency_ms:g} ms at p95"
    best = max(sign * r["figure"] for r in scored)
    near = min((r for r in scored if best - sign * r["figure"] <= allowed), key=lambda r: r["p50_ms"])
    return near["row"], f"the fastest row within {allowed:g} of the best {metric}"
