"""Runs killed with SIGKILL, for the tests and for benchmarks/kill_resume.py: `deepix train` in a fresh process
that kills itself at a chosen training step, or in the middle of a chosen epoch's checkpoint (its weights
written, its training state not yet), and a check that the resumed run ends where an unkilled one does."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ENV = {**os.environ, "DEEPIX_DATA": "/nonexistent-deepix-data"}

_DRIVER = """
import atexit, os, signal, sys
import torch
from deepix.engine import fit
from deepix.cli import main

AT_STEP, IN_CHECKPOINT, COUNT_TO = {at_step!r}, {in_checkpoint!r}, {count_to!r}
steps, checkpoints = [0], [0]
if COUNT_TO:
    atexit.register(lambda: open(COUNT_TO, "w").write(f"{{steps[0]}} {{checkpoints[0]}}"))
check, save_state = fit._check_finite, fit.save_state

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def counted_step(*a, **k):  # called once per training step, in every task's loop
    steps[0] += 1
    if steps[0] == AT_STEP:
        die()
    return check(*a, **k)

def torn_checkpoint(path, state):  # the epoch's weights are on disk; its state is half written
    checkpoints[0] += 1
    if checkpoints[0] == IN_CHECKPOINT:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, str(path) + ".tmp")
        die()
    return save_state(path, state)

fit._check_finite, fit.save_state = counted_step, torn_checkpoint
sys.exit(main({args!r}))
"""


def killed_run(args: list[str], at_step: int | None = None, in_checkpoint: int | None = None,
               cwd: str | Path | None = None, count_to: str | Path | None = None) -> int:
    """`deepix ARGS` in its own process, killed (SIGKILL) at its AT_STEP-th training step or inside its
    IN_CHECKPOINT-th checkpoint; returns the process's exit status (-9 when the kill landed). A run that
    ends writes its count of steps and checkpoints to COUNT_TO."""
    code = _DRIVER.format(at_step=at_step, in_checkpoint=in_checkpoint, count_to=str(count_to) if count_to else None,
                          args=[str(a) for a in args])
    r = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=600)
    if r.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"deepix {' '.join(map(str, args))} failed: {r.stderr[-2000:]}")
    return r.returncode


def same_end(a: Path, b: Path) -> bool:
    """Whether two run folders end with bit-identical last weights, the same epochs in metrics.csv and (for
    the agents) the same episodes.csv."""
    wa, wb = load_file(str(a / "weights" / "last.safetensors")), load_file(str(b / "weights" / "last.safetensors"))
    epochs = [[r.split(",")[0] for r in (run / "metrics.csv").read_text().splitlines()[1:]] for run in (a, b)]
    episodes = [(run / "episodes.csv").read_text() if (run / "episodes.csv").exists() else "" for run in (a, b)]
    return (wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa) and epochs[0] == epochs[1]
            and episodes[0] == episodes[1])
