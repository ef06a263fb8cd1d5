"""The detection sections of a run's report: data, test figures by COCO's evaluator, drawn boxes,
and what to try next, judged from the figures."""
from __future__ import annotations

import math
from pathlib import Path

SIZES = ("small", "medium", "large")
SMALL_DATA = 1000   # training images under which more photos and a pretrained start matter most


def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def parts(summary: dict, plots: Path, e, table, img) -> tuple[str, str, list[tuple[str, str, str]]]:
    data, model = summary.get("data") or {}, summary.get("model") or {}
    test = summary.get("test") or summary.get("val") or {}
    split = "test" if summary.get("test") else "val"
    classes = data.get("classes") or []
    images, boxes = data.get("images") or {}, data.get("boxes") or {}
    per = data.get("boxes_per_class") or {}
    source = data.get("source") or {}
    d = [table(["split", "images", "boxes", "background images"],
               [[s, images[s], boxes.get(s, ""), (data.get("background_images") or {}).get(s, "")] for s in images]),
         table(["class"] + list(per), [[c] + [per[s][i] for s in per] for i, c in enumerate(classes)]),
         f"<p>input {e(data.get('imgsz'))}x{e(data.get('imgsz'))} (letterboxed); boxes clipped to the image: "
         f"{e(source.get('clipped', 0))}, dropped as empty or inverted: {e(source.get('dropped', 0))}</p>"]
    t = [f"<p>{e(split)} split, {e(test.get('evaluator', 'COCO evaluator'))}, max detections "
         f"{e(test.get('max_dets', 100))} per image, predictions scored down to 0.001 at full precision; "
         f"boxes in each image's original pixels. Inference {e(test.get('images_per_s', '?'))} images/s.</p>",
         table(["mAP@[.5:.95]", "mAP@.5", "mAP@.75", "small", "medium", "large", "AR@100"],
               [[_f(test.get(k)) for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                                           "mar_100")]]),
         table(["class", "AP@[.5:.95]", "AP@.5"],
               [[c, _f(v.get("map")), _f(v.get("map50"))] for c, v in (test.get("per_class") or {}).items()]),
         img(plots / "pr_curve.png", "precision-recall"), img(plots / "confusion.png", "confusion matrix"),
         "<h3>Test images: ground truth and detections</h3>", img(plots / "detections.png", "detections"),
         "<h3>What the detector looks at, box by box</h3><p>For each box, Grad-CAM of its class score at the output "
         "point that found it, traced back to the backbone's stride-8 stage: red is where the evidence for that box "
         "lies. <code>deepix explain RUN IMAGE...</code> does the same for your own images.</p>"
         if (plots / "explain_boxes.png").is_file() else "", img(plots / "explain_boxes.png", "per-box maps")]
    taught, base = summary.get("teacher"), summary.get("baseline")
    if taught:
        alone = (f"; the same model trained alone on the same data and epochs ({e(base['run'])}): mAP@.5 "
                 f"<b>{_f(base['map50'])}</b>, <b>{(test.get('map50') or 0) - base['map50']:+.3f}</b> from the teacher"
                 if base else "")
        t.insert(0, f"<p>Distilled from the teacher {e(taught['run'])} ({e(taught['model'])}, {taught['params']:,} "
                    f"parameters, mAP@.5 {_f(taught['map50'])} on the same split) into this "
                    f"{taught['student_params']:,}-parameter model ({taught['student_params'] / taught['params']:.1%}), "
                    f"weight {taught['weight']}: mAP@.5 <b>{_f(test.get('map50'))}</b>{alone}.</p>")
    if test.get("summary_text"):
        t.append(f"<details><summary>COCOeval's own summary</summary><pre>{e(test['summary_text'])}</pre></details>")
    headline = f"{split.capitalize()} mAP@[.5:.95] {_f(test.get('map'))}, mAP@.5 {_f(test.get('map50'))}"
    return (headline, f"{len(classes)} classes, {sum(images.values())} images",
            [("data", "Data", "".join(d)), ("model", "Model", f"<pre>{e(model.get('summary', ''))}</pre>"),
             ("test", "Test", "".join(x for x in t if x))])


