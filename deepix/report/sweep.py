"""What a sweep found: the trial table, one plot per swept setting, and a recommendation per setting
measured against the noise, written as sweep.csv, sweep.json and a self-contained report.html."""
from __future__ import annotations

import csv
import json
import math
import re
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.ticker import PercentFormatter

from ..sweep_plan import Plan, Range, flags
from ..tasks import get
from .html import CSS, duration, img, table as html_table
from .plots import figure, rotation, save, tidy

ORDER = {"done": 0, "pruned": 1, "failed": 2}


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def sort_rows(rows: list[dict], higher: bool) -> list[dict]:
    """Finished trials best first by the validation metric, then pruned, then failed."""
    sign = -1 if higher else 1
    return sorted(rows, key=lambda r: (ORDER[r["status"]], sign * r["val"] if _finite(r["val"]) else math.inf,
                                       r["trial"]))


def _levels(plan: Plan, done: list[dict]) -> dict:
    """Each factor's level per trial; a sampled numeric range is split at its median into two halves."""
    out = {}
    for name, spec in plan.factors.items():
        if isinstance(spec["values"], Range):
            xs = [r["labels"][name] for r in done]
            cut = float(np.median(xs)) if xs else spec["values"].low
            low, high = f"< {cut:.3g}", f">= {cut:.3g}"
            out[name] = {"order": [low, high], "default": low,
                         "of": {r["trial"]: high if r["labels"][name] >= cut else low for r in done}}
        else:
            out[name] = {"order": list(spec["values"]), "default": spec["default"],
                         "of": {r["trial"]: r["labels"][name] for r in done}}
    return out


def _noise(done: list[dict], levels: dict, key: str = "val") -> tuple[float | None, str, int]:
    """The standard deviation of one trial's `key` (metric or seconds): from repeated seeds of a setting where
    there are any, else from the scatter around an additive fit of the settings' effects; None when nothing
    is left over."""
    groups: dict[tuple, list[float]] = {}
    for r in done:  # the exact setting (not the halves of a sampled range)
        groups.setdefault(tuple(str(r["labels"][k]) for k in levels), []).append(r[key])
    dof = sum(len(v) - 1 for v in groups.values())
    if dof > 0:
        ss = sum(((np.array(v) - np.mean(v)) ** 2).sum() for v in groups.values())
        return float(math.sqrt(ss / dof)), "spread between seeds of the same setting", int(dof)
    cols = [np.ones(len(done))]
    for lv in levels.values():
        cols += [np.array([lv["of"][r["trial"]] == x for r in done], float) for x in lv["order"][1:]]
    x, y = np.stack(cols, 1), np.array([r[key] for r in done])
    rank = np.linalg.matrix_rank(x) if len(done) else 0
    dof = len(done) - rank
    if dof <= 0:
        return None, "no repeated or otherwise-equal trials: rerun with --seeds 2", 0
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return (float(math.sqrt((resid ** 2).sum() / dof)),
            "scatter of otherwise-equal trials around each setting's average effect", int(dof))


def _verdict(gain: float, se: float | None, ratio: float, base) -> str:
    if se is None:
        return "cannot tell from the noise with one run each: add --seeds 2"
    if gain > 2 * se:
        return "worth it" if ratio <= 1.5 else f"better, but at {ratio:.1f}x the time: worth it only if time is cheap"
    if gain < -2 * se:
        return f"worse: keep {base}"
    if ratio < 0.9:
        return "as good within the noise and faster: worth it"
    return "within the noise: not worth it here"


def _speed(ratio: float, clear: bool) -> str:
    if not clear:
        return "same time" if 0.9 <= ratio <= 1.1 else f"same time within the timing noise ({ratio:.2f}x)"
    return f"{ratio:.1f}x slower" if ratio > 1 else f"{1 / ratio:.1f}x faster"


