"""A training run's whole lifecycle, written once for every task: machine, seed and precision; the run
folder with config.yaml and dataset.json; fit or resume; the interrupt hint; the barrier of the other
processes; summary.json and the report. What makes the run a classification (or a detection...) comes
from the task's `setup`, through the contract in tasks/base.py."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch

from ..errors import UserError
from ..models import count_params
from . import distributed as dist, machine
from .fit import fit


def train(task, cfg, dataset=None, resume: str | None = None, callbacks=(), net=None) -> dict:
    """Trains `task` with the settings `cfg`; returns the run folder, the report, test and train figures."""
    threads = machine.set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev = machine.device()
    bf16, why = machine.precision(cfg.precision, dev)
    run = Path(resume) if resume else None
    if run is not None and not (run / "state" / "last.pt").exists():
        # killed before its first epoch's checkpoint: it starts again, in its own folder, from its own config
        resume = None
        (run / "metrics.csv").unlink(missing_ok=True)
    job = task.setup(cfg, dataset, net, dev, bf16, resume)
    run = run or dist.new_run(cfg.project, task.name, cfg.name)
    if dist.is_main():  # first, so that a run killed in what comes next can always be resumed
        cfg.save(run / "config.yaml")
        (run / "dataset.json").write_text(json.dumps(job.data, indent=1))
        if not resume:
            for name, text in job.files.items():
                (run / name).write_text(text)
    if job.begin is not None:
        job.begin(run)
    pruned = None
    if cfg.prune and not resume:
        from .prune import prune  # Torch-Pruning: only `deepix prune` needs it
        try:
            pruned = prune(task, job, cfg, dev)
        except UserError:
            shutil.rmtree(run, ignore_errors=True)  # the new folder holds nothing yet; the source run is untouched
            raise
        if not cfg.quiet and dist.is_main():
            print(f"pruned {cfg.prune:.0%} of the channels of {pruned['from']}: {pruned['params_before']:,} -> "
                  f"{pruned['params_after']:,} parameters; fine-tuning for {cfg.epochs} epochs")
    if not cfg.quiet and dist.is_main():
        print(f"run: {run}  ({job.about}, {threads} threads"
              + (f" x {dist.world()} processes" if dist.world() > 1 else "") + f"; {why})")
    t0 = time.perf_counter()
    try:
        result = fit(cfg, job.step, job.model, job.train, job.val, run, dev, bf16, resume=bool(resume),
                     callbacks=(*job.callbacks, *callbacks), higher=task.higher_is_better(cfg.monitor))
    except KeyboardInterrupt:
        print(f"\nstopped; continue with: deepix train {task.name} --resume {run}", file=sys.stderr)
        raise
    result.update(precision="bf16" if bf16 else "fp32", precision_why=why, threads=threads, device=str(dev), processes=dist.world())
    if task.result_unit != "images":
        result[f"{task.result_unit}_per_s"] = result.pop("images_per_s")
    if not dist.is_main():  # rank 0 tests and reports; the rest wait so that nobody reads a half-written run
        dist.barrier()
        return {"run": run, "report": None, "test": {}, "train": result}
    test, fields = job.finish(run, result)
    result["wall_seconds"] = round(time.perf_counter() - t0, 2)
    summary = {"task": task.name, "data": job.data,
               "model": {"name": cfg.model, "params": count_params(job.model), **fields.pop("model", {})},
               "train": result, **fields, **({"pruned": pruned} if pruned else {})}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    from ..report.html import write_report  # on use: a rank that does not report never imports matplotlib
    report = write_report(run)
    dist.barrier()
    return {"run": run, "report": report.resolve(), "test": test, "train": result}
