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


class Timer:
    """Single-image latency (p50, p95 ms) and images/s at `batch` of `run_batch(n)`, measured in slices: `timed`
    gives every row's timer a slice in turn, round after round, so that a machine that slows down for a while
    slows every row alike instead of the one measured then."""

    def __init__(self, run_batch, batch: int):
        self.run_batch, self.batch = run_batch, batch
        self.latencies, self.images, self.seconds = [], 0, 0.0
        for _ in range(5):
            run_batch(1)
        run_batch(batch)

    def slice(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end or n < 4:
            t = time.perf_counter()
            self.run_batch(1)
            self.latencies.append((time.perf_counter() - t) * 1000)
            n += 1
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds or n < 1:
            self.run_batch(self.batch)
            n += 1
        self.images += n * self.batch
        self.seconds += time.perf_counter() - t0

    def result(self) -> dict:
        return {"p50_ms": float(np.percentile(self.latencies, 50)), "p95_ms": float(np.percentile(self.latencies, 95)),
                "images_per_s": self.images / self.seconds}


def timed(rows: list[dict], seconds: float = 2.0, rounds: int = 5) -> list[dict]:
    """Fills in each row's timings from its "timer" (which goes): `seconds` of single images and `seconds` of
    batches per row in all, in `rounds` turns."""
    for _ in range(rounds):
        for r in rows:
            r["timer"].slice(seconds / rounds)
    for r in rows:
        r.update(r.pop("timer").result())
    return rows


def onnx_timer(path: Path, name: str, x: np.ndarray, threads: int) -> Timer:
    """A Timer of an exported file in onnxruntime at `threads` threads; x holds one batch."""
    import onnxruntime as ort  # onnxruntime: only exported files need it
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return Timer(lambda n: s.run(None, {name: x[:n]}), len(x))


def torch_timer(module, x: torch.Tensor, bf16: bool = True) -> Timer:
    """A Timer of a network in torch as deepix runs it on a CPU: channels-last, in bf16 autocast or fp32."""
    module = module.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)

    def go(n):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            module(x[:n])
    return Timer(go, len(x))


def rows_of(run: Path, label: str, threads: int, tmp: Path) -> tuple[list[dict], float]:
    """The run's rows, each with a "timer" for `timed`, and what its task lets int8 lose of its figure (0 where
    int8 does not apply)."""
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
             "timer": torch_timer(ex.module, x, bf16)}]
    if task.no_int8:  # the float file only; the figure is the run's own
        f = export(run, out=tmp / f"{label}float.onnx")
        return rows + [{"row": f"{label}fp32 (onnxruntime)", "run": str(run), "params": params,
                        "bytes": Path(f["file"]).stat().st_size, "figure": own,
                        "timer": onnx_timer(Path(f["file"]), name, x.numpy(), threads)}], 0.0
    q = export(run, out=tmp / f"{label}int8.onnx", int8=True)
    f = export(run, out=tmp / f"{label}float.onnx")
    par = q["parity"]
    return rows + [
        {"row": f"{label}fp32 (onnxruntime)", "run": str(run), "params": params, "bytes": q["float_bytes"],
         "figure": par["float"].get(key, par["float"][par["metric"]]),
         "timer": onnx_timer(Path(f["file"]), name, x.numpy(), threads)},
        {"row": f"{label}int8 (onnxruntime)", "run": str(run), "params": params, "bytes": q["bytes"],
         "figure": par["int8"].get(key, par["int8"][par["metric"]]),
         "timer": onnx_timer(Path(q["file"]), name, x.numpy(), threads)}], float(par["allowed"])


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
        rows, allowed = rows_of(run, "", threads, Path(tmp))
        if (pruned / "summary.json").is_file():
            rows += rows_of(pruned, "pruned: ", threads, Path(tmp))[0]
        timed(rows, seconds)  # every row in turn, round after round
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
