"""Why the test suite's pytest-xdist workers hold torch to one thread: a small convolutional training step at 1
and 2 threads, alone and beside another process busy at 1 thread (as the other worker is).

    .venv/bin/python benchmarks/shared_core.py
"""
import subprocess
import sys
import time

import torch

BUSY = """
import torch, time
torch.set_num_threads(1)
x, conv, end = torch.randn(64, 32, 32, 32), torch.nn.Conv2d(32, 32, 3, padding=1), time.time() + 60
with torch.no_grad():
    while time.time() < end:
        conv(x)
"""


def step_ms(threads: int) -> float:
    torch.set_num_threads(threads)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1))
    x = torch.randn(8, 3, 32, 32)
    for _ in range(20):
        m(x).sum().backward()
    t = time.perf_counter()
    for _ in range(300):
        m(x).sum().backward()
    return (time.perf_counter() - t) / 300 * 1000


print("| threads | alone (ms/step) | beside a busy 1-thread process (ms/step) |\n|---|---|---|")
alone = {n: step_ms(n) for n in (1, 2)}
busy = subprocess.Popen([sys.executable, "-c", BUSY])
time.sleep(3)
try:
    beside = {n: step_ms(n) for n in (1, 2)}
finally:
    busy.kill()
for n in (1, 2):
    print(f"| {n} | {alone[n]:.2f} | {beside[n]:.2f} |")
