"""Sweeps: train every combination of a few settings (or let Optuna choose them), each trial a normal
run folder, then say which setting pays for its time: `deepix sweep --grid kernel=3,5,7`."""
from __future__ import annotations

import itertools
import math
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .config import Config, make_config, names
from .sweep_plan import Plan, Range
from .tasks import get, register
from .errors import UserError

ALIASES = {"kernel": "kernel_size", "k": "kernel_size", "wd": "weight_decay", "act": "activation",
           "opt": "optimizer", "ls": "label_smoothing", "bs": "batch", "aug": "augment", "drop": "dropout",
           "lpc": "labels_per_class", "size": "imgsz"}
# the sweep's own output and seeds (--seeds K) are not settings a trial may vary
FIXED = {"task", "project", "name", "quiet", "seed", "threads"}
LOG_SCALE = {"lr", "d_lr", "weight_decay"}  # ranges of these are sampled log-uniformly
SEARCHES = ("grid", "random", "tpe")


@dataclass
class Preset:
    """A classic question answered on built-in data: base settings plus a list of (label, settings) trials;
    the first trial is the baseline the others are measured against."""
    question: str
    factor: str
    base: dict
    trials: list[tuple[str, dict]]
    seeds: int = 2


# Timed on the 2-core machine (docs/sweeps.md): each preset finishes in under 10 minutes with 2 trials at a time.
FAST_VGG = dict(data="mnist-5k", model="vgg7", epochs=6)
PRESETS = {
    "faq-kernel": Preset("Which convolution kernel size: 3, 5 or 7?", "kernel_size", FAST_VGG,
                         [(str(k), {"kernel_size": k}) for k in (3, 5, 7)]),
    "faq-activation": Preset("Which activation: ReLU, GELU, SiLU, tanh or sigmoid?", "activation", FAST_VGG,
                             [(a, {"activation": a}) for a in ("relu", "gelu", "silu", "tanh", "sigmoid")]),
    "faq-optimizer": Preset(
        "Which optimizer, each at its usual learning rate: SGD (with or without momentum), Adam, AdamW or RMSprop?",
        "optimizer", FAST_VGG,
        [("adamw lr 0.003", {"optimizer": "adamw", "lr": 0.003}),  # deepix's default
         ("adam lr 0.001", {"optimizer": "adam", "lr": 0.001}),
         ("sgd lr 0.1 momentum 0.9", {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}),
         ("sgd lr 0.1 no momentum", {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0}),
         ("rmsprop lr 0.001", {"optimizer": "rmsprop", "lr": 0.001, "momentum": 0.0})]),
    "faq-loss": Preset("Which loss for classification: cross-entropy, focal or mean squared error?", "loss",
                       FAST_VGG, [(x, {"loss": x}) for x in ("cross-entropy", "focal", "mse")]),
    "faq-overfitting": Preset(
        "With only 30 labelled images per class, which remedy against overfitting helps most?", "remedy",
        # "nothing" means no augmentation and no label smoothing, so each remedy is measured on its own
        dict(data="mnist-5k", model="vgg7", labels_per_class=30, epochs=6, augment="none", label_smoothing=0.0),
        [("nothing", {}), ("augment digits", {"augment": "digits"}), ("augment strong", {"augment": "strong"}),
         ("weight decay x10", {"weight_decay": 10 * Config.weight_decay}), ("dropout 0.5", {"dropout": 0.5}),
         ("width 0.5", {"width": 0.5}), ("label smoothing 0.1", {"label_smoothing": 0.1})]),
}


def setting_name(key: str) -> str:
    """The Config field a sweep key names (aliases and - allowed), or a one-line UserError."""
    name = ALIASES.get(key.strip().lower(), key.strip().lower()).replace("-", "_")
    if name in FIXED:
        why = "--seeds K repeats every trial with seeds 0..K-1" if name == "seed" else "it belongs to the whole sweep"
        raise UserError(f"--grid cannot vary {key}: {why}")
    if name not in names():
        raise UserError(f"unknown sweep key {key!r}: use a setting of `deepix train --help` (e.g. kernel-size, "
                        f"activation, optimizer, lr) or an alias ({', '.join(f'{a}={n}' for a, n in ALIASES.items())})")
    return name


def _typed(name: str, text: str):
    default = getattr(Config(), name)
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return text.lower() in ("1", "true", "yes", "on")
        return type(default)(float(text)) if isinstance(default, int) and "e" in text.lower() else type(default)(text)
    except ValueError:
        raise UserError(f"--grid {name}: {text!r} is not a {type(default).__name__}") from None


