"""The classify report's sections: data per class, the model, the test figures, what the network looks at."""
from __future__ import annotations

from pathlib import Path

from ...report.html import img, table
from ...report.plots import plot_class_counts, plot_confusion
from .explain import report_section


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def parts(summary: dict, plots: Path, e) -> tuple[str, str, list[tuple[str, str, str]]]:
    """The headline, a data description, and (id, title, html) sections: data, model, then test."""
    data, model, test = summary.get("data") or {}, summary.get("model") or {}, summary.get("test") or {}
    classes = [str(c) for c in data.get("classes") or []]
    counts = data.get("counts") or {}
    counts_png = plot_class_counts(counts, classes, plots / "class_counts.png") if counts and classes else None
    cm = test.get("confusion")
    cm_png = plot_confusion(cm, classes, plots / "confusion.png") if cm and classes else None
    size = "x".join(map(str, data.get("size") or [])) + (f"x{data['channels']}" if data.get("channels") else "")

    d = []
    splits = [s for s in ("train", "val", "test") if counts.get(s)]
    if classes and splits:
        per = [[c] + [counts[s][i] for s in splits] + [sum(counts[s][i] for s in splits)]
               for i, c in enumerate(classes)]
        per.append(["total"] + [sum(counts[s]) for s in splits] + [sum(sum(counts[s]) for s in splits)])
        d.append(table(["class"] + splits + ["total"], per))
    d += [img(counts_png, "images per class"), img(plots / "samples.png", "sample training images")]

    t = [f"<p>accuracy <b>{e(_pct(test.get('accuracy')))}</b> · top-5 "
         f"{e(_pct(test.get('top5')))} · loss {e(_num(test.get('loss')))}</p>"]
    base, labelled = summary.get("baseline"), (data.get("info") or {}).get("labelled")
    if labelled:
        d.insert(0, f"<p>Trained on {labelled['images']:,} labelled images of the {labelled['of']:,} (drawn per class "
                    f"with the seed), each seen {labelled['repeats_per_epoch']}x per epoch.</p>")
    taught = summary.get("teacher")
    if taught:
        t.insert(1, f"<p>Distilled from the teacher {e(taught['run'])} ({e(taught['model'])}, "
                    f"{taught['params']:,} parameters, test accuracy {e(_pct(taught['accuracy']))}) into this "
                    f"{taught['student_params']:,}-parameter model ({taught['student_params'] / taught['params']:.1%} "
                    f"of the teacher's), weight {taught['weight']}, temperature {taught['temperature']}.</p>")
    if base:
        gain = (test.get("accuracy", 0) - base["accuracy"]) * 100
        how = ("Taught", "the same model trained alone", "from the teacher") if taught else \
            ("From the pretrained encoder", "the same training from scratch", "bought by the pretraining")
        t.insert(1, f"<p>{how[0]}: <b>{e(_pct(test.get('accuracy')))}</b>; {how[1]} on the same labels and epochs "
                    f"({e(base['run'])}): <b>{e(_pct(base['accuracy']))}</b>, <b>{gain:+.1f} points</b> {how[2]}.</p>")
    pc = test.get("per_class") or {}
    if pc and classes:
        support = [sum(r) for r in cm] if cm else [""] * len(classes)
        t.append(table(["class", "precision", "recall", "F1", "support"],
                        [[c] + [f"{pc[m][i]:.3f}" for m in ("precision", "recall", "f1")] + [support[i]]
                         for i, c in enumerate(classes)]))
    t += [img(cm_png, "confusion matrix"), "<h3>Misclassified test images</h3>" if
          (plots / "misclassified.png").is_file() else "", img(plots / "misclassified.png", "misclassified")]
    vs = f" ({'alone' if taught else 'from scratch'} on the same labels: {_pct(base['accuracy'])})" if base else ""
    looks = report_section(plots.parent)
    return (f"Test accuracy {_pct(test.get('accuracy'))}{vs}", f"{len(classes)} classes, {size}",
            [("data", "Data", "".join(x for x in d if x)),
             ("model", "Model", f"<pre>{e(model.get('summary', ''))}</pre>"),
             ("test", "Test", "".join(x for x in t if x))]
            + ([("explain", "What the network looks at", looks)] if looks else []))


