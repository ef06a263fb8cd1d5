"""The locate report: the agent beside the baselines on the test images, a GIF of searches, the histogram of
steps per found object; the diagnosis of the learning curves is navigate's (the same RL core)."""
from __future__ import annotations

from pathlib import Path

from ...report.html import esc, img, table
from ..base import Report


def parts(run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
    data, test, model = summary.get("data") or {}, summary.get("test") or {}, summary.get("model") or {}
    plots = run / "plots"
    n, objs = data.get("images") or {}, data.get("objects") or {}
    d = (f"<p>{esc(data.get('name', '?'))} ({esc(data.get('note', ''))}): {n.get('train', '?')} training images with "
         f"{objs.get('train', '?')} objects, {n.get('val', '?')} validation and {n.get('test', '?')} test images. The "
         "agent starts from the whole image and moves, scales and reshapes its box by 20% a step, or triggers; a "
         "transform earns the sign of its IoU change with the nearest object not yet found, a trigger +3 at IoU 0.6 "
         "and -3 below; the triggered region is then masked and the search starts again for the next object.</p>")
    bc = config.get("bc", 0)
    m = (f"<p>A small CNN on the 64x64 crop under the box, with its last 10 actions, {model.get('params', 0):,} "
         "parameters. " + (f"The first {bc:.0%} of the epochs follow DAgger: the oracle (which knows the boxes) names "
                           "the best action in each state the agent reaches, and the agent learns it; " if bc else "")
         + f"then PPO on {config.get('envs')} environments; {summary.get('frames', 0):,} environment frames.</p>"
         f"<pre>{esc(model.get('summary', ''))}</pre>")
    t = []
    searchers = test.get("searchers") or {}
    if searchers:
        t.append(f"<p>{test['images']} test images, {test['objects']} objects; each searcher searches the same "
                 "images, at most 20 steps per object. Boxes are scored for AP by the agent's probability of "
                 "triggering.</p>")
        t.append(table(["searcher", "recall@0.5", "AP50", "AP", "mean IoU", "steps per found object", "ms per image"],
                       [[k, f"{r['recall50']:.1%}", f"{r['ap50']:.3f}", f"{r['ap']:.3f}", f"{r['mean_iou']:.3f}",
                         "-" if r["steps_per_object"] is None else f"{r['steps_per_object']:.1f}",
                         f"{r['ms_per_image']:.1f}"] for k, r in searchers.items()]))
        t.append(img(plots / "search.gif", "search episodes") + img(plots / "steps.png", "steps per object"))
    t.append(img(plots / "episodes.png", "training episodes"))
    a = searchers.get("agent")
    headline = (f"Test recall@0.5 {a['recall50']:.1%} within 20 steps per object, AP50 {a['ap50']:.3f} "
                f"(centre box {searchers['centre box']['recall50']:.1%})" if a else "locate run")
    return Report(headline, f"{data.get('name', '?')} boxes", [("data", "Images and episodes", d),
                                                              ("model", "Searcher", m),
                                                              ("test", "On the test images", "".join(t))])
