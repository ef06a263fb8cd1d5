"""The training loop: epochs of task-defined batches, validation, early stopping,
checkpoints every epoch, resume, and a NaN stop that keeps the last good weights."""
from __future__ import annotations

import contextlib
import csv
import math
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..data.loader import epoch_generator
from ..errors import UserError
from . import distributed as dist
from .checkpoint import load_fitted, load_state, load_weights, save_state, save_weights
from .optim import backward_step, make_optimizer, make_scheduler


def autocast(bf16: bool, dev: torch.device):
    return torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


class History:
    """metrics.csv, one row per epoch, and the same numbers to TensorBoard."""

    def __init__(self, run: Path):
        self.path = run / "metrics.csv"
        self.run = run
        self._tb = None

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with self.path.open() as f:
            return [{k: int(v) if k == "epoch" else float(v) for k, v in r.items() if v != ""}
                    for r in csv.DictReader(f)]

    def truncate(self, epochs: int) -> None:
        # a run killed after writing a row but before its checkpoint repeats that epoch
        rows = [r for r in self.rows() if r["epoch"] <= epochs]
        self.path.unlink(missing_ok=True)
        for r in rows:
            self.add(r, tensorboard=False)

    def add(self, row: dict, tensorboard: bool = True) -> None:
        new = not self.path.is_file()
        if not new:
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if set(row) - set(header):  # a figure some epochs log (RL's return once episodes end): widen the file
                rows = self.rows()
                header += [k for k in row if k not in header]
                with self.path.open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=header, restval="")
                    w.writeheader()
                    w.writerows(rows)
        else:
            header = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            if new:
                w.writeheader()
            w.writerow(row)
        if tensorboard:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter  # tensorboard takes ~1 s to import: only --tensorboard pays it
                self._tb = SummaryWriter(str(self.run))
            for k, v in row.items():
                if k != "epoch":
                    self._tb.add_scalar(k.replace("_", "/", 1), v, int(row["epoch"]))
            self._tb.flush()

    def close(self):
        if self._tb is not None:
            self._tb.close()


