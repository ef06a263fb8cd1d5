"""The restore report's sections: the data, the model, PSNR / SSIM against the classical methods, panels."""
from __future__ import annotations

from pathlib import Path

from ...report.html import img, table


def parts(summary: dict, plots: Path, e) -> tuple[str, str, list[tuple[str, str, str]]]:
    """Restoration: the PSNR/SSIM table against the classical methods, and before/after panels."""
    data, model, test = summary.get("data") or {}, summary.get("model") or {}, summary.get("test") or {}
    methods = test.get("methods") or {}
    ours = methods.get("deepix", {})
    others = {m: v for m, v in methods.items() if m != "deepix"}
    best = max(others.items(), key=lambda kv: kv[1]["psnr"], default=None)
    headline = f"Test PSNR {ours.get('psnr', float('nan')):.2f} dB"
    if best:
        headline += f" ({ours.get('psnr', 0) - best[1]['psnr']:+.2f} dB over {best[0]})"
    images = data.get("images") or {}
    d = [f"<p>degradation <b>{e(data.get('degrade', '?'))}</b>, {e(data.get('channels', '?'))} channel(s)</p>",
         table(["split", "images"], [[s, ", ".join(v)] for s, v in images.items()])]
    rows = [[m, f"{v['psnr']:.2f}", f"{v['ssim']:.4f}", f"{v['seconds_per_image']:.2f}"] for m, v in
            sorted(methods.items(), key=lambda kv: -kv[1]["psnr"])]
    taught, base = summary.get("teacher"), summary.get("baseline")
    if taught:
        headline += f"; taught by {taught['model']}"
        alone = (f"; the same model trained alone on the same patches and epochs ({e(base['run'])}): "
                 f"<b>{base['psnr']:.2f} dB</b>, <b>{ours.get('psnr', 0) - base['psnr']:+.2f} dB</b> from the teacher"
                 if base else "")
        head = [f"<p>Distilled from the teacher {e(taught['run'])} ({e(taught['model'])}, {taught['params']:,} "
                f"parameters, {taught['teacher_psnr']:.2f} dB here) into this {taught['student_params']:,}-parameter "
                f"model ({taught['student_params'] / taught['params']:.1%}), weight {taught['weight']}: "
                f"<b>{ours.get('psnr', 0):.2f} dB</b>{alone}.</p>"]
    else:
        head = []
    t = head + [f"<p>Mean over the {e(test.get('split', 'test'))} images; every method measured in this run on the "
         "same degraded inputs. PSNR on [0, 1] with outputs clipped; SSIM by scikit-image.</p>",
         table(["method", "PSNR (dB)", "SSIM", "s / image"], rows)]
    per = test.get("per_image") or []
    if per:
        names = list(methods)
        t.append(table(["image"] + names, [[r["image"]] + [f"{r[m]['psnr']:.2f}" for m in names] for r in per]))
    t += [img(p, p.stem) for p in sorted(plots.glob("panel_*.png"))]
    return (headline, f"{data.get('degrade', '')}, {sum(len(v) for v in images.values())} images",
            [("data", "Data", "".join(d)),
             ("model", "Model", f"<pre>{e(model.get('summary', ''))}</pre>"),
             ("test", "Test", "".join(t))])