def analyse(plan: Plan, rows: list[dict]) -> dict:
    """Per swept setting, each value against the default: gain in the validation metric, time ratio, the noise,
    and a verdict; plus the best setting overall and the command that repeats it."""
    sign = 1 if plan.higher else -1
    scale, unit = get(plan.task).figure_unit(plan.monitor)
    metric = plan.monitor.replace("_", " ")
    done = [r for r in rows if r["status"] == "done" and _finite(r["val"])]
    levels = _levels(plan, done)
    sd, source, dof = _noise(done, levels)
    # CPU seconds where measured: other work on the machine stretches wall time; what is left is noise too
    tkey = "cpu_seconds" if done and all(r.get("cpu_seconds") for r in done) else "seconds"
    tsd = _noise(done, levels, tkey)[0]
    out = {"noise": {"sd": sd, "source": source, "dof": dof, "unit": unit.strip() or plan.monitor,
                     "sd_shown": None if sd is None else round(sd * scale, 3)},
           "time": "CPU seconds of training" if tkey == "cpu_seconds" else "training seconds (wall)",
           "factors": {}, "lines": []}
    for name, lv in levels.items():
        base = lv["default"]
        b = [r for r in done if lv["of"][r["trial"]] == base]
        comps, best = [], None
        for value in lv["order"]:
            a = [r for r in done if lv["of"][r["trial"]] == value]
            if value == base or not b:
                continue
            if not a:
                comps.append({"value": str(value), "verdict": "no finished trial", "text":
                              f"{name} {value}: no finished trial to compare (see the failed or pruned trials)"})
                continue
            gain = sign * (np.mean([r["val"] for r in a]) - np.mean([r["val"] for r in b]))
            ta, tb = np.mean([r[tkey] for r in a]), np.mean([r[tkey] for r in b])
            ratio = ta / max(1e-9, tb)
            both = math.sqrt(1 / len(a) + 1 / len(b))
            se = None if sd is None else sd * both
            clear = not 0.9 <= ratio <= 1.1 if tsd is None else abs(ta - tb) > 2 * tsd * both
            verdict = _verdict(gain, se, ratio if clear else 1.0, base)
            noise = "" if se is None else f", noise +-{2 * se * scale:.2g}{unit}"
            text = (f"{name} {value} vs {base}: {gain * scale:+.2f}{unit} {metric}, {_speed(ratio, clear)} "
                    f"({len(a)} vs {len(b)} trials{noise}): {verdict}")
            comps.append({"value": str(value), "gain": float(gain * scale), "time_ratio": float(ratio), "time_clear": bool(clear),
                          "two_se": None if se is None else float(2 * se * scale), "trials": [len(a), len(b)],
                          "verdict": verdict, "text": text})
            if verdict.startswith(("worth it", "as good")) and (best is None or gain * scale > best["gain"]):
                best = comps[-1]
        advice = f"{name}: use {best['value']} instead of {base}" if best else f"{name}: keep {base}"
        missing = "" if b else f" (no finished trial with {base})"
        out["factors"][name] = {"default": str(base), "comparisons": comps, "advice": advice + missing,
                                "change": best is not None, "choice": best["value"] if best else str(base)}
        out["lines"] += [c["text"] for c in comps] + [advice + missing]
    advised = {k: f["choice"] for k, f in out["factors"].items()
               if not isinstance(plan.factors[k]["values"], Range)}
    out["best"] = _best(plan, done, advised, sign, scale, unit, metric)
    return out


def _best(plan: Plan, done: list[dict], advised: dict, sign: int, scale: float, unit: str, metric: str) -> dict | None:
    """The setting with the best mean over its seeds, and the `deepix train` flags that repeat it; a note
    when it is not what the per-setting advice chose (then its lead is within the noise or costs time)."""
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault(tuple(sorted((k, str(v)) for k, v in r["labels"].items())), []).append(r)
    if not groups:
        return None
    advised_first = lambda g: all(str(g[0]["labels"].get(k)) == v for k, v in advised.items())  # noqa: E731
    trials = max(groups.values(), key=lambda g: (round(sign * np.mean([r["val"] for r in g]), 9), advised_first(g)))
    mean = float(np.mean([r["val"] for r in trials]))
    tests = [r["test"] for r in trials if _finite(r["test"])]
    label = ", ".join(f"{k} {v}" for k, v in trials[0]["labels"].items())
    command = flags(plan.task, {**plan.base, **trials[0]["settings"]})
    test = f", test {float(np.mean(tests)) * (100 if scale == 100 else 1):.2f}{'%' if scale == 100 else ''}" if tests else ""
    shown = f"{mean * 100:.2f}%" if scale == 100 else f"{mean:.4g}{unit}"
    headline = f"Best: {label} ({metric} {shown} over {len(trials)} seed(s){test})"
    differ = {k: v for k, v in advised.items() if str(trials[0]["labels"].get(k)) != v}
    if differ:
        headline += (f", but its lead over {', '.join(f'{k} {v}' for k, v in differ.items())} is within the noise "
                     "or costs time: see the advice per setting")
    return {"labels": {k: str(v) for k, v in trials[0]["labels"].items()}, "settings": trials[0]["settings"],
            "val": mean, "seeds": len(trials), "command": command, "headline": headline,
            "text": f"{headline}; repeat it with: {command}"}


