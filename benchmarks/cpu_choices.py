"""The CPU settings behind deepix's defaults, measured on this machine: training images/s of one model at one
batch size in fp32 and bf16, with and without channels-last, eager against torch.compile, and where a bf16
channels-last step spends its time (PyTorch's profiler).

    .venv/bin/python benchmarks/cpu_choices.py --model seed-cnn --batch 128 --threads 2

Prints Markdown for docs/benchmarks.md ("Defaults chosen from these measurements").
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from deepix.engine.machine import cpu_bf16_why
from deepix.models import Spec, build_model


def step_fn(model, opt, bf16: bool, channels_last: bool):
    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def rate(name: str, batch: int, bf16: bool, channels_last: bool, compiled: bool, seconds: float) -> tuple[float, float]:
    """(training images/s, seconds spent before the first timed step) for one setting, fresh weights each time."""
    torch.manual_seed(0)
    model = build_model(name, Spec(1, 10, (28, 28)))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    step = step_fn(model, opt, bf16, channels_last)
    t0 = time.perf_counter()
    if compiled:
        step = torch.compile(step)
    for _ in range(3):  # warm-up (and compilation)
        step(x, y)
    warm = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(x, y)
        n += 1
    return n * batch / (time.perf_counter() - t0), warm


def profile(name: str, batch: int, top: int = 8) -> str:
    torch.manual_seed(0)
    model = build_model(name, Spec(1, 10, (28, 28))).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    step = step_fn(model, opt, True, True)
    for _ in range(3):
        step(x, y)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            step(x, y)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="seed-cnn")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per setting")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (tens of seconds to compile)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    native, why = cpu_bf16_why()
    print(f"{a.model}, batch {a.batch}, {a.threads} threads; {why}\n")
    print("| precision | channels-last | mode | training images/s | warm-up s |")
    print("|---|---|---|---|---|")
    settings = [(False, False, False), (False, True, False), (True, False, False), (True, True, False)]
    if a.compile:
        settings.append((True, True, True))
    for bf16, cl, comp in settings:
        r, warm = rate(a.model, a.batch, bf16, cl, comp, a.seconds)
        print(f"| {'bf16' if bf16 else 'fp32'} | {'on' if cl else 'off'} | {'torch.compile' if comp else 'eager'} "
              f"| {r:,.0f} | {warm:.1f} |", flush=True)
    print("\nwhere a bf16, channels-last step spends its time (self CPU time):\n")
    print("```\n" + profile(a.model, a.batch) + "```")


if __name__ == "__main__":
    main()
