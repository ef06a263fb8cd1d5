"""explain.html (one self-contained page, images inline) and the report's "What the network looks at"."""
from __future__ import annotations

import json
from html import escape as e
from pathlib import Path

from ..report.html import CSS, img, table

READ_FILTERS = ("Each square is one kernel of the first convolution, scaled on its own: white weights add "
                "the pixel under them, black ones subtract it. Edge and stroke detectors look like a bright band "
                "beside a dark one; noisy, patternless kernels mean that layer learned little.")
READ_FEATURES = ("The convolution kernel slides over the image and each position gives one value of a new "
                 "feature map: one map per kernel. Each row is a stage, its strongest channels (highest mean "
                 "response; bright: high), labelled with the stage's output (channels x height x width) and its "
                 "receptive field (RF): how many input pixels one value of that map can see. Pooling halves the "
                 "maps and so doubles what each later kernel covers; deeper maps are coarser and respond to parts "
                 "rather than strokes.")
READ_CAMS = ("Grad-CAM weighs the target layer's channels by how much each raises the class's score and sums "
             "them: red is where the evidence for that class lies, at the layer's resolution. Integrated gradients "
             "credits each input pixel by integrating the score's gradient on the way from a black image to this "
             "one: finer, noisier. Asked for another class, the maps say what speaks for that class.")
READ_EMBEDDING = ("Each test image is a dot, placed by t-SNE so that images the network's penultimate layer sees "
                  "as alike lie together, coloured by their true class; black rings mark the misclassified. Tight, "
                  "separate clusters mean the classes are easy for the last layer; rings inside another class's "
                  "cluster are images that look like that class to the network (or carry a wrong label).")


def _px(pair: list[int]) -> str:
    return f"{pair[0]} px" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]} px"


def stage_table(stages: list[dict]) -> str:
    return table(["layer", "what", "output (C x H x W)", "receptive field", "step"],
                  [[s["name"], s["layer"], " x ".join(map(str, s["shape"])), _px(s["receptive_field"]),
                    _px(s["step"])] for s in stages])


def write_page(out: Path, run: Path, r: dict, model_name: str) -> Path:
    """OUT/explain.html from explain()'s result."""
    png = lambda key: out / Path(r["pngs"][key]).name  # noqa: E731
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepix explain: {e(run.name)}</title>"
         f"<style>{CSS}</style></head><body>",
         f"<h1>deepix explain: {e(run.name)}</h1>",
         f"<div class='sub'>{e(r['task'])} · model {e(model_name)} · maps at layer <b>{e(r['layer'])}</b>"
         + (f" · asked class <b>{e(r['class'])}</b>" if r.get("class") else "") + "</div>"]
    h += [f"<div class='finding'>{e(n)}</div>" for n in r["notes"]]
    if r["task"] == "detect":
        h.append("<h2>Boxes</h2>" + table(["image", "class", "score", "box (x1, y1, x2, y2)"], [
            [p["image"], b["class"], f"{b['score']:.2f}", ", ".join(f"{v:.0f}" for v in b["box"])]
            for p in r["predictions"] for b in p["boxes"]]))
        h.append("<p>For each box, Grad-CAM of its class score at the point of the output that found it: where the "
                 "evidence for that box lies. Boxes drawn in the letterboxed image the detector saw.</p>")
        h += [f"<h2>{e(p['image'])}</h2>" + img(png(f"{p['image']}_boxes"), p["image"])
              for p in r["predictions"] if f"{p['image']}_boxes" in r["pngs"]]
    else:
        asked = r.get("class")
        h.append("<h2>Predictions</h2>" + table(
            ["image", "predicted", "probability", "next"] + ([f"p({asked})"] if asked else []),
            [[p["image"], p["class"], f"{p['probability']:.1%}",
              ", ".join(f"{t['class']} {t['probability']:.1%}" for t in p["top"][1:])]
             + ([f"{p['asked']['probability']:.1%}"] if asked else []) for p in r["predictions"]]))
        h.append(f"<h2>First-layer filters</h2><p>{e(READ_FILTERS)}</p>{img(png('filters'), 'filters')}")
        h.append(f"<h2>The stages: from pixels to classes</h2><p>{e(READ_FEATURES)}</p>{stage_table(r['stages'])}")
        h.append(f"<p>{e(READ_CAMS)}</p>")
        for p in r["predictions"]:
            h.append(f"<h2>{e(p['image'])}: {e(p['class'])} ({p['probability']:.1%})</h2>"
                     + img(png(f"{p['image']}_maps"), "class activation maps")
                     + img(png(f"{p['image']}_features"), "feature maps"))
    h.append("</body></html>")
    page = out / "explain.html"
    page.write_text("\n".join(h), encoding="utf-8")
    return page


def report_section(run: Path) -> str:
    """The classify report's section from RUN/explain.json and its plots; '' when there is none."""
    path = run / "explain.json"
    if not path.is_file():
        return ""
    info = json.loads(path.read_text())
    fig = lambda key, alt: img(run / "plots" / info["figures"][key], alt) if info["figures"].get(key) else ""  # noqa: E731
    h = []
    if info["figures"].get("filters"):
        h.append(f"<h3>First-layer filters</h3><p>{e(READ_FILTERS)}</p>{fig('filters', 'filters')}")
        h.append(f"<h3>One test image, stage by stage</h3><p>{e(READ_FEATURES)}</p>{stage_table(info['stages'])}"
                 f"{fig('features', 'feature maps')}")
    else:
        h.append("<p>The model has no convolution: no filters, feature maps or Grad-CAM to show.</p>")
    if info["figures"].get("gradcam"):
        h.append(f"<h3>Where it looks: Grad-CAM at layer {e(info['layer'])}</h3><p>Left, green: the surest right "
                 f"test predictions; right, red: the surest wrong ones, with the map of the predicted class and of "
                 f"the true one. {e(READ_CAMS.split('. Integrated')[0])}.</p>{fig('gradcam', 'Grad-CAM')}")
    if info["figures"].get("embedding"):
        emb = info["embedding"]
        h.append(f"<h3>The embedding</h3><p>{e(READ_EMBEDDING)} {emb['features']} features per image, "
                 f"{emb['misclassified']} of {info['images']} misclassified.</p>{fig('embedding', 'embedding')}")
    if info.get("confused"):
        pairs = "; ".join(f"{c['pair'][0]} / {c['pair'][1]}: {c['errors']} errors ({c['pair'][0]} as {c['pair'][1]} "
                          f"{c['a_as_b']}, {c['pair'][1]} as {c['pair'][0]} {c['b_as_a']})" for c in info["confused"])
        h.append(f"<h3>The most confused pairs</h3><p>{e(pairs)}. Each row: test images of one pair, both "
                 f"ways.</p>{fig('confused', 'confused pairs')}")
    h.append(f"<p class='sub'>Made in {info.get('seconds', 0):.1f} s after training; "
             f"<code>deepix explain RUN IMAGE...</code> does the same for your own images.</p>")
    return "".join(h)