def parse_grid(grid) -> dict:
    """`["kernel=3,5", "lr=1e-4:1e-2"]` (or a dict of lists) -> {Config field: [typed values] or Range}."""
    items = grid.items() if isinstance(grid, dict) else []
    if not isinstance(grid, dict):
        for item in grid or ():
            key, eq, values = str(item).partition("=")
            if not eq:
                raise UserError(f"--grid takes KEY=V1,V2,... (got {item!r}); e.g. --grid kernel=3,5,7 (a task goes "
                                "first: deepix sweep restore --grid ...)")
            items.append((key, values))
    out = {}
    for key, values in items:
        name = setting_name(key)
        if isinstance(values, str) and ":" in values and isinstance(getattr(Config(), name), (int, float)) \
                and not isinstance(getattr(Config(), name), bool):
            lo, _, hi = values.partition(":")
            low, high = _typed(name, lo), _typed(name, hi)
            log = name in LOG_SCALE
            if not low < high or (log and low <= 0):
                raise UserError(f"--grid {key}={values}: a range needs LOW < HIGH" + (" and LOW > 0" if log else ""))
            out[name] = Range(low, high, log, isinstance(getattr(Config(), name), int))
            continue
        parts = values.split(",") if isinstance(values, str) else list(values)
        parts = [p.strip() if isinstance(p, str) else p for p in parts]
        if not parts or any(p == "" for p in parts):
            raise UserError(f"--grid {key} has an empty value; write it as {key}=V1,V2 (e.g. kernel=3,5,7)")
        typed = [_typed(name, p) if isinstance(p, str) else p for p in parts]
        out[name] = list(dict.fromkeys(typed))  # a value listed twice is one setting
    return out


def plan(task: str | None = None, grid=None, preset: str | None = None, search: str = "grid",
         trials: int | None = None, seeds: int | None = None, **settings) -> Plan:
    """Resolve a sweep's arguments into its trials without running anything."""
    if search not in SEARCHES:
        raise UserError(f"--search must be one of {', '.join(SEARCHES)} (got {search!r})")
    p = None
    if preset:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        p = PRESETS[preset]
        if grid or search != "grid":
            raise UserError("a --preset lists its own trials: leave out --grid and --search")
    elif not grid:
        raise UserError(f"nothing to sweep: give --grid KEY=V1,V2 ... or --preset ({', '.join(PRESETS)})")
    task = task or "classify"
    user = {k.replace("-", "_"): v for k, v in settings.items() if v is not None}
    base = {**(p.base if p else {}), **user}  # the user's flags override the preset's base
    cfg = make_config(task=task, **{k: v for k, v in base.items() if k not in ("project", "name")})
    seeds = seeds if seeds is not None else (p.seeds if p else 1)
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    first = int(user.get("seed", 0))
    out = Plan(task, {k: v for k, v in base.items() if k not in ("seed", "project", "name")}, {},
               seeds=list(range(first, first + seeds)), search=search, monitor=cfg.monitor,
               higher=get(task).higher_is_better(cfg.monitor),
               question=p.question if p else "", preset=preset or "")
    if p:
        labels = [label for label, _ in p.trials]
        out.factors[p.factor] = {"values": labels, "default": labels[0]}
        out.trials = [{"labels": {p.factor: label}, "settings": {k.replace("-", "_"): v for k, v in s.items()}}
                      for label, s in p.trials]
        return out
    factors = parse_grid(grid)
    defaults = Config(**get(task).defaults)
    for name, values in factors.items():
        own = base.get(name, getattr(defaults, name))
        if isinstance(values, Range):
            if search == "grid":
                raise UserError(f"--grid {name}={values.low:g}:{values.high:g} is a range: sample it with "
                                f"--search random or tpe --trials N, or list values ({name}=V1,V2,...)")
            out.factors[name] = {"values": values, "default": own}
        else:
            out.factors[name] = {"values": values, "default": own if own in values else values[0]}
    if search == "grid":
        out.trials = [{"labels": dict(zip(factors, combo)), "settings": dict(zip(factors, combo))}
                      for combo in itertools.product(*factors.values())]
    else:
        if not trials or trials < 1:
            raise UserError(f"--search {search} needs --trials N (how many settings to try)")
        out.n_trials = trials
    return out


