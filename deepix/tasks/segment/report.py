"""The segmentation sections of a run's report: the data and its class imbalance, the test figures per class,
masks over test images, the worst images, and what to try next, judged from the figures."""
from __future__ import annotations

from pathlib import Path


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def parts(summary: dict, plots: Path, e, table, img):
    data, model = summary.get("data") or {}, summary.get("model") or {}
    test = summary.get("test") or summary.get("val") or {}
    split = "test" if summary.get("test") else "val"
    classes = data.get("classes") or []
    images, pixels = data.get("images") or {}, data.get("pixels_per_class") or {}
    train_pixels = pixels.get("train") or [0] * len(classes)
    total = max(1, sum(train_pixels))
    d = [table(["split", "images"], [[s, n] for s, n in images.items()]),
         table(["class", "share of the training pixels"] + list(pixels),
               [[c, f"{train_pixels[i] / total:.2%}"] + [pixels[s][i] for s in pixels] for i, c in enumerate(classes)]),
         f"<p>trained at {e(data.get('imgsz'))}x{e(data.get('imgsz'))}; void (index {e(data.get('ignore_index'))}) "
         "counts in no loss or figure</p>"]
    iou, dice = test.get("iou_per_class") or {}, test.get("dice_per_class") or {}
    absent = test.get("absent") or []
    found = test.get("objects_found") or {}
    t = [f"<p>{e(split)} split, scored at each image's own size; mean over the classes present "
         f"{'(left out, absent from truth and prediction: ' + e(', '.join(absent)) + ')' if absent else ''}. "
         f"Inference {e(test.get('images_per_s', '?'))} images/s.</p>",
         table(["mIoU", "pixel accuracy", "mean Dice", "boundary accuracy", "interior accuracy",
                "small objects found", "large objects found"],
               [[_f(test.get("miou")), _f(test.get("pixel_accuracy")), _f(test.get("dice")),
                 _f(test.get("boundary_accuracy")), _f(test.get("interior_accuracy")),
                 _f((found.get("small") or {}).get("share")), _f((found.get("large") or {}).get("share"))]]),
         table(["class", "IoU", "Dice"], [[c, "absent" if iou.get(c) is None else _f(iou.get(c)), _f(dice.get(c))]
                                          for c in classes]),
         img(plots / "iou_per_class.png", "IoU per class"), img(plots / "confusion.png", "pixel confusion matrix"),
         "<h3>Test images: truth and prediction</h3>", img(plots / "masks.png", "masks"),
         "<h3>The worst test images by IoU</h3>", img(plots / "worst.png", "worst images")]
    headline = f"{split.capitalize()} mIoU {_f(test.get('miou'))}, pixel accuracy {_f(test.get('pixel_accuracy'))}"
    return (headline, f"{len(classes)} classes, {sum(images.values())} images",
            [("data", "Data", "".join(d)), ("model", "Model", f"<pre>{e(model.get('summary', ''))}</pre>"),
             ("test", "Test", "".join(x for x in t if x))])


def findings(rows: list[dict], summary: dict) -> list[dict]:
    """How good the masks are, and the classic failures with the flags to try."""
    test = summary.get("test") or summary.get("val") or {}
    data = summary.get("data") or {}
    m = test.get("miou") or 0.0
    level = ("good: most pixels get their class" if m >= 0.8 else "usable, with visible errors" if m >= 0.5
             else "weak: large areas get the wrong class")
    out = [{"finding": f"mIoU {m:.2f}: {level}",
            "evidence": f"pixel accuracy {_f(test.get('pixel_accuracy'))}, mean Dice {_f(test.get('dice'))}",
            "remedies": []}]
    val = [r.get("val_miou", float("nan")) for r in rows]
    if len(val) >= 4 and val[-1] > max(val[:-3]) + 0.01:
        out[0]["remedies"].append(f"Train longer (--epochs {2 * len(rows)}): val mIoU was still rising "
                                  f"({val[-4]:.3f} -> {val[-1]:.3f} over the last epochs)")
    classes = data.get("classes") or []
    cm = test.get("confusion")
    if cm:
        never = [classes[j] for j in range(len(classes)) if sum(r[j] for r in cm) == 0 and sum(cm[j]) > 0]
        if never:
            share = data.get("pixels_per_class", {}).get("train") or []
            total = max(1, sum(share))
            out.append({"finding": f"Never predicted: {', '.join(never)}",
                        "evidence": ", ".join(f"{c} holds {share[classes.index(c)] / total:.2%} of the training pixels"
                                              for c in never if share),
                        "remedies": ["Weigh the rare classes up: --class-weights auto",
                                     "A loss that counts every class alike: --loss cross-entropy+dice",
                                     "More labelled images that show them"]})
    small = (test.get("objects_found") or {}).get("small") or {}
    large = (test.get("objects_found") or {}).get("large") or {}
    if small.get("share") is not None and large.get("share") and small["share"] < large["share"] - 0.15:
        out.append({"finding": f"Small objects are missed: {small['share']:.0%} found against {large['share']:.0%} "
                               "of the large",
                    "evidence": f"{small['found']} of {small['objects']} objects under 1% of their image's pixels",
                    "remedies": [f"A larger input (--imgsz {2 * int(data.get('imgsz') or 128)})",
                                 "--loss cross-entropy+dice, which does not let a small object's few pixels drown"]})
    b, i = test.get("boundary_accuracy"), test.get("interior_accuracy")
    if b is not None and i is not None and b < i - 0.15:
        out.append({"finding": f"Blurred boundaries: {b:.0%} of the pixels along the true edges are right against "
                               f"{i:.0%} inside the regions",
                    "evidence": "accuracy within 2 pixels of a true boundary",
                    "remedies": [f"A larger input (--imgsz {2 * int(data.get('imgsz') or 128)}) keeps the edges' "
                                 "pixels", "Train longer; a wider model (--width 1.5)"]})
    return out