def findings(rows: list[dict], summary: dict) -> list[dict]:
    """Plain statements of how good the detector is and what would most likely improve it."""
    test = summary.get("test") or summary.get("val") or {}
    data = summary.get("data") or {}
    out = []
    m50, m75 = test.get("map50") or 0.0, test.get("map75") or 0.0
    level = ("good: most objects are found" if m50 >= 0.8 else
             "usable for counting or flagging, with misses" if m50 >= 0.5 else
             "weak: many objects are missed or mislabelled")
    # mAP@.5 says whether objects are found; whether the boxes fit them is mAP@.75's question
    if m50 >= 0.5:
        level += (", with well-placed boxes" if m75 >= 0.7 * m50 else
                  f", but the boxes are loose (mAP@.75 {m75:.2f})")
    out.append({"finding": f"mAP@.5 {m50:.2f}: {level}",
                "evidence": f"mAP@[.5:.95] {_f(test.get('map'))} (box precision), AR@100 {_f(test.get('mar_100'))}",
                "remedies": []})
    val = [r.get("val_map", float("nan")) for r in rows]
    if len(val) >= 4 and val[-1] > max(val[:-3]) + 0.01:
        out[-1]["remedies"].append(f"Train longer (--epochs {2 * len(rows)}): val mAP was still rising "
                                   f"({val[-4]:.3f} -> {val[-1]:.3f} over the last epochs)")
    train_images = (data.get("images") or {}).get("train") or 0
    if 0 < train_images < SMALL_DATA:
        boxes = (data.get("boxes") or {}).get("train", "?")
        out[-1]["remedies"].append(f"Only {train_images} training images ({boxes} boxes): more labelled photos help "
                                   "most; with few, start from pretrained weights (--weights FILE: a detector's, or "
                                   "a backbone's such as torchvision's resnet50 for tv:retinanet_resnet50_fpn); "
                                   "--augment strong --mosaic 0.5 --multiscale 0.25 only with time for many epochs "
                                   "(they make each epoch harder, and pay off only after many)")
    sizes = {s: test.get(f"map_{s}") for s in SIZES}
    if sizes["small"] is not None and sizes["large"] is not None and sizes["small"] < 0.5 * sizes["large"]:
        out[-1]["remedies"].append(f"Small objects lag (AP {sizes['small']:.2f} vs {sizes['large']:.2f} for large): "
                                   f"a larger input (--imgsz {2 * int(data.get('imgsz') or 320)})")
    per = {c: v.get("map50") for c, v in (test.get("per_class") or {}).items() if v.get("map50") is not None}
    if per and max(per.values()) - min(per.values()) > 0.15:
        worst = min(per, key=per.get)
        counts = (data.get("boxes_per_class") or {}).get("train") or []
        classes = data.get("classes") or []
        n = counts[classes.index(worst)] if worst in classes and counts else "?"
        out[-1]["remedies"].append(f"Class {worst} is the weakest (AP@.5 {per[worst]:.2f}, {n} training boxes): "
                                   "more labelled examples of it")
    cm = test.get("confusion")
    if cm:
        k = len(cm) - 1
        found = sum(cm[i][j] for i in range(k) for j in range(k))
        missed = sum(cm[i][k] for i in range(k))      # rows are the truth, the last column "found nothing"
        false_pos = sum(cm[k][j] for j in range(k))   # the last row: detections of no object
        text = (f"At score 0.25: {found} objects found, {missed} missed and {false_pos} false detections on the "
                "background (confusion matrix)")
        if false_pos > found:
            # the ranking (what mAP scores) can be fine while the cut-off is far too low for use
            text += "; most boxes at that score are false, so predict with a higher --conf (e.g. 0.5)"
        out[-1]["remedies"].append(text)
    model = (summary.get("model") or {}).get("name", "")
    if model == "fcos-s":
        out[-1]["remedies"].append("A wider detector (--width 1.5) if time allows")
    elif not model.startswith("tv:"):
        out[-1]["remedies"].append("A bigger detector (--model fcos-s or --width 1.5) if time allows")
    return out
