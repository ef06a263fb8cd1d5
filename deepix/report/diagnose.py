"""Read a run's curves and counts, and say what went wrong and what to try next."""
from __future__ import annotations

import math

from .fit import column as _col, epoch_numbers as _epochs, fit_verdict

SPIKE_FACTOR = 1.5           # a loss this many times both neighbours' is a spike
MIN_PER_CLASS = 50           # train images per class below which a model from scratch struggles
IMBALANCE_RATIO = 3.0        # largest over smallest class count in train
CONFUSED_PAIRS = 3           # how many confused pairs to report


def _finding(finding: str, evidence: str, remedies: list[str]) -> dict:
    return {"finding": finding, "evidence": evidence, "remedies": remedies}


def _instability(rows: list[dict]) -> list[dict]:
    epochs = _epochs(rows)
    tl, vl, lr = _col(rows, "train_loss"), _col(rows, "val_loss"), _col(rows, "lr")
    peak_lr = max((x for x in lr if math.isfinite(x)), default=math.nan)
    n = len(rows)
    bad = [epochs[i] for i in range(n) if not (math.isfinite(tl[i]) and math.isfinite(vl[i]))]
    spikes = [f"{name} loss {s[i]:.3g} at epoch {epochs[i]} (neighbours {s[i-1]:.3g}, {s[i+1]:.3g})"
              for name, s in (("train", tl), ("val", vl)) for i in range(1, n - 1)
              if all(map(math.isfinite, s[i - 1:i + 2])) and s[i] > SPIKE_FACTOR * max(s[i - 1], s[i + 1])]
    if not (bad or spikes):
        return []
    evidence = "; ".join(([f"loss is NaN/inf at epoch(s) {', '.join(map(str, bad))}"] if bad else []) + spikes[:3])
    lower = f" (--lr {peak_lr / 3:.2g}; peak was {peak_lr:.2g})" if math.isfinite(peak_lr) else " (--lr)"
    return [_finding("Unstable training", evidence, [
        "Lower the learning rate" + lower,
        "Clip gradients (--grad-clip 1.0)",
        "Warm up the learning rate (--warmup-epochs 1)"])]


FIT_TITLES = {"overfitting": "Overfitting: the model memorises the training set",
              "underfitting": "Underfitting: the model has not learned the training set yet",
              "good fit": "Healthy: a good fit, train and val curves agree and settle",
              "unknown": "Fit: not enough to judge"}


def _fit_finding(verdict: dict) -> list[dict]:
    """The verdict as a finding: its evidence, then its remedies in order, the first with why it is first."""
    if verdict["verdict"] == "unknown" and not verdict["remedies"]:
        return []
    remedies = [f"{r['remedy']} ({r['flag']})" for r in verdict["remedies"]]
    if remedies and verdict.get("first_because"):
        remedies[0] += f": try this first, because {verdict['first_because']}"
    return [_finding(FIT_TITLES[verdict["verdict"]], "; ".join(verdict["evidence"]) or verdict["headline"],
                     remedies)]


def _data_findings(summary: dict) -> list[dict]:
    data = summary.get("data") or {}
    classes = data.get("classes") or []
    train = (data.get("counts") or {}).get("train") or []
    out = []
    if not train:
        return out
    name = lambda i: str(classes[i]) if i < len(classes) else str(i)  # noqa: E731
    few = [i for i, c in enumerate(train) if c < MIN_PER_CLASS]
    if few:
        listed = ", ".join(f"{name(i)}: {train[i]}" for i in sorted(few, key=lambda i: train[i])[:8])
        out.append(_finding("Too few images per class", f"{len(few)} of {len(train)} classes have fewer than "
                            f"{MIN_PER_CLASS} training images ({listed}{', ...' if len(few) > 8 else ''})", [
            "Collect more images of these classes",
            "Augmentation (--augment strong) to stretch the images you have",
            "Start from pretrained weights (--weights FILE) instead of from scratch"]))
    lo, hi = min(range(len(train)), key=train.__getitem__), max(range(len(train)), key=train.__getitem__)
    if train[lo] == 0 or train[hi] / train[lo] > IMBALANCE_RATIO:
        ratio = "no images" if train[lo] == 0 else f"{train[hi] / train[lo]:.1f}x fewer"
        out.append(_finding("Class imbalance", f"largest class {name(hi)} has {train[hi]} training images, "
                            f"smallest {name(lo)} has {train[lo]} ({ratio}; threshold {IMBALANCE_RATIO:g}x)", [
            "Weight the loss by inverse class frequency, or oversample the rare classes",
            f"Collect more images of the rare classes (starting with {name(lo)})",
            "Judge the model by per-class recall and F1, not accuracy alone"]))
    return out


def _confusion_findings(summary: dict) -> list[dict]:
    test = summary.get("test") or {}
    cm, classes = test.get("confusion") or [], (summary.get("data") or {}).get("classes") or []
    k = len(cm)
    name = lambda i: str(classes[i]) if i < len(classes) else str(i)  # noqa: E731
    pairs = sorted(((cm[i][j] + cm[j][i], i, j) for i in range(k) for j in range(i + 1, k)
                    if cm[i][j] + cm[j][i] > 0), reverse=True)[:CONFUSED_PAIRS]
    if not pairs:
        return []
    total = sum(map(sum, cm))
    errors = total - sum(cm[i][i] for i in range(k))
    ev = "; ".join(f"{name(i)} <-> {name(j)}: {n} ({name(i)} as {name(j)} {cm[i][j]}, {name(j)} as {name(i)} "
                   f"{cm[j][i]})" for n, i, j in pairs)
    return [_finding("Most confused classes", f"{ev}; {errors} errors in {total} test images", [
        "Look at misclassified.png: are the labels right, are the classes truly distinct?",
        "More (and more varied) training images of these classes",
        "A higher input resolution (--imgsz) if the difference is in fine detail"])]


def diagnose(rows: list[dict], summary: dict, config: dict | None = None) -> list[dict]:
    """Findings about a run, each with evidence from its curves and remedies to try; the fit verdict
    (overfitting, underfitting or a good fit) is one of them, its remedies ranked with the run's own values."""
    unstable = _instability(rows)
    fit = _fit_finding(fit_verdict(rows, summary, config)) if rows else []
    if unstable:  # a good fit is no news beside a broken curve
        fit = [f for f in fit if not f["finding"].startswith("Healthy")]
    return unstable + fit + _data_findings(summary) + _confusion_findings(summary)