class _Watch:
    """Per-epoch callback: keeps the best validation value so far and, in an Optuna study, reports it
    for the median pruner and stops the trial when the pruner says so."""

    def __init__(self, monitor: str, higher: bool, trial=None):
        self.monitor, self.higher, self.trial = monitor, higher, trial
        self.best, self.epochs, self.seconds = None, 0, 0.0
        self.cpu = [time.process_time()]  # this process's CPU time at the start and after each epoch

    def __call__(self, row: dict, model) -> None:
        value = row.get(self.monitor)
        self.epochs, self.seconds = int(row["epoch"]), self.seconds + float(row.get("seconds", 0.0))
        self.cpu.append(time.process_time())
        if value is not None and math.isfinite(value):
            better = self.best is None or (value > self.best if self.higher else value < self.best)
            self.best = value if better else self.best
        if self.trial is not None and value is not None:
            import optuna  # optuna takes ~0.5 s to import: only sweeps pay it
            self.trial.report(value, self.epochs)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {self.epochs}")

    def cpu_seconds(self) -> float | None:
        """CPU seconds of training: the median epoch times the epochs (None before a second epoch, as the
        first also holds the setup). Other work on the machine stretches wall time but hardly the CPU time
        of a one-thread trial."""
        steps = [b - a for a, b in zip(self.cpu[1:], self.cpu[2:])]
        return round(statistics.median(steps) * self.epochs, 3) if steps else None


def _journal(path: Path):
    from optuna.storages import JournalStorage  # optuna takes ~0.5 s to import: only sweeps pay it
    try:
        from optuna.storages.journal import JournalFileBackend  # optuna takes ~0.5 s to import: only sweeps pay it
    except ImportError:  # optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend  # optuna takes ~0.5 s to import: only sweeps pay it
    return JournalStorage(JournalFileBackend(str(path)))


def _run_trial(job: dict) -> dict:
    """One trial in a worker process: a normal run folder under the sweep folder."""
    from . import api  # on use: `import deepix` and `deepix --help` stay light
    trial = None
    if job.get("study"):
        import optuna  # optuna takes ~0.5 s to import: only sweeps pay it
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the pruner is not kept in the storage: each process names the same one
        study = optuna.load_study(study_name="sweep", storage=_journal(Path(job["study"])), pruner=_pruner())
        trial = optuna.trial.Trial(study, job["trial_id"])
    register(job["task_object"])  # a fresh process knows the built-in tasks; this carries one registered elsewhere
    watch = _Watch(job["monitor"], job["higher"], trial)
    run = Path(job["folder"]) / job["task"] / f"trial{job['index']}"
    row = {"status": "done", "val": None, "test": None, "test_name": None, "error": ""}
    t0 = time.perf_counter()
    try:
        r = api.train(job["task"], **job["settings"], project=job["folder"], name=f"trial{job['index']}",
                      quiet=True, callbacks=[watch])
        name, value = get(job["task"]).main_figure(r["test"])
        row.update(val=r["train"]["best"], test=value, test_name=name, seconds=r["train"]["seconds"],
                   epochs=r["train"]["epochs_run"], run=str(r["run"]))
    except UserError as e:
        row.update(status="failed", error=str(e).splitlines()[0])
    except Exception as e:
        if type(e).__name__ != "TrialPruned":
            raise
        row.update(status="pruned", error=str(e))
    if row["status"] != "done":
        row.update(val=watch.best, seconds=round(watch.seconds, 3), epochs=watch.epochs,
                   run=str(run) if run.is_dir() else "")
    row["wall_seconds"] = round(time.perf_counter() - t0, 2)
    row["cpu_seconds"] = watch.cpu_seconds()
    return row


