"""Explaining a classifier: for images a user names (`deepix explain`), and for the report of every
classify run (filters, feature maps, Grad-CAM on right and wrong test images, the embedding, confusions)."""
from __future__ import annotations

import json
from html import escape as e
import time
from pathlib import Path

import numpy as np
import torch

from ...data.inputs import to_batch
from ...errors import UserError
from ...report import html
from ...explain import figures
from ...explain.cam import grad_cam, integrated_gradients
from ...explain.figures import Cell, as_image, overlay_grid
from ...explain.page import READ_CAMS, READ_EMBEDDING, READ_FEATURES, READ_FILTERS, stage_table
from ...explain.layers import embed, resolve_class, hookable, named_layers, penultimate, pick_target, trace
from ...report.plots import embedding_map
from PIL import Image

EMBED_IMAGES = 1000   # test images in the t-SNE map: enough to see clusters, a second or two on 2 cores
SHOWN = 4             # right and wrong test images with their Grad-CAM in the report
RIGHT, WRONG = "#2ca02c", "crimson"


def stage_rows(stages) -> list[dict]:
    return [{"name": s.name, "layer": s.layer, "shape": list(s.shape), "receptive_field": list(s.rf),
             "step": list(s.jump)} for s in stages]


def first_conv(model, stages):
    conv = next((s for s in stages if s.kind == "conv"), None)
    return (conv.name, dict(named_layers(model))[conv.name].weight) if conv else (None, None)


def _source(img, i: int) -> tuple[str, str | None]:
    """A name for an image, and how it looks before conversion ("64x48 RGB"), when that can be read."""
    if isinstance(img, (str, Path)):
        try:
            with Image.open(img) as f:
                return Path(img).stem, f"{f.width}x{f.height} {f.mode}"
        except (OSError, ValueError):
            return Path(img).stem, None  # the loader says what is wrong with it
    if isinstance(img, Image.Image):
        return f"image{i}", f"{img.width}x{img.height} {img.mode}"
    a = np.asarray(img)
    return f"image{i}", f"array {'x'.join(map(str, a.shape))} {a.dtype}"


def load_images(pred, images) -> tuple[torch.Tensor, list[str], list[str]]:
    """The images as the model takes them, their names, and one line for each that had to be converted."""
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise UserError("no images to explain: give one or more image files")
    mode = "grayscale" if pred.channels == 1 else "RGB"
    want = f"{pred.size[1]}x{pred.size[0]} {'L' if pred.channels == 1 else 'RGB'}"
    names, notes, xs = [], [], []
    for i, im in enumerate(images):
        name, seen = _source(im, i)
        names.append(name)
        xs.append(to_batch([im] if isinstance(im, (str, Path)) else im, pred.channels, pred.size))
        if seen and seen != want:
            notes.append(f"{name}: {seen}, converted to the model's {pred.size[1]}x{pred.size[0]} {mode} input "
                         f"(resized, not cropped)")
    taken = {}
    for i, n in enumerate(names):  # two files of the same name from different folders stay apart
        taken[n] = taken.get(n, 0) + 1
        if taken[n] > 1:
            names[i] = f"{n}_{taken[n]}"
    return torch.cat(xs), names, notes


