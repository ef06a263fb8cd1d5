"""Smaller and faster models, each measured against the model it came from, every row in one run at the same
threads: torch as deepix runs it (bf16 where the CPU computes it natively, else fp32), fp32 and int8
(onnxruntime, `deepix export --int8`), a distilled student at a fraction of the width (`--teacher`, where the
task takes one), pruned 50% of its channels (`deepix prune`), and pruned + int8. The rows are those of
`deepix advise RUN --deploy` (deepix.deploy.rows_of).

    .venv/bin/python benchmarks/compress.py --setups classify:seed-cnn classify:vgg7 --threads 1
    .venv/bin/python benchmarks/compress.py --setups detect restore segment --threads 1 --train-threads 2 \
        --prune-epochs 2

Per row: parameters, file bytes, single-image latency (p50 / p95 ms), throughput at batch 64 (16 for inputs
over 64 px) and the task's test figure on the run's whole test split. Training may use other threads than the
measurement (--train-threads); every row is measured at --threads. Prints Markdown for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import deepix
from deepix.deploy import rows_of, timed
from deepix.engine.machine import cpu_bf16_why
from deepix.tasks import get

# what each setup trains: a task's default model on its default data, for epochs that fit a benchmark's budget
SETUPS = {
    "classify:seed-cnn": dict(task="classify", model="seed-cnn", data="mnist-5k", epochs=10),
    "classify:vgg7": dict(task="classify", model="vgg7", data="mnist-5k", epochs=10),
    "detect": dict(task="detect", epochs=4),      # fcos-n on shapes (2,000 train / 500 test at 128x128)
    "segment": dict(task="segment", epochs=3),    # unet-seg on shapes
    "restore": dict(task="restore", epochs=10),   # unet-s denoising the built-in photos
}


def summary(run) -> dict:
    return json.loads((Path(run) / "summary.json").read_text())


def measure(name: str, a, out: Path) -> tuple[list[dict], str]:
    setup = dict(SETUPS[name])
    task = setup.pop("task")
    common = dict(threads=a.train_threads, quiet=True, project=str(out), **setup)
    print(f"{name}: training the original ({setup['epochs']} epochs)", flush=True)
    original = deepix.train(task, name=name.replace(":", "-"), **common)["run"]
    measure_at = dict(threads=a.threads, tmp=out)
    rows, _ = rows_of(original, "", **measure_at)
    metric = get(task).main_figure(summary(original)["test"])[0]
    if "teacher" in get(task).uses:
        print(f"{name}: distilling a student at width {a.student_width}", flush=True)
        student = deepix.train(task, width=a.student_width, teacher=str(original), name=f"{name}-student".replace(":", "-"),
                               **common)["run"]
        s = summary(student)
        row = next(r for r in rows_of(student, "student: ", **measure_at)[0] if r["row"].endswith("fp32 (onnxruntime)"))
        base = s.get("baseline") or {}
        row["alone"] = base.get(metric.removeprefix("test_"))
        row["row"] = f"distilled student (width {a.student_width}, fp32 onnxruntime)"
        rows.append(row)
    print(f"{name}: pruning 50% and fine-tuning {a.prune_epochs} epochs", flush=True)
    pruned = deepix.prune(original, 0.5, epochs=a.prune_epochs, threads=a.train_threads, quiet=True)["run"]
    rows += [{**r, "row": r["row"].replace("pruned: ", "pruned 50%: ")}
             for r in rows_of(pruned, "pruned: ", **measure_at)[0]]
    torch.set_num_threads(a.threads)
    return timed(rows, a.seconds), metric  # every row in turn, round after round


def markdown(name: str, rows: list[dict], metric: str) -> str:
    by = {r["row"]: r for r in rows}
    base, eager = by["fp32 (onnxruntime)"], next(r for r in rows if r["row"].endswith("(torch)"))
    points = 1 if metric.endswith("psnr") else 100  # PSNR in dB, the others in points
    unit = " dB" if points == 1 else " points"
    out = [f"**{name}** ({base['params']:,} parameters)", "",
           f"| row | parameters | file | latency p50 / p95 (ms) | images/s at batch | {metric} |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        alone = f" (alone: {r['alone']:.4f})" if r.get("alone") is not None else ""
        out.append(f"| {r['row']} | {r['params']:,} | {r['bytes'] / 1e3:,.0f} kB | {r['p50_ms']:.3f} / {r['p95_ms']:.3f} | "
                   f"{r['images_per_s']:,.0f} | {r['figure']:.4f}{alone} |")

    def gap(r):
        return f"{(r['figure'] - base['figure']) * points:+.2f}{unit}"
    said = []
    if "int8 (onnxruntime)" in by:
        q = by["int8 (onnxruntime)"]
        said.append(f"int8: {q['images_per_s'] / base['images_per_s']:.2f}x the fp32 ONNX throughput, {gap(q)}")
    st = next((r for r in rows if r["row"].startswith("distilled")), None)
    if st:
        said.append(f"student: {st['params'] / base['params']:.1%} of the parameters, {gap(st)}"
                    + (f" ({(st['figure'] - st['alone']) * points:+.2f}{unit} over the same student alone)"
                       if st.get("alone") is not None else ""))
    pq = by.get("pruned 50%: int8 (onnxruntime)")
    if pq:
        said.append(f"pruned + int8: {base['p50_ms'] / pq['p50_ms']:.2f}x faster single-image latency than fp32 ONNX "
                    f"({eager['p50_ms'] / pq['p50_ms']:.2f}x against torch {eager['row'].split()[0]}), {gap(pq)}")
    return "\n".join(out + ["", "; ".join(said) + ".", ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    p.add_argument("--prune-epochs", type=int, default=5)
    p.add_argument("--student-width", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1, help="threads every row is measured at")
    p.add_argument("--train-threads", type=int, default=None, help="threads for training (default: --threads)")
    p.add_argument("--seconds", type=float, default=2.0, help="time per latency and throughput measurement")
    a = p.parse_args()
    a.train_threads = a.train_threads or a.threads
    print(f"CPU: {cpu_bf16_why()}; measured at {a.threads} thread(s), trained at {a.train_threads}; "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.setups:
            rows, metric = measure(name, a, Path(tmp))
            print(markdown(name, rows, metric), flush=True)


if __name__ == "__main__":
    main()