def sweep(task: str | None = None, grid=None, preset: str | None = None, search: str = "grid",
          trials: int | None = None, seeds: int | None = None, parallel: int = 0, project: str = "runs",
          name: str = "", quiet: bool = False, **settings) -> dict:
    """Train every setting of `grid` (`{"kernel_size": [3, 5]}` or `["kernel=3,5"]`) or of a `preset`, or
    `trials` settings chosen by Optuna (`search="random"|"tpe"`), each with `seeds` seeds, `parallel` at a
    time; write runs/sweep/<name>/ with sweep.csv, sweep.json, plots and report.html; return the summary."""
    from .engine import machine  # on use: `import deepix` and `deepix --help` stay light
    from .report.sweep import write  # here, not at the top: `import deepix` stays light
    from .runs import new_run  # on use: `import deepix` and `deepix --help` stay light
    p = plan(task, grid, preset, search, trials, seeds, **settings)
    cores = machine.cores()
    parallel = max(1, min(parallel or cores, p.runs))
    base = {**p.base, "threads": p.base.get("threads") or max(1, cores // parallel)}
    folder = new_run(project, "sweep", name)
    say = (lambda *a: None) if quiet else print
    say(f"sweep: {folder}  ({p.runs} trials, {parallel} at a time, {base['threads']} thread(s) each)")
    t0 = time.perf_counter()
    job = dict(task=p.task, task_object=get(p.task), folder=str(folder), monitor=p.monitor, higher=p.higher)
    ctx = get_context("spawn")  # fresh processes: no forked torch thread pools or locks
    rows = []

    def finished(row: dict) -> None:
        rows.append(row)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["labels"].items())
        val = "" if row["val"] is None else f" {p.monitor} {row['val']:.4f}"
        say(f"  trial{row['trial']} {row['status']}: {shown} seed {row['seed']}{val}"
            + (f" ({row['error']})" if row["status"] == "failed" else f", {row['seconds']:.0f} s")
            + f"  [{len(rows)}/{p.runs}]")

    with ProcessPoolExecutor(parallel, mp_context=ctx) as pool:
        if p.search == "grid":
            # seed-major: the seeds of a setting run at different times, so their spread includes the drift
            # of the machine's load, and does not flatter the time differences between settings
            todo = [(t, seed) for seed in p.seeds for t in p.trials]
            futures = {pool.submit(_run_trial, {**job, "index": i, "settings": {**base, **t["settings"], "seed": seed}}):
                       (i, t, seed) for i, (t, seed) in enumerate(todo)}
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for f in done:
                    i, t, seed = futures.pop(f)
                    finished({"trial": i, "labels": t["labels"], "settings": t["settings"], "seed": seed, **f.result()})
        else:
            _optuna_loop(p, pool, job, base, parallel, folder, finished)
    return write(folder, p, rows, round(time.perf_counter() - t0, 1), parallel, base["threads"])


def _optuna_loop(p: Plan, pool, job: dict, base: dict, parallel: int, folder: Path, finished) -> None:
    """Ask Optuna for settings, `parallel` trials in flight; each seed of a setting is its own Optuna trial
    (the same parameters enqueued again), so the pruner compares single runs."""
    import optuna  # optuna takes ~0.5 s to import: only sweeps pay it
    from optuna.trial import TrialState  # optuna takes ~0.5 s to import: only sweeps pay it
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.RandomSampler(seed=p.seeds[0]) if p.search == "random"
               else optuna.samplers.TPESampler(seed=p.seeds[0]))
    study = optuna.create_study(study_name="sweep", storage=_journal(folder / "optuna.journal"), sampler=sampler,
                                pruner=_pruner(),
                                direction="maximize" if p.higher else "minimize")
    running, index, params = {}, 0, {}
    while index < p.runs or running:
        while index < p.runs and len(running) < parallel:
            seed = p.seeds[index % len(p.seeds)]
            if index % len(p.seeds):
                study.enqueue_trial(params)  # another seed of the setting just asked for
            trial = study.ask()
            params = {k: _suggest(trial, k, f["values"]) for k, f in p.factors.items()}
            trial.set_user_attr("seed", seed)
            settings = {**base, **params, "seed": seed}
            f = pool.submit(_run_trial, {**job, "index": index, "settings": settings,
                                         "study": str(folder / "optuna.journal"), "trial_id": trial._trial_id})
            running[f] = (index, trial, dict(params), seed)
            index += 1
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for f in done:
            i, trial, params_i, seed = running.pop(f)
            row = f.result()
            if row["status"] == "done" and row["val"] is not None and math.isfinite(row["val"]):
                study.tell(trial, row["val"])
            else:
                study.tell(trial, state=TrialState.PRUNED if row["status"] == "pruned" else TrialState.FAIL)
            finished({"trial": i, "labels": params_i, "settings": params_i, "seed": seed, **row})


def _pruner():
    """Stop a trial whose best validation value so far is below the median of the finished trials at the
    same epoch, once two trials have finished; never in the first epoch, which says little."""
    import optuna  # optuna takes ~0.5 s to import: only sweeps pay it
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def _suggest(trial, name: str, values):
    if isinstance(values, Range):
        if values.integer:
            return trial.suggest_int(name, int(values.low), int(values.high), log=values.log)
        # three significant digits: a readable setting that a command line repeats exactly
        return float(f"{trial.suggest_float(name, values.low, values.high, log=values.log):.3g}")
    return trial.suggest_categorical(name, values)