def plot_factor(name: str, spec: dict, rows: list[dict], monitor: str, out: Path, tkey: str = "seconds",
                percent: bool = False) -> Path:
    """The metric and the training time against one setting: each trial a dot, the mean and standard
    deviation over the other settings and seeds as a bar."""
    done = [r for r in rows if r["status"] == "done" and _finite(r["val"])]
    fig = figure(10, 3.6)
    ax, at = fig.subplots(1, 2)
    values = spec["values"]
    tlabel = "CPU seconds of training" if tkey == "cpu_seconds" else "training seconds"
    for axis, key, label in ((ax, "val", monitor), (at, tkey, tlabel)):
        if isinstance(values, Range):
            axis.scatter([r["labels"][name] for r in done], [r[key] for r in done], s=18, alpha=0.8)
            if values.log:
                axis.set_xscale("log")
        else:
            for i, v in enumerate(values):
                ys = [r[key] for r in done if r["labels"][name] == v]
                if not ys:
                    continue
                axis.scatter(i + np.linspace(-0.12, 0.12, len(ys)), ys, s=14, alpha=0.5, color="#1f77b4")
                axis.errorbar(i, np.mean(ys), yerr=np.std(ys) if len(ys) > 1 else 0, fmt="o", color="#d62728",
                              capsize=4, ms=6)
            axis.set_xticks(range(len(values)))
            axis.set_xlim(-0.6, len(values) - 0.4)
            ticks = [f"{v} (default)" if v == spec["default"] else str(v) for v in values]
            axis.set_xticklabels(ticks, **rotation(ticks, 45))
        tidy(axis, name, label)
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(f"{monitor} (red: mean +- sd over the rest)", fontsize=10)
    at.set_title(tlabel, fontsize=10)
    return save(fig, out)


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write(folder: Path, plan: Plan, rows: list[dict], seconds: float, parallel: int, threads: int) -> dict:
    """Write sweep.csv, sweep.json, plots/<setting>.png and report.html into the sweep folder."""
    folder = Path(folder)
    rows = sort_rows(rows, plan.higher)
    test_name = next((r["test_name"] for r in rows if r.get("test_name")), "test")
    factors = list(plan.factors)
    extra = sorted({k for r in rows for k in r["settings"]} - set(factors))
    head = ["trial", "status"] + factors + extra + ["seed", plan.monitor, test_name, "seconds", "cpu_seconds", "epochs", "run", "error"]
    table = [[f"trial{r['trial']}", r["status"]] + [r["labels"].get(k, "") for k in factors]
             + [r["settings"].get(k, "") for k in extra]
             + [r["seed"], r["val"] if r["val"] is not None else "", r["test"] if r["test"] is not None else "",
                r["seconds"], r.get("cpu_seconds") or "", r["epochs"], r["run"], r["error"]] for r in rows]
    with open(folder / "sweep.csv", "w", newline="") as f:
        csv.writer(f).writerows([head] + table)
    analysis = analyse(plan, rows)
    tkey = "cpu_seconds" if analysis["time"].startswith("CPU") else "seconds"
    plots = [plot_factor(k, spec, rows, plan.monitor, folder / "plots" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', k)}.png",
                         tkey, get(plan.task).figure_unit(plan.monitor)[0] == 100) for k, spec in plan.factors.items()]
    report = _html(folder, plan, head, table, analysis, plots, seconds, parallel)
    summary = {"folder": str(folder), "report": str(report.resolve()), "csv": str(folder / "sweep.csv"),
               "task": plan.task, "preset": plan.preset, "question": plan.question, "search": plan.search,
               "seeds": plan.seeds, "parallel": parallel, "threads": threads, "seconds": seconds,
               "monitor": plan.monitor, "test_name": test_name, "base": plan.base,
               "factors": {k: {"values": str(s["values"]) if isinstance(s["values"], Range) else s["values"],
                               "default": s["default"]} for k, s in plan.factors.items()},
               "trials": rows, "analysis": analysis}
    (folder / "sweep.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _html(folder: Path, plan: Plan, head: list[str], table: list[list], analysis: dict, plots: list[Path],
          seconds: float, parallel: int) -> Path:
    e = lambda x: escape(str(x))  # noqa: E731
    n = len(table)
    states = {s: sum(r[1] == s for r in table) for s in ORDER}
    what = [plan.task, f"data {plan.base.get('data', 'default')}", f"model {plan.base.get('model', 'default')}",
            f"{n} trials ({states['done']} done, {states['pruned']} pruned, {states['failed']} failed)",
            f"search {plan.search}", f"seeds {', '.join(map(str, plan.seeds))}", f"{parallel} at a time",
            duration(seconds)]
    best = analysis["best"]
    noise = analysis["noise"]
    nz = ("Noise: not measurable here (" + noise["source"] + ")" if noise["sd"] is None else
          f"Noise: one trial's {plan.monitor} varies by {noise['sd_shown']:.2g} {noise['unit']} (standard deviation, "
          f"{noise['source']}, {noise['dof']} degree(s) of freedom); a difference counts when it exceeds two standard "
          "errors of the difference.") + f" Times compare {analysis['time']}."
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepix sweep: {e(folder.name)}</title>"
         f"<style>{CSS}</style></head><body><h1>deepix sweep: {e(folder.name)}</h1>"
         f"<div class='sub'>{e(' · '.join(what))}</div>"]
    if plan.question:
        h.append(f"<p><b>Question:</b> {e(plan.question)}</p>")
    h.append(f"<div class='big'>{e(best['headline'] if best else 'No trial finished.')}</div>")
    if best:
        h.append(f"<p>Repeat it with:</p><pre>{e(best['command'])}</pre>")
    h.append("<nav><a href='#recommendation'>Recommendation</a><a href='#trials'>Trials</a>"
             "<a href='#plots'>Plots</a><a href='#settings'>Settings</a></nav>")
    h.append(f"<h2 id='recommendation'>Recommendation</h2><p>{e(nz)}</p>")
    for name, f in analysis["factors"].items():
        ok = " ok" if f["change"] else ""
        h.append(f"<div class='finding{ok}'><h3>{e(f['advice'])}</h3><ul>"
                 + "".join(f"<li>{e(c['text'])}</li>" for c in f["comparisons"]) + "</ul></div>")
    h.append(f"<h2 id='trials'>Trials, best {e(plan.monitor)} first</h2>")
    h.append(html_table(head[:-2], [[_cell(c) for c in r[:-2]] for r in table]))
    failed = [r for r in table if r[1] == "failed"]
    if failed:
        h.append("<h3>Failed trials</h3><ul>" + "".join(f"<li>{e(r[0])}: {e(r[-1])}</li>" for r in failed) + "</ul>")
    h.append("<p>Each trial is a run folder (" + e(f"{folder}/{plan.task}/trialN") + ") that deepix val, predict "
             "and report take; pruned trials stopped early because their validation metric fell below the median.</p>")
    h.append("<h2 id='plots'>Plots</h2>" + "".join(img(p, p.stem) for p in plots))
    h.append("<h2 id='settings'>Settings every trial shares</h2>"
             + html_table(["setting", "value"], [[k, v] for k, v in plan.base.items()]) + "</body></html>")
    out = folder / "report.html"
    out.write_text("\n".join(h), encoding="utf-8")
    return out
