"""Killed runs, for every task: a tiny run of each task is killed with SIGKILL at random training steps, and once
in the middle of a checkpoint (its weights written, its training state not yet), then resumed with
`deepix train --resume`; each resumed run must end bit-identical (last weights, metrics.csv, episodes.csv) to
the same run never killed. Prints a Markdown table for docs/reliability.md.

    .venv/bin/python benchmarks/kill_resume.py --kills 3 --seed 0
"""
from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kill import killed_run, same_end  # noqa: E402
from tests.tasks.test_segment import square_pairs  # noqa: E402

COMMON = ["--threads", "1", "--quiet", "--time-limit", "0"]


def photos(root: Path) -> Path:
    cam, astro = skimage.data.camera(), skimage.data.astronaut()
    for split, crops in (("train", [cam[:96, :96], cam[200:296, 300:396], astro[:96, :96, 1]]),
                         ("val", [cam[300:364, 100:164]]), ("test", [cam[100:180, 150:250]])):
        (root / split).mkdir(parents=True)
        for i, c in enumerate(crops):
            Image.fromarray(c).save(root / split / f"{i}.png")
    return root


def scenes(root: Path) -> Path:
    from deepix.data.shapes import load_shapes
    from deepix.data.yolo import write_yolo
    write_yolo(load_shapes(40, 8, 8, size=64, max_objects=2), root)
    return root / "data.yaml"


def recipes(data: Path) -> dict[str, list[str]]:
    """Each task's tiny run on the command line: a few epochs of a few steps."""
    yolo = scenes(data / "yolo")
    return {
        "classify": ["train", "--data", "digits", "--model", "seed-cnn", "--batch", "96", "--epochs", "4"],
        "restore": ["train", "restore", "--data", photos(data / "photos"), "--model", "dncnn-xs", "--patches", "64",
                    "--batch", "16", "--patch", "32", "--epochs", "4"],
        "detect": ["train", "detect", "--data", yolo, "--imgsz", "64", "--batch", "8", "--epochs", "3",
                   "--precision", "fp32"],
        "generate": ["train", "generate", "--data", "digits", "--imgsz", "16", "--model", "dcgan", "--width", "0.25",
                     "--batch", "64", "--epochs", "3", "--judge-epochs", "1"],
        "segment": ["train", "segment", "--data", square_pairs(data / "pairs", n=24), "--batch", "8",
                    "--epochs", "3"],
        "pretrain": ["train", "pretrain", "--data", "digits", "--imgsz", "16", "--width", "0.25", "--batch", "128",
                     "--epochs", "3"],
        "navigate": ["train", "navigate", "--imgsz", "8", "--epochs", "4", "--bc", "0.5", "--envs", "8",
                     "--rollout", "8", "--batch", "16"],
        "locate": ["train", "locate", "--data", yolo, "--epochs", "3", "--bc", "0.67", "--envs", "4",
                   "--rollout", "8", "--batch", "32"],
        "agent": ["train", "agent", "--epochs", "3", "--envs", "8", "--rollout", "32", "--batch", "128",
                  "--lr", "0.01"],
    }


def resume(run: Path) -> None:
    from deepix.cli import main
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main(["train", "--resume", str(run), "--quiet"])
    except SystemExit as e:
        if e.code:
            raise RuntimeError(f"resuming {run} exited {e.code}") from None


def counts(run: Path) -> tuple[int, int]:
    """(training steps, checkpoints) of a finished run, from its driver's count file."""
    steps, checkpoints = (run.parent / f"{run.name}.counts").read_text().split()
    return int(steps), int(checkpoints)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=3, help="kills at random steps per task (plus one mid-checkpoint)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="", help="comma-separated (default: all)")
    a = p.parse_args()
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table = recipes(root / "data")
        wanted = [t for t in a.tasks.split(",") if t] or list(table)
        rows = []
        for task in wanted:
            t0 = time.perf_counter()
            args = [*table[task], *COMMON, "--project", root / task]
            killed_run([*args, "--name", "whole"], count_to=root / task / task / "whole.counts")
            whole = root / task / task / "whole"
            steps, checkpoints = counts(whole)
            plans = [("step", s) for s in sorted(rng.sample(range(1, steps + 1), min(a.kills, steps)))]
            plans.append(("checkpoint", rng.randint(1, checkpoints)))
            survived, where = 0, []
            for i, (kind, at) in enumerate(plans):
                name = f"k{i}"
                rc = killed_run([*args, "--name", name], **({"at_step": at} if kind == "step" else {"in_checkpoint": at}))
                run = root / task / task / name
                if rc == 0:
                    raise RuntimeError(f"{task}: the kill at {kind} {at} never landed")
                resume(run)
                ok = same_end(whole, run)
                survived += ok
                where.append(f"{kind} {at}" + ("" if ok else " (differs)"))
                print(f"{task}: killed at {kind} {at} of {steps} steps / {checkpoints} checkpoints: "
                      f"{'identical' if ok else 'DIFFERS'}", flush=True)
            rows.append((task, steps, ", ".join(where), f"{survived} / {len(plans)}",
                         round(time.perf_counter() - t0)))
    print("\n| task | steps in the run | killed at | resumed bit-identical | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    print(f"\nkills: {sum(int(r[3].split('/')[1]) for r in rows)}, survived: "
          f"{sum(int(r[3].split('/')[0]) for r in rows)}; numpy {np.__version__}")


if __name__ == "__main__":
    main()