def explain_images(pred, images, layer: str | None, cls, out: Path) -> dict:
    """Filters, feature maps and class activation maps of a classify run for the given images."""
    t0 = time.perf_counter()
    classes = list(pred.classes)
    cls_idx = resolve_class(cls, classes)
    x, names, notes = load_images(pred, images)
    dev = next(pred.model.parameters()).device
    x = x.to(dev)
    with hookable(pred.model) as model:
        tr = trace(model, x)
        stages, maps = tr.stages, tr.maps
        target, module, where = pick_target(model, x, tr, layer)
        probs = tr.output.float().softmax(1).cpu()
        top = probs.argmax(1)
        cam_p = grad_cam(model, x, module, top.to(dev), where).cpu()
        ig_p = integrated_gradients(model, x, top.to(dev)).cpu()
        if cls_idx is not None:
            cam_c = grad_cam(model, x, module, cls_idx, where).cpu()
            ig_c = integrated_gradients(model, x, cls_idx).cpu()
        conv_name, weight = first_conv(model, stages)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {"filters": figures.filters_grid(weight, out / "filters.png", conv_name)}
    results = []
    for i, name in enumerate(names):
        img = as_image(x[i])
        p = classes[int(top[i])]
        row = [Cell(img, "input"), Cell(img, f"Grad-CAM: {p} ({probs[i, top[i]]:.0%})", cam_p[i].numpy()),
               Cell(img, f"integrated gradients: {p}", ig_p[i].numpy())]
        if cls_idx is not None:
            c = classes[cls_idx]
            row += [Cell(img, f"Grad-CAM: {c} ({probs[i, cls_idx]:.0%})", cam_c[i].numpy()),
                    Cell(img, f"integrated gradients: {c}", ig_c[i].numpy())]
        pngs[f"{name}_maps"] = overlay_grid([row], out / f"{name}_maps.png", cell=2.2)
        pngs[f"{name}_features"] = figures.feature_maps(x[i].cpu(), stages, {k: v[i:i + 1] for k, v in maps.items()},
                                                        out / f"{name}_features.png")
        results.append({"image": name, "class": p, "probability": float(probs[i, top[i]]),
                        "top": [{"class": classes[j], "probability": float(probs[i, j])}
                                for j in probs[i].topk(min(3, len(classes))).indices.tolist()]}
                       | ({"asked": {"class": classes[cls_idx], "probability": float(probs[i, cls_idx])}}
                          if cls_idx is not None else {}))
    return {"task": "classify", "layer": target, "class": None if cls_idx is None else classes[cls_idx],
            "predictions": results, "notes": notes, "stages": stage_rows(stages), "pngs": pngs,
            "input": {"channels": pred.channels, "size": list(pred.size)},
            "seconds": round(time.perf_counter() - t0, 2)}


def page_body(r: dict, out: Path) -> str:
    """explain.html's part for a classifier: the predictions, the filters, the stages and each image's maps."""
    png = lambda key: out / Path(r["pngs"][key]).name  # noqa: E731
    asked = r.get("class")
    h = ["<h2>Predictions</h2>" + html.table(
        ["image", "predicted", "probability", "next"] + ([f"p({asked})"] if asked else []),
        [[p["image"], p["class"], f"{p['probability']:.1%}",
          ", ".join(f"{t['class']} {t['probability']:.1%}" for t in p["top"][1:])]
         + ([f"{p['asked']['probability']:.1%}"] if asked else []) for p in r["predictions"]])]
    h.append(f"<h2>First-layer filters</h2><p>{e(READ_FILTERS)}</p>{html.img(png('filters'), 'filters')}")
    h.append(f"<h2>The stages: from pixels to classes</h2><p>{e(READ_FEATURES)}</p>{stage_table(r['stages'])}")
    h.append(f"<p>{e(READ_CAMS)}</p>")
    for p in r["predictions"]:
        h.append(f"<h2>{e(p['image'])}: {e(p['class'])} ({p['probability']:.1%})</h2>"
                 + html.img(png(f"{p['image']}_maps"), "class activation maps")
                 + html.img(png(f"{p['image']}_features"), "feature maps"))
    return "\n".join(h)


# -- the classify report's section

def _pick(ok: torch.Tensor, conf: torch.Tensor, y: torch.Tensor, n: int) -> list[int]:
    """n of the images where `ok`, the surest first, one per class before any class repeats."""
    idx = torch.nonzero(ok).flatten()
    idx = idx[conf[idx].argsort(descending=True)]
    first, rest, seen = [], [], set()
    for i in idx.tolist():
        (rest if int(y[i]) in seen else first).append(i)
        seen.add(int(y[i]))
    return (first + rest)[:n]


