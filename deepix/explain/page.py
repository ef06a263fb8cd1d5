"""explain.html (one self-contained page, images inline) and the words that read its figures."""
from __future__ import annotations

from html import escape as e
from pathlib import Path

from ..report.html import CSS, table

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


def write_page(out: Path, run: Path, r: dict, model_name: str, body: str) -> Path:
    """OUT/explain.html: explain()'s heading and notes, then the task's `body` (its tables and figures)."""
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>deepix explain: {e(run.name)}</title>"
         f"<style>{CSS}</style></head><body>",
         f"<h1>deepix explain: {e(run.name)}</h1>",
         f"<div class='sub'>{e(r['task'])} · model {e(model_name)} · maps at layer <b>{e(r['layer'])}</b>"
         + (f" · asked class <b>{e(r['class'])}</b>" if r.get("class") else "") + "</div>"]
    h += [f"<div class='finding'>{e(n)}</div>" for n in r["notes"]]
    h += [body, "</body></html>"]
    page = out / "explain.html"
    page.write_text("\n".join(h), encoding="utf-8")
    return page
