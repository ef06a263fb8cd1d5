"""One self-contained report.html per run: inline images and CSS, opens offline."""
from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import yaml

from ..tasks import get
from .plots import plot_curves, read_metrics

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;color:#222;max-width:1000px;margin:0 auto;
padding:24px}
h1{margin:0 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.sub{color:#555}.big{font-size:32px;font-weight:600;margin:12px 0}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 10px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:8px 0;display:block}pre{background:#f6f8fa;padding:12px;overflow-x:auto;font-size:12px}
.finding{border-left:4px solid #ff7f0e;background:#fffaf3;padding:8px 14px;margin:12px 0}
.finding.ok{border-color:#2ca02c;background:#f5fbf5}.finding h3{margin:4px 0}nav a{margin-right:12px}
"""


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def duration(s) -> str:
    s = float(s or 0)
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def esc(x) -> str:
    """Any value as HTML-escaped text."""
    return escape(str(x))


def img(path: Path, alt: str) -> str:
    if not path or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/gif" if path.suffix.lower() == ".gif" else "image/png"
    return f'<img alt="{escape(alt)}" src="data:{mime};base64,{data}">'


def table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _read(run_dir: Path) -> tuple[dict, list[dict], dict]:
    cfg_path, csv_path, sum_path = (run_dir / n for n in ("config.yaml", "metrics.csv", "summary.json"))
    config = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
    rows = read_metrics(csv_path) if csv_path.is_file() else []
    summary = json.loads(sum_path.read_text()) if sum_path.is_file() else {}
    return config, rows, summary


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.html (and the plots it shows into run_dir/plots)."""
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    config, rows, summary = _read(run_dir)
    data, model = summary.get("data") or {}, summary.get("model") or {}
    train = summary.get("train") or {}
    task = get(summary.get("task", config.get("task", "classify")))
    e = esc
    told = task.report(run_dir, summary, rows, config)
    headline, about, parts = told.headline, told.about, told.sections
    curves = told.curves if told.curves is not None else (
        plot_curves(run_dir / "metrics.csv", plots, train.get("best_epoch")) if rows else [])

    epochs = f"{train.get('epochs_run', len(rows))} epochs" + (
        f" (stopped early; best epoch {train.get('best_epoch')})" if train.get("stopped_early")
        else f" (best epoch {train.get('best_epoch')})" if train.get("best_epoch") else "")
    what = [task.name, f"data {data.get('name', config.get('data', '?'))} ({about})",
            f"model {model.get('name', config.get('model', '?'))} ({int(model.get('params') or 0):,} params)",
            epochs, duration(train.get("seconds")),
            f"{train.get('precision', '?')} on {train.get('device', '?')}"]
    speed = train.get("images_per_s") or train.get("patches_per_s")
    if speed:
        what.append(f"{float(speed):,.0f} {'images' if train.get('images_per_s') else 'patches'}/s")
    advice = _advice(run_dir, e)
    ids = [p[0] for p in parts[:2]] + ["curves"] + [p[0] for p in parts[2:]] + ["advice"] * bool(advice) + [
        "diagnosis", "config"]
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepix report: {e(run_dir.name)}"
         f"</title><style>{CSS}</style></head><body>",
         f"<h1>deepix report: {e(run_dir.name)}</h1><div class='sub'>{e(' · '.join(what))}</div>",
         f"<div class='big'>{e(headline)}</div>",
         "<nav>" + "".join(f"<a href='#{a}'>{a.capitalize()}</a>" for a in ids) + "</nav>"]
    for pid, title, body in parts[:2]:
        h.append(f"<h2 id='{pid}'>{e(title)}</h2>{body}")

    h.append("<h2 id='curves'>Training curves</h2>")
    if rows:
        keys = [k for k in rows[0] if k != "epoch"]
        best = [r for r in rows if r.get("epoch") == train.get("best_epoch")]
        shown = [("last", rows[-1])] + [("best", r) for r in best if r is not rows[-1]]
        h.append(table(["", "epoch"] + keys, [[tag, int(r.get("epoch", 0))] + [f"{r.get(k, float('nan')):.4g}" for k in keys]
                                               for tag, r in shown]))
    h += [img(p, p.stem) for p in curves] or ["<p>Fewer than two epochs: no curves to draw.</p>"]
    for pid, title, body in parts[2:]:
        h.append(f"<h2 id='{pid}'>{e(title)}</h2>{body}")

    h.append(advice)
    h.append("<h2 id='diagnosis'>Diagnosis: what to try next</h2>")
    found = task.findings(rows, summary, config)
    for f in found:
        ok = " ok" if f["finding"].startswith("Healthy") else ""
        h.append(f"<div class='finding{ok}'><h3>{e(f['finding'])}</h3><p>{e(f['evidence'])}</p><ul>"
                 + "".join(f"<li>{e(r)}</li>" for r in f["remedies"]) + "</ul></div>")

    h.append("<h2 id='config'>Config</h2>" + table(["setting", "value"], [[k, v] for k, v in config.items()]))
    h.append("</body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(x for x in h if x), encoding="utf-8")
    return out


def _advice(run_dir: Path, e) -> str:
    """The learning curve of `deepix advise RUN --learning-curve`, when there is one: would more data help?"""
    path = run_dir / "advise.json"
    curve = (json.loads(path.read_text()) if path.is_file() else {}).get("learning_curve")
    if not curve:
        return ""
    points = table(["share of the data", "training images", "accuracy", "epochs", "training time"],
                   [[f"{100 * p['fraction']:g}%", f"{p['images']:,}", _pct(p["accuracy"]), p.get("epochs", ""),
                     duration(p["seconds"])] for p in curve["points"]])
    return (f"<h2 id='advice'>Would more data help? The learning curve</h2><p>The run retrained on shares of its "
            f"training data by <code>deepix advise --learning-curve</code>: same model, settings and seed, the "
            f"epochs scaled so that every run sees as many images as this one.</p>{points}"
            f"{img(run_dir / curve.get('plot', 'plots/learning_curve.png'), 'learning curve')}"
            f"<p><b>{e(curve['answer'][0].upper() + curve['answer'][1:])}.</b></p>")