def report_figures(run: Path, model: torch.nn.Module, classes: list[str], x_u8: torch.Tensor | None,
                   out: torch.Tensor, y: torch.Tensor) -> dict | None:
    """The figures of the report's "What the network looks at" into RUN/plots/explain_*.png and what they
    show into RUN/explain.json; nothing for data streamed from disk (no test images in memory)."""
    if x_u8 is None or len(x_u8) == 0:
        return None
    t0 = time.perf_counter()
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    dev = next(model.parameters()).device
    n = min(len(x_u8), EMBED_IMAGES)
    x = x_u8[:n].to(dev).float().div(255)
    out_all, y_all = out.float().cpu(), y.cpu()
    probs = out_all[:n].softmax(1)
    conf, pred = probs.max(1)
    y = y_all[:n]
    info: dict = {"images": n, "figures": {}}
    with hookable(model) as m:
        right, wrong = _pick(pred == y, conf, y, SHOWN), _pick(pred != y, conf, y, SHOWN)
        sample = (right or [0])[0]
        tr = trace(m, x[sample:sample + 1])
        stages, maps = tr.stages, tr.maps
        info["stages"] = stage_rows(stages)
        if any(s.kind == "conv" for s in stages):
            target, module, where = pick_target(m, x, tr, None)
            info["layer"] = target
            name, weight = first_conv(m, stages)
            info["figures"]["filters"] = figures.filters_grid(weight, plots / "explain_filters.png", name).name
            info["figures"]["features"] = figures.feature_maps(
                x[sample].cpu(), stages, maps, plots / "explain_features.png",
                caption=f"test image {sample}: true {classes[y[sample]]}, predicted {classes[pred[sample]]}").name
            picks = torch.tensor(right + wrong, dtype=torch.long)
            if len(picks):
                cam_p = grad_cam(m, x[picks], module, pred[picks].to(dev), where).cpu()
                cam_t = grad_cam(m, x[picks], module, y[picks].to(dev), where).cpu()
                rows = []
                for r in range(max(len(right), len(wrong))):
                    row = []
                    if r < len(right):
                        i = right[r]
                        img = as_image(x[i])
                        row += [Cell(img, f"{classes[y[i]]}", color=RIGHT),
                                Cell(img, f"Grad-CAM {classes[pred[i]]} {conf[i]:.0%}", cam_p[r].numpy(), RIGHT)]
                    else:
                        row += [Cell(None), Cell(None)]
                    if r < len(wrong):
                        i, k = wrong[r], len(right) + r
                        img = as_image(x[i])
                        row += [Cell(img, f"true {classes[y[i]]}", color=WRONG),
                                Cell(img, f"Grad-CAM {classes[pred[i]]} {conf[i]:.0%}", cam_p[k].numpy(), WRONG),
                                Cell(img, f"Grad-CAM {classes[y[i]]} (true)", cam_t[k].numpy())]
                    rows.append(row)
                info["figures"]["gradcam"] = overlay_grid(rows, plots / "explain_gradcam.png").name
                info["gradcam"] = {"right": right, "wrong": wrong}
        if penultimate(m) is not None and n >= 20:
            feats, _ = embed(m, x)
            info["figures"]["embedding"] = embedding_map(
                feats, y, classes, plots / "explain_embedding.png",
                f"t-SNE of the penultimate layer ({n} test images)", wrong=(pred != y).numpy(),
                iterations=500).name
            info["embedding"] = {"features": int(feats.shape[1]), "misclassified": int((pred != y).sum())}
    info["figures"]["confused"], info["confused"] = confused_pairs(x_u8, y_all, out_all.argmax(1), classes, plots)
    info["seconds"] = round(time.perf_counter() - t0, 2)
    (run / "explain.json").write_text(json.dumps(info, indent=1))
    return info


def confused_pairs(x_u8, y, pred, classes, plots: Path, pairs: int = 3, each: int = 4):
    """The most confused pairs of classes (errors both ways), with up to `each` test images of each way."""
    k = len(classes)
    cm = torch.zeros(k, k, dtype=torch.long)
    cm.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    found = sorted(((int(cm[i, j] + cm[j, i]), i, j) for i in range(k) for j in range(i + 1, k)
                    if cm[i, j] + cm[j, i] > 0), reverse=True)[:pairs]
    if not found:
        return None, []
    rows, facts = [], []
    for total, a, b in found:
        row = []
        for t, p in ((a, b), (b, a)):
            idx = torch.nonzero((y == t) & (pred == p)).flatten()[:each].tolist()
            row += [Cell(as_image(x_u8[i].float().div(255)), f"{classes[t]} as {classes[p]}", color=WRONG)
                    for i in idx] + [Cell(None)] * (each - len(idx))
        rows.append(row)
        facts.append({"pair": [classes[a], classes[b]], "errors": total, "a_as_b": int(cm[a, b]),
                      "b_as_a": int(cm[b, a])})
    return overlay_grid(rows, plots / "explain_confused.png", cell=1.2).name, facts


def report_section(run: Path) -> str:
    """The report's "What the network looks at" from RUN/explain.json and its plots; '' when there is none."""
    path = run / "explain.json"
    if not path.is_file():
        return ""
    info = json.loads(path.read_text())
    fig = lambda key, alt: html.img(run / "plots" / info["figures"][key], alt) if info["figures"].get(key) else ""  # noqa: E731
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
