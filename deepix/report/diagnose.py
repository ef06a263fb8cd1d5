"""Read a run's curves and counts, and say what went wrong and what to try next."""
from __future__ import annotations

import math

OVERFIT_VAL_RISE = 0.10      # val loss this far (relative) above its minimum at the end
OVERFIT_ACC_GAP = 0.10       # train minus val accuracy at the last epoch
UNDERFIT_TRAIN_ACC = 0.70    # train accuracy below this at the last epoch
STEEP_FINAL_DROP = 0.10      # last epoch's share of the train loss's total fall since epoch 1
SPIKE_FACTOR = 1.5           # a loss this many times both neighbours' is a spike
MIN_PER_CLASS = 50           # train images per class below which a model from scratch struggles
IMBALANCE_RATIO = 3.0        # largest over smallest class count in train
CONFUSED_PAIRS = 3           # how many confused pairs to report
HEALTHY_STILL_IMPROVING = 0.01  # val loss fell this much (relative) in the last epoch: train longer


def _col(rows: list[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, math.nan)))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _finding(finding: str, evidence: str, remedies: list[str]) -> dict:
    return {"finding": finding, "evidence": evidence, "remedies": remedies}


def _curve_findings(rows: list[dict]) -> list[dict]:
    epochs = [int(e) if math.isfinite(e) else i + 1 for i, e in enumerate(_col(rows, "epoch"))]
    tl, vl = _col(rows, "train_loss"), _col(rows, "val_loss")
    ta, va, lr = _col(rows, "train_accuracy"), _col(rows, "val_accuracy"), _col(rows, "lr")
    peak_lr = max((x for x in lr if math.isfinite(x)), default=math.nan)
    n, out = len(rows), []

    bad = [epochs[i] for i in range(n) if not (math.isfinite(tl[i]) and math.isfinite(vl[i]))]
    spikes = [f"{name} loss {s[i]:.3g} at epoch {epochs[i]} (neighbours {s[i-1]:.3g}, {s[i+1]:.3g})"
              for name, s in (("train", tl), ("val", vl)) for i in range(1, n - 1)
              if all(map(math.isfinite, s[i - 1:i + 2])) and s[i] > SPIKE_FACTOR * max(s[i - 1], s[i + 1])]
    if bad or spikes:
        evidence = "; ".join(([f"loss is NaN/inf at epoch(s) {', '.join(map(str, bad))}"] if bad else [])
                             + spikes[:3])
        lower = f" (--lr {peak_lr / 3:.2g}; peak was {peak_lr:.2g})" if math.isfinite(peak_lr) else " (--lr)"
        out.append(_finding("Unstable training", evidence, [
            "Lower the learning rate" + lower,
            "Clip gradients (--grad-clip 1.0)",
            "Warm up the learning rate (--warmup-epochs 1)"]))

    ok = [i for i in range(n) if math.isfinite(vl[i]) and math.isfinite(tl[i])]
    if not ok:
        return out
    last = ok[-1]
    best = min(ok, key=lambda i: vl[i])
    gap = ta[last] - va[last] if math.isfinite(ta[last]) and math.isfinite(va[last]) else math.nan
    rising = best < last and vl[last] > vl[best] * (1 + OVERFIT_VAL_RISE) and tl[last] < tl[best]
    if rising or gap > OVERFIT_ACC_GAP:
        ev = []
        if rising:
            ev.append(f"val loss rose from {vl[best]:.3f} at epoch {epochs[best]} to {vl[last]:.3f} at epoch "
                      f"{epochs[last]} (+{100 * (vl[last] / vl[best] - 1):.0f}%) while train loss fell "
                      f"from {tl[best]:.3f} to {tl[last]:.3f}")
        if gap > OVERFIT_ACC_GAP:
            ev.append(f"train accuracy {_pct(ta[last])} vs val {_pct(va[last])} at epoch {epochs[last]} "
                      f"(gap {100 * gap:.1f} points)")
        out.append(_finding("Overfitting: the model memorises the training set", "; ".join(ev), [
            "More training data, or stronger augmentation (--augment strong)",
            "More weight decay (--weight-decay, e.g. 10x the current value)",
            "Dropout (--dropout 0.3)",
            "A smaller model (--width 0.5, or a smaller --model)",
            f"Early stopping (--patience 5): the best val loss was at epoch {epochs[best]}"]))

    # Share of the total fall, not relative change: 0.06 -> 0.05 is -17% but no longer steep.
    fall = tl[ok[0]] - tl[last]
    drop = (tl[last - 1] - tl[last]) / fall if last >= 1 and fall > 0 else 0.0
    low = math.isfinite(ta[last]) and ta[last] < UNDERFIT_TRAIN_ACC
    if low or (drop > STEEP_FINAL_DROP and not rising):
        ev = []
        if low:
            ev.append(f"train accuracy only {_pct(ta[last])} at epoch {epochs[last]} "
                      f"(below {_pct(UNDERFIT_TRAIN_ACC)})")
        if drop > STEEP_FINAL_DROP:
            ev.append(f"train loss still fell {tl[last - 1]:.3f} -> {tl[last]:.3f} in the last epoch, "
                      f"{100 * drop:.0f}% of its whole fall since epoch {epochs[ok[0]]}")
        higher = f" (--lr {peak_lr * 3:.2g}; peak was {peak_lr:.2g})" if math.isfinite(peak_lr) else " (--lr)"
        longer = f"Train longer (--epochs {2 * epochs[last]})"
        # A flat curve gains little from more epochs; a still-falling one gains most.
        remedies = ["A bigger model (--width 2, or a larger --model)", "A higher learning rate" + higher,
                    "Less regularisation (lower --weight-decay, --dropout 0, a milder --augment)"]
        remedies.insert(0 if drop > STEEP_FINAL_DROP else len(remedies), longer)
        out.append(_finding("Underfitting: the model has not learned the training set yet", "; ".join(ev),
                            remedies))
    return out


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


