"""The pretraining report's sections and diagnosis: what the encoder's features are worth with few
labels, against the same encoder untrained."""
from __future__ import annotations

from pathlib import Path


def parts(summary: dict, plots: Path, e, table, img) -> tuple[str, str, list[tuple[str, str, str]]]:
    data, model, test = summary.get("data") or {}, summary.get("model") or {}, summary.get("test") or {}
    images = data.get("images") or {}
    size = "x".join(map(str, data.get("size") or [])) + f"x{data.get('channels', '?')}"
    rows = test.get("few_labels") or {}
    d = [f"<p>{images.get('train', 0):,} images learned from without their labels"
         + (f"; {images.get('val', 0):,} labelled validation images watch the encoder (k-NN with the training "
            f"labels as memory, a linear probe on 10 per class); the labels never reach the loss" if data.get("classes")
            else "; no labels at all, so the training loss is the only thing watched") + ".</p>",
         "<p>Two views of each image, made on whole batches:</p>", img(plots / "views.png", "views")]
    m = [f"<p>{e(model.get('method', '?'))} on a {e(model.get('name', '?'))} encoder, {model.get('features', '?')}-d "
         f"features. The encoder is saved as weights/encoder.safetensors under the classifier's own tensor names "
         f"(encoder.json rebuilds it); <code>deepix train classify --init RUN</code> starts from it.</p>",
         img(plots / "reconstruction.png", "masked reconstruction"), f"<pre>{e(model.get('summary', ''))}</pre>"]
    t = []
    if rows:
        t.append(f"<p>Accuracy on {test.get('images', '?')} {e(test.get('split', 'test'))} images from the encoder's "
                 f"features with few labels (drawn with the seed), against the same network untrained:</p>")
        t.append(table(["labels per class", "labels", "k-NN", "linear probe", "untrained: k-NN", "untrained: probe",
                        "gain (probe)"],
                       [[k, f"{r['labels']:,}", f"{r['pretrained_knn']:.1%}", f"<b>{r['pretrained_probe']:.1%}</b>",
                         f"{r['random_knn']:.1%}", f"{r['random_probe']:.1%}",
                         f"{(r['pretrained_probe'] - r['random_probe']) * 100:+.1f} points"] for k, r in rows.items()]))
        t.append(img(plots / "embedding.png", "t-SNE of the features"))
    ten = rows.get("10")
    headline = (f"Linear probe with 10 labels per class: {ten['pretrained_probe']:.1%} "
                f"(untrained encoder {ten['random_probe']:.1%})" if ten else
                f"Pretrained {(summary.get('train') or {}).get('epochs_run', '?')} epochs without labels")
    return headline, f"{size}, {'labelled' if data.get('classes') else 'unlabelled'}", [
        ("data", "Data and views", "".join(x for x in d if x)),
        ("model", "Encoder", "".join(x for x in m if x)),
        ("test", "What the unlabelled images bought", "".join(t) or "<p>No labelled images to measure with.</p>")]


def findings(rows: list[dict], summary: dict) -> list[dict]:
    out = []
    test = (summary.get("test") or {}).get("few_labels") or {}
    ten = test.get("10")
    if ten and ten["pretrained_probe"] - ten["random_probe"] < 0.03:
        out.append({"finding": "Pretraining bought little",
                    "evidence": f"with 10 labels per class the probe reads {ten['pretrained_probe']:.1%}, the untrained "
                                f"encoder {ten['random_probe']:.1%}",
                    "remedies": ["train longer: --time-limit 20 (or deepix pretrain --resume RUN --epochs N)",
                                 "another method: --method byol (no negatives; kinder to small batches)",
                                 "stronger views: --augment strong, or a larger --scale / --degrees"]})
    knn = [r["val_knn"] for r in rows if "val_knn" in r]
    if len(knn) >= 4 and knn[-1] < max(knn) - 0.03:
        out.append({"finding": "The features got worse late in training",
                    "evidence": f"k-NN accuracy peaked at {max(knn):.1%} and ended at {knn[-1]:.1%}; the encoder is "
                                "the last epoch's (weights/best.safetensors holds the peak)",
                    "remedies": ["a lower --lr", "--method simclr if this was byol (a collapsing target)",
                                 "--weight-decay 0.0001"]})
    elif len(knn) >= 5 and knn[-1] - knn[-5] > 0.01:
        out.append({"finding": "Still improving",
                    "evidence": f"k-NN accuracy rose from {knn[-5]:.1%} to {knn[-1]:.1%} over the last 5 epochs",
                    "remedies": ["train longer: deepix pretrain --resume RUN --epochs N, or --time-limit 20"]})
    if not out:
        out.append({"finding": "Healthy: the encoder is ready",
                    "evidence": ("the features beat the untrained network's"
                                 + (" and stopped improving" if len(knn) >= 5 else "") if ten else
                                 "no labels to say more than the loss curve does"),
                    "remedies": ["fine-tune: deepix train classify --init RUN --labels-per-class 10",
                                 "or a linear probe: deepix train classify --init RUN --freeze"]})
    return out
