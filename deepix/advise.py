"""`deepix advise RUN`: overfitting or underfitting and by how much, what to try first, and (on request)
whether more data would help, from a learning curve of the run retrained on shares of its training data."""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import yaml

from .config import make_config, settings_of
from .errors import UserError
from .runs import find_run
from .tasks import get, names

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
CLIMBS = 1.0    # points expected from doubling the data at or above which more data should help
SLOW = 0.3      # ... and below which the curve is flat


def parse_fractions(text: str) -> tuple[float, ...]:
    """'0.25,0.5,1' (or '25,50,100' as percentages) -> (0.25, 0.5, 1.0)."""
    try:
        values = [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(f"--fractions must be numbers separated by commas, like 0.25,0.5,0.75,1 "
                        f"(got {text!r})") from None
    if values and max(values) > 1:
        values = [v / 100 for v in values]
    return _check_fractions(values)


def _check_fractions(values) -> tuple[float, ...]:
    values = sorted(set(float(v) for v in values))
    if len(values) < 2 or not all(0 < v <= 1 for v in values):
        raise UserError(f"--fractions needs at least two shares of the data in (0, 1], like 0.25,0.5,0.75,1 "
                        f"(got {', '.join(f'{v:g}' for v in values) or 'none'})")
    return tuple(values)


def _read(run: Path) -> tuple[dict, list[dict], dict]:
    from .report.plots import read_metrics  # here, not at the top: `import deepix` stays light
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    rows = read_metrics(run / "metrics.csv") if (run / "metrics.csv").is_file() else []
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    return config, rows, summary


def advise(run: str | os.PathLike, learning_curve: bool = False, fractions=FRACTIONS) -> dict:
    """The run's fit verdict (overfitting / underfitting / good fit, with numbers), its findings and ranked
    remedies; with learning_curve=True also retrains the run on each fraction of its training data and says
    whether more data would help. Writes RUN/advise.json and rewrites RUN/report.html."""
    from .report.fit import fit_verdict  # here, not at the top: `import deepix` stays light
    from .report.html import write_report  # here, not at the top: `import deepix` stays light
    run = find_run(run)
    config, rows, summary = _read(run)
    task = get(config.get("task") or summary.get("task") or "classify")
    verdict = fit_verdict(rows, summary, config)
    for r in verdict["remedies"]:
        r["flag"] = r["flag"].replace("advise RUN", f"advise {run}")
    out = {"run": str(run), "task": task.name, "verdict": verdict, "findings": task.findings(rows, summary, config)}
    saved = run / "advise.json"
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    if learning_curve:
        if not task.learning_curve:
            takes = ", ".join(n for n in names() if get(n).learning_curve)
            raise UserError(f"learning curves are for {takes} runs; {run} is a {task.name} run "
                            f"(deepix advise {run} without --learning-curve still gives the verdict)")
        out["learning_curve"] = _learning_curve(run, summary, _check_fractions(fractions), verdict)
    elif "learning_curve" in previous:  # a verdict alone does not throw away a curve that took minutes
        out["learning_curve"] = previous["learning_curve"]
    saved.write_text(json.dumps(out, indent=1, default=str))
    out["report"] = str(write_report(run))
    return out


def _share(cfg, fraction: float) -> dict:
    """The settings that keep `fraction` of the run's own labelled training images."""
    if cfg.labels_per_class:
        return {"labels_per_class": max(1, round(cfg.labels_per_class * fraction))}
    return {"label_fraction": (cfg.label_fraction or 1.0) * fraction}


def _train_on(run: Path, cfg, whole, fraction: float) -> Path:
    """Retrain the run's config (model, seed, threads, schedule) on a fraction of its training data into
    RUN/advise/classify/fraction-NN, or reuse a finished one trained with the same settings. A share of the
    labels is repeated to fill each epoch (classify's few_labels), so less data is not also fewer steps."""
    from . import api  # here, not at the top: `import deepix` stays light
    small = replace(cfg, **_share(cfg, fraction), quiet=True)
    used = settings_of(cfg.task) - {"task", "project", "name", "data"}
    settings = {k: v for k, v in {**small.to_dict(), "time_limit": 0.0, "baseline": False}.items() if k in used}
    name = f"fraction-{100 * fraction:g}"
    done = run / "advise" / cfg.task / name
    if (done / "summary.json").is_file():
        old = make_config(done / "config.yaml").to_dict()
        if all(old.get(k) == v for k, v in settings.items()):
            return done
    return api.train(cfg.task, project=str(run / "advise"), name=name, data=whole, **settings)["run"]


def _point(run: Path, fraction: float, summary: dict | None = None) -> dict:
    summary = summary if summary is not None else json.loads((run / "summary.json").read_text())
    data, test, train = summary.get("data") or {}, summary.get("test") or {}, summary.get("train") or {}
    labelled = (data.get("info") or {}).get("labelled")
    images = labelled["images"] if labelled else sum((data.get("counts") or {}).get("train") or [])
    return {"fraction": fraction, "images": int(images), "accuracy": float(test["accuracy"]),
            "epochs": int(train.get("epochs_run") or 0), "seconds": float(train.get("seconds") or 0.0),
            "run": str(run)}


def _learning_curve(run: Path, summary: dict, fractions: tuple[float, ...], verdict: dict) -> dict:
    from .data.labelled import load_data  # here, not at the top: `import deepix` stays light
    from .report.plots import plot_learning_curve  # here, not at the top: `import deepix` stays light
    if "accuracy" not in (summary.get("test") or {}):
        raise UserError(f"{run} has no test accuracy in summary.json (did the run finish?); train it again")
    cfg = make_config(run / "config.yaml")
    if any(f < 1 for f in fractions):
        try:
            whole = load_data(cfg)  # once, for every fraction
        except UserError as e:
            raise UserError(f"the learning curve retrains {run} on its data, which cannot be read: {e}") from None
    points = []
    for f in fractions:
        # the run itself is the 100% point: no need to train it twice
        points.append(_point(run, 1.0, summary) if f == 1.0 else _point(_train_on(run, cfg, whole, f), f))
    split = summary["test"].get("split", "test")
    answer = more_data(points, sum(((summary.get("data") or {}).get("counts") or {}).get(split) or []), split)
    if answer["trend"] == "flat" and verdict.get("remedies"):
        first = verdict["remedies"][0]
        answer["answer"] += f"; try {first['remedy'].lower()} first ({first['flag']})"
    extrapolated = points[-1]["accuracy"] + answer["gain_from_doubling"] / 100
    plot = plot_learning_curve(points, run / "plots" / "learning_curve.png", f"{split} accuracy",
                               min(extrapolated, 1.0))
    return {**answer, "points": points, "plot": str(plot.relative_to(run))}


def more_data(points: list[dict], test_images: int = 0, split: str = "test") -> dict:
    """Would more data help? Reads accuracy against training images: the rise over the last doubling (or the
    last step, per doubling), and with three or more points a power-law fit of the error, error = a * n^b,
    extrapolated to twice the data. Returns the trend (climbs / slow / flat), the points expected from
    doubling, and the answer in words."""
    pts = sorted(points, key=lambda p: p["images"])
    last = pts[-1]
    # the point nearest half the data: the last doubling, when the fractions include it
    prev = min(pts[:-1], key=lambda p: abs(math.log2(last["images"] / max(p["images"], 1)) - 1))
    rise = 100 * (last["accuracy"] - prev["accuracy"])
    doublings = math.log2(last["images"] / max(prev["images"], 1)) or 1.0
    per_doubling = rise / doublings
    n = [p["images"] for p in pts]
    err = [1 - p["accuracy"] for p in pts]
    gain, method, exponent = max(0.0, per_doubling), "from the last step's rise per doubling", None
    if len(pts) >= 3 and min(err) > 0:
        import numpy as np  # on use: `import deepix` and `deepix --help` stay light
        b, _ = np.polyfit(np.log(n), np.log(err), 1)
        exponent = float(b)
        if b < 0:  # error falls as a power of the data: doubling multiplies it by 2^b
            gain, method = 100 * err[-1] * (1 - 2 ** b), f"by a power-law fit, error ~ n^{b:.2f}"
        else:
            gain, method = 0.0, f"the error did not fall with more data (power-law exponent {b:+.2f})"
    gain = min(gain, 100 * err[-1])
    # two accuracies on the same test images: the noise of their difference, one standard error
    a = last["accuracy"]
    noise = 100 * math.sqrt(2 * a * (1 - a) / test_images) if test_images else 0.0
    moved = "rose" if rise >= 0 else "fell"
    said = (f"from {100 * prev['fraction']:g}% to {100 * last['fraction']:g}% of the data ({prev['images']:,} -> "
            f"{last['images']:,} images) the {split} accuracy {moved} {abs(rise):.1f} points "
            f"({100 * prev['accuracy']:.1f}% -> {100 * a:.1f}%)")
    if noise:
        said += f" (noise about ±{noise:.1f} points on {test_images:,} {split} images)"
    if gain >= CLIMBS and rise > noise:
        trend = "climbs"
        said += (f"; the curve still climbs: more data should help (about +{gain:.1f} points from doubling it, "
                 f"extrapolated {method})")
    elif gain >= SLOW and rise > 0:
        trend = "slow"
        said += (f"; the curve is flattening: more data would help a little (about +{gain:.1f} points from "
                 f"doubling it, extrapolated {method})")
    else:
        trend = "flat"
        said += (f"; flat: more data will not help much (about +{gain:.1f} points from doubling it, extrapolated "
                 f"{method}); the model is the limit")
    if trend != "climbs" and 0 < rise <= noise:
        said += "; the last rise is within the noise"
    return {"trend": trend, "answer": said, "gain_from_doubling": round(gain, 2),
            "rise_last_doubling": round(rise, 2), "rise_per_doubling": round(per_doubling, 2),
            "exponent": None if exponent is None else round(exponent, 3), "noise": round(noise, 2)}