def diagnose(rows: list[dict], summary: dict) -> list[dict]:
    """Findings about a run, each with evidence from its curves and remedies to try."""
    problems = _curve_findings(rows) + _data_findings(summary)
    if not problems and rows:
        problems = [_healthy(rows, summary)]
    return problems + _confusion_findings(summary)


def _healthy(rows: list[dict], summary: dict) -> dict:
    vl, ta, va = _col(rows, "val_loss"), _col(rows, "train_accuracy"), _col(rows, "val_accuracy")
    n = len(rows)
    ev = [f"val accuracy {_pct(va[-1])}, train {_pct(ta[-1])} at the last epoch "
          f"(gap {100 * (ta[-1] - va[-1]):.1f} points)"] if math.isfinite(va[-1] + ta[-1]) else []
    finite = [x for x in vl if math.isfinite(x)]
    if finite:
        ev.append(f"val loss {vl[-1]:.3f} vs its minimum {min(finite):.3f}")
    remedies = []
    stopped = (summary.get("train") or {}).get("stopped_early")
    if n >= 2 and not stopped and vl[-2] > 0 and (vl[-2] - vl[-1]) / vl[-2] > HEALTHY_STILL_IMPROVING:
        ev.append(f"val loss still fell {100 * (vl[-2] - vl[-1]) / vl[-2]:.1f}% in the last epoch")
        remedies.append(f"Train longer (--epochs {2 * n}): val loss was still falling")
    else:
        remedies.append(f"Train longer with early stopping (--epochs {2 * n} --patience 5) "
                        "for a last point or two")
    remedies += ["A bigger model (--width 2, or a larger --model) if you can spend the time",
                 "Pretrained weights (--weights FILE) usually add a few points"]
    return _finding("Healthy: train and val curves agree and settle", "; ".join(ev) or "no problems found",
                    remedies)