def fit_time_limit(cfg, run: Path, spent: float, done: int) -> None:
    """Re-plan the epochs so that training ends within cfg.time_limit minutes of epoch time, at the
    mean pace so far (the lr schedule follows the plan; re-planning every epoch absorbs a busy machine)."""
    pace = spent / max(done, 1)
    fits = max(done, done + int((cfg.time_limit * 60 - spent) // max(pace, 1e-3)))
    if fits != cfg.epochs:
        cfg.epochs = fits
        cfg.save(run / "config.yaml")


def _check_finite(losses: dict, cfg, run: Path, epoch: int, step: int) -> None:
    for name, v in losses.items():
        if not math.isfinite(v):
            last = run / "weights" / "last.safetensors"
            kept = f"the last good weights are in {last}" if last.exists() else "no epoch had finished"
            raise UserError(f"the {name.replace('_', ' ')} became {v} at epoch {epoch + 1}, step {step + 1}; "
                            f"lower --lr (now {cfg.lr}) or set --grad-clip 1.0; {kept}")


def fit(cfg, task, model: torch.nn.Module, train, val, run: Path, dev: torch.device, bf16: bool,
        resume: bool = False, callbacks=(), higher: bool = True) -> dict:
    """Trains `model` in place; returns what happened (epochs run, best epoch, speed).
    `task` is a tasks.base.Step; `higher` says whether cfg.monitor improves upward.
    Each callback is called as callback(row, model) after every epoch's checkpoint.
    Under torchrun every rank trains on its share of each batch; rank 0 alone validates, decides
    (best, early stop, time limit) and writes, and tells the others what it decided."""
    # a task with several optimizers (a GAN's generator and discriminator) names them and steps them itself
    if resume:  # the weights first: a pruned run's layers take their sizes before the optimizers see them
        saved = load_state(run / "state" / "last.pt")
        if "model" in saved:  # the weights of the same epoch as the rest of the state
            load_fitted(model, saved["model"])
        else:  # a run saved before the state held its weights
            load_weights(model, run / "weights" / "last.safetensors")
    opts = task.optimizers(cfg, model) or {"": make_optimizer(cfg, model)}
    scheds = {k: make_scheduler(cfg, o, len(train)) for k, o in opts.items()}
    history = History(run)
    monitor = cfg.monitor
    state = {"epoch": 0, "best": -math.inf if higher else math.inf, "best_epoch": 0, "bad_epochs": 0}
    if resume:
        saved_opts = saved.get("optimizers", {"": saved.get("optimizer")})  # runs saved before several optimizers
        saved_scheds = saved.get("schedulers", {"": saved.get("scheduler")})
        for k in opts:
            opts[k].load_state_dict(saved_opts[k])
            scheds[k].load_state_dict(saved_scheds[k])
        torch.set_rng_state(saved["rng"])
        state = saved["loop"]
        if dist.is_main():
            history.truncate(state["epoch"])
            if cfg.time_limit:  # a resumed run may have been given more time
                fit_time_limit(cfg, run, state.get("seconds", 0.0), state["epoch"])
        cfg.epochs = dist.broadcast(cfg.epochs)
    # killed after its last epoch's checkpoint but before its test and report: resuming only finishes it
    trained = resume and not (run / "summary.json").exists() and (
        state["epoch"] >= cfg.epochs or bool(cfg.patience and state["bad_epochs"] >= cfg.patience))
    if state["epoch"] >= cfg.epochs and not trained:
        raise UserError(f"the run already has {state['epoch']} epochs; pass --epochs N with N > {state['epoch']} to extend it")

    images, seconds, stopped_early = 0, 0.0, False
    own_step = task.mode == "own"
    ranks, main = dist.world(), dist.is_main()
    # DDP where the step is the model's own forward; tasks that drive parts of their model average by hand
    net = dist.wrap(model, cfg.sync_bn) if task.mode == "forward" else model
    dist.manual_grads(net is model)
    if ranks > 1:  # each rank its own dropout masks
        torch.manual_seed(torch.initial_seed() + dist.rank())
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[stats]}")]
    with Progress(*columns, disable=cfg.quiet or not main, transient=False) as progress:
        epoch = cfg.epochs if trained else state["epoch"]
        while epoch < cfg.epochs:
            t0 = time.perf_counter()
            bar = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(train), stats="")
            model.train()
            g = epoch_generator(cfg.seed, epoch, stream=1 + 100 * dist.rank())  # each rank its own augmentation
            sums, seen = {}, 0
            for step, (x, y) in enumerate(train.epoch(epoch, shard=True) if ranks > 1 else train.epoch(epoch)):
                x, y = task.prepare(x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), True, g)
                if own_step:  # the task runs forward, backward and its optimizers' steps
                    losses, out = task.train_step(net, x, y, opts, lambda: autocast(bf16, dev)), None
                else:
                    with autocast(bf16, dev):
                        if task.mode == "model":  # a task that drives its model through the model's own interface
                            loss, out = task.step(net, x, y)
                        else:
                            out = net(x)
                            loss = task.loss(out, y)
                    losses = {"loss": loss.item()}  # one read of the value per step, as before
                _check_finite(losses, cfg, run, epoch, step)
                if not own_step:
                    backward_step(opts[""], loss, net.parameters(), cfg.grad_clip)
                for sched in scheds.values():
                    sched.step()
                n = len(y)
                seen += n
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v * n
                if not own_step:
                    for k, v in task.train_stats(None if out is None else out.detach(), y).items():
                        sums[k] = sums.get(k, 0.0) + v
                if not cfg.quiet and main:
                    rate = seen * ranks / (time.perf_counter() - t0)
                    stats = "  ".join(f"{k} {v / seen:.4f}" for k, v in sums.items())
                    progress.update(bar, advance=1, stats=f"{stats}  {rate:,.0f} img/s")
            sums, seen = dist.reduce_sums(sums, seen)
            train_seconds = time.perf_counter() - t0
            images += seen
            seconds += train_seconds
            if not main:  # rank 0 validates and decides; the others wait for the verdict
                state["epoch"], cfg.epochs, stop = dist.broadcast(None)
                epoch += 1
                if stop:
                    stopped_early = True
                    break
                continue
            val_metrics = task.evaluate(model, val, dev, bf16) if val is not None and len(val) else {}
            row = {"epoch": epoch + 1, **{f"train_{k}": v / seen for k, v in sums.items()},
                   **{f"val_{k}": v for k, v in val_metrics.items()},
                   "lr": next(iter(opts.values())).param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 3)}
            if not cfg.quiet:
                shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                progress.update(bar, stats=f"{shown}  {seen / train_seconds:,.0f} img/s")
            history.add(row)

            if monitor not in row:
                raise UserError(f"--monitor {monitor} is not measured; use one of "
                                f"{', '.join(k for k in row if k.startswith(('val_', 'train_')))}")
            value = row[monitor]
            improved = value > state["best"] if higher else value < state["best"]
            state["epoch"] = epoch + 1
            state["seconds"] = state.get("seconds", 0.0) + row["seconds"]
            if improved:
                state.update(best=value, best_epoch=epoch + 1, bad_epochs=0)
                save_weights(model, run / "weights" / "best.safetensors")
            else:
                state["bad_epochs"] += 1
            save_weights(model, run / "weights" / "last.safetensors")
            # written last, and holding its own copy of the weights: a kill at any point of this checkpoint
            # resumes from one consistent epoch (the files above are rewritten by the epoch run again)
            save_state(run / "state" / "last.pt", {"model": model.state_dict(),
                                                   "optimizers": {k: o.state_dict() for k, o in opts.items()},
                                                   "schedulers": {k: v.state_dict() for k, v in scheds.items()},
                                                   "rng": torch.get_rng_state(), "loop": dict(state)})
            for callback in callbacks:
                callback(row, model)
            epoch += 1
            if cfg.time_limit:
                fit_time_limit(cfg, run, state["seconds"], epoch)
            stop = bool(cfg.patience and state["bad_epochs"] >= cfg.patience)
            dist.broadcast((state["epoch"], cfg.epochs, stop))
            if stop:
                stopped_early = True
                break
    dist.manual_grads(False)
    history.close()
    stopped_early = stopped_early or bool(trained and state["epoch"] < cfg.epochs)
    return {"epochs_run": state["epoch"], "best_epoch": state["best_epoch"], "best": state["best"],
            "monitor": monitor, "stopped_early": stopped_early, "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 1) if seconds else 0.0}
