"""Keras-like progress lines for fit(): 'Epoch 3/10' then '110/110 - 1s - 5ms/step - loss: ...'."""
from __future__ import annotations

import sys
import time


def number(v: float) -> str:
    # Keras shows 4 decimals, or scientific notation for tiny values
    return f"{v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{v:.4e}"


def stats(logs: dict) -> str:
    return " - ".join(f"{k}: {number(v)}" for k, v in logs.items())


class Progress:
    """verbose 0: silent; 1: 'Epoch i/n' and a stats line (live counter on a terminal); 2: one line."""

    def __init__(self, epochs: int, steps: int, verbose: int):
        self.epochs, self.steps, self.verbose = epochs, steps, verbose
        self.live = verbose == 1 and sys.stdout.isatty()
        self.every = max(1, steps // 30)
        self.t0 = time.perf_counter()

    def start(self, epoch: int) -> None:
        self.epoch, self.t0 = epoch, time.perf_counter()
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def step(self, step: int) -> None:
        if self.live and (step + 1) % self.every == 0:
            done = (step + 1) * 20 // self.steps
            sys.stdout.write(f"\r{step + 1}/{self.steps} " + "━" * done + " " * (20 - done))
            sys.stdout.flush()

    def end(self, logs: dict, seconds: float) -> None:
        if not self.verbose:
            return
        line = (f"{self.steps}/{self.steps} - {seconds:.0f}s - {1000 * seconds / self.steps:.0f}ms/step - "
                f"{stats(logs)}")
        if self.verbose == 2:
            line = f"Epoch {self.epoch + 1}/{self.epochs} - {line}"
        print(("\r" if self.live else "") + line, flush=True)
