"""One fit verdict per run: overfitting, underfitting or a good fit, by how much, and what to try first."""
from __future__ import annotations

import math

from ..config import Config
from ..tasks import get
from torch import nn
from ..models import Spec, build_model

OVERFIT_VAL_RISE = 0.10      # val loss this far (relative) above its minimum at the end
OVERFIT_ACC_GAP = 0.10       # train minus val accuracy at the last epoch
UNDERFIT_TRAIN_ACC = 0.70    # train accuracy below this at the last epoch
STEEP_FINAL_DROP = 0.10      # last epoch's share of the train loss's total fall since epoch 1
STILL_IMPROVING = 0.01       # val loss fell this much (relative) in the last epoch: train longer
STRONG_WEIGHT_DECAY = 1e-3   # above this, weight decay may be what holds an underfitting model back
PAST_BEST = 0.05             # a val metric this far (relative) worse than its best at the end: past its best
TREND_STEP = 0.02            # a val metric that moved this much (relative) in the last epoch still moves


def column(rows: list[dict], key: str) -> list[float]:
    """One metrics.csv column as floats, NaN where missing or not a number."""
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, math.nan)))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def epoch_numbers(rows: list[dict]) -> list[int]:
    return [int(e) if math.isfinite(e) else i + 1 for i, e in enumerate(column(rows, "epoch"))]


def _finite(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def measure(rows: list[dict]) -> dict | None:
    """The numbers a verdict rests on, from the epochs with a finite train and val loss (None without any).
    Accuracies and gaps are in points (percent); the best epoch is the one with the lowest val loss."""
    epochs = epoch_numbers(rows)
    tl, vl = column(rows, "train_loss"), column(rows, "val_loss")
    ta, va = column(rows, "train_accuracy"), column(rows, "val_accuracy")
    ok = [i for i in range(len(rows)) if math.isfinite(tl[i]) and math.isfinite(vl[i])]
    if not ok:
        return None
    first, last = ok[0], ok[-1]
    best = min(ok, key=lambda i: vl[i])
    prev = ok[-2] if len(ok) > 1 else last
    gap = lambda i: 100 * (ta[i] - va[i])  # noqa: E731  (NaN where accuracy is not logged)
    fall = tl[first] - tl[last]
    return {
        "epochs": len(ok), "first_epoch": epochs[first], "best_epoch": epochs[best], "last_epoch": epochs[last],
        "epochs_since_best": epochs[last] - epochs[best],
        "train_loss_first": tl[first], "train_loss_best": tl[best], "train_loss_prev": tl[prev],
        "train_loss_last": tl[last], "val_loss_best": vl[best], "val_loss_prev": vl[prev], "val_loss_last": vl[last],
        "val_loss_rise_pct": 100 * (vl[last] / vl[best] - 1) if vl[best] > 0 else math.nan,
        "val_loss_last_fall_pct": 100 * (vl[prev] - vl[last]) / vl[prev] if vl[prev] > 0 else math.nan,
        # share of the whole fall, not relative change: 0.06 -> 0.05 is -17% but no longer steep
        "last_epoch_share_pct": 100 * (tl[prev] - tl[last]) / fall if fall > 0 and prev != last else 0.0,
        "train_accuracy": 100 * ta[last], "val_accuracy": 100 * va[last],
        "train_short_of_100": 100 * (1 - ta[last]), "gap_last": gap(last), "gap_best": gap(best),
    }


def settings(config: dict | None, summary: dict | None = None) -> dict:
    """The run's config with the defaults of its task filled in (old runs may lack newer keys)."""
    config, summary = config or {}, summary or {}
    task = config.get("task") or summary.get("task") or "classify"
    return {**Config().to_dict(), **get(task).defaults, "task": task,
            **{k: v for k, v in config.items() if v is not None}}


def _remedy(remedy: str, flag: str, why: str) -> dict:
    return {"remedy": remedy, "flag": flag, "why": why}


def _num(x: float) -> str:
    return f"{x:.2g}" if x < 1e-3 or x >= 1 else f"{x:.3g}".rstrip("0").rstrip(".")


def model_dropout(cfg: dict) -> float | None:
    """The dropout the run's model used: the flag, or the model's own default (None if it has no dropout)."""
    if float(cfg.get("dropout", -1)) >= 0:
        return float(cfg["dropout"])
    try:  # the default lives in the builder: build a tiny copy and read it off

        net = build_model(str(cfg.get("model")), Spec(1, 2, (28, 28), width=float(cfg.get("width", 1.0))))
        rates = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
        return max(rates) if rates else None
    except Exception:  # an external or custom model: no known default
        return None


def _regularisers(cfg: dict, summary: dict) -> dict[str, dict]:
    """Overfitting's remedies, each with the flag and a value worked out from the run's own settings."""
    task, kind = get(cfg["task"]), (summary.get("data") or {}).get("kind")
    wd, width, lr = float(cfg["weight_decay"]), float(cfg["width"]), float(cfg["lr"])
    out = {}
    if not task.augment_presets:  # e.g. restoration's only augmentation is flips: on or off
        if cfg["augment"] == "none":
            out["augment"] = _remedy("Augmentation", "--augment auto", "random flips and turns of the patches")
    elif cfg["augment"] != "strong":
        # none -> the data's own preset first; strong flips images: wrong for digits (a flipped 2 is not a 2)
        flag = "--augment auto" if cfg["augment"] == "none" else "--augment strong" + (
            " --hflip off" if kind == "digits" or cfg["augment"] == "digits" else "")
        out["augment"] = _remedy("Augmentation" if cfg["augment"] == "none" else "Stronger augmentation", flag,
                                 f"new variations of each training image every epoch (now --augment "
                                 f"{cfg['augment']}), so there is less to memorise")
    new_wd = 10 * wd if wd > 0 else 5e-4
    out["weight_decay"] = _remedy("More weight decay", f"--weight-decay {_num(new_wd)}",
                                  f"pulls the weights toward zero 10x harder (now {_num(wd)})" if wd > 0 else
                                  "the run had none")
    if task.dropout:
        rate = model_dropout(cfg)
        new = 0.3 if rate is None or rate < 0.2 else min(0.7, round(rate + 0.2, 2))
        now = "none" if rate is None else f"{rate:g}"
        if rate is None or rate < 0.7:
            out["dropout"] = _remedy("Dropout", f"--dropout {new:g}", f"drops units at random while training "
                                     f"(now {now})")
    out["smaller"] = _remedy("A smaller model", f"--width {width / 2:g}",
                             f"half the channels, less capacity to memorise (now --width {width:g})")
    out["lower_lr"] = _remedy("A lower learning rate", f"--lr {_num(lr / 3)}",
                              f"a third of the peak {_num(lr)}: smaller steps settle into flatter minima")
    if task.learning_curve:  # only a task that can retrain on shares of its data measures whether more pays
        out["more_data"] = _remedy("More training images", "deepix advise RUN --learning-curve",
                                   "the surest cure; the learning curve measures whether it would pay")
    return out


def _overfitting(m: dict, cfg: dict, summary: dict) -> tuple[str, list[dict]]:
    """Remedies for overfitting in the order to try them, and why the first is first."""
    E, B, since = m["last_epoch"], m["best_epoch"], m["epochs_since_best"]
    r = _regularisers(cfg, summary)
    patience = max(2, min(5, E // 4))
    if cfg["schedule"] != "constant":
        r["early"] = _remedy("Early stopping: a shorter run", f"--epochs {B}",
                             f"the schedule then anneals by epoch {B}, where val loss was lowest, instead of "
                             f"snapshotting the model mid-schedule (or --patience {patience} to stop by itself)")
    else:
        r["early"] = _remedy("Early stopping", f"--patience {patience}",
                             f"stops {patience} epochs after val stops improving")
    peaked_early = m["val_loss_rise_pct"] > 100 * OVERFIT_VAL_RISE and since >= E / 2
    if peaked_early:
        order = ["early", "augment", "weight_decay", "dropout", "smaller"] + (["lower_lr"] if B <= 2 else [])
        why = (f"val loss bottomed at epoch {B} of {E} and rose {m['val_loss_rise_pct']:.0f}% in the {since} "
               f"epochs after: those epochs only memorised; stopping there costs nothing and saves "
               f"{100 * since / E:.0f}% of the training time")
    elif "augment" in r:
        order = ["augment", "weight_decay", "dropout", "early", "smaller"]
        gap = f"a {m['gap_last']:.1f}-point gap" if math.isfinite(m["gap_last"]) else \
            f"val loss {m['val_loss_rise_pct']:.0f}% above its minimum"
        why = (f"{gap} with val loss at its best only {since} epoch(s) before the end: the model needs varied "
               "training images more than fewer epochs, and augmentation costs neither time nor capacity")
    else:
        order = ["weight_decay", "dropout", "smaller", "early"]
        why = (f"augmentation is already {cfg['augment']}: weight decay is the next cheapest brake "
               f"({r['weight_decay']['flag']})")
    return why, [r[k] for k in order + ["more_data"] if k in r]


def _underfitting(m: dict, cfg: dict, steep: bool) -> tuple[str, list[dict]]:
    """Remedies for underfitting in the order to try them, and why the first is first."""
    E, wd, width, lr = m["last_epoch"], float(cfg["weight_decay"]), float(cfg["width"]), float(cfg["lr"])
    r = {"longer": _remedy("Train longer", f"--epochs {2 * E}", "twice the epochs, the schedule stretched to match"),
         "bigger": _remedy("A bigger model", f"--width {2 * width:g}", f"twice the channels (now {width:g}), "
                           "or a larger --model"),
         "higher_lr": _remedy("A higher learning rate", f"--lr {_num(3 * lr)}", f"three times the peak {_num(lr)}")}
    rate = model_dropout(cfg) or 0.0
    loosen = ([f"--weight-decay {_num(wd / 10)}"] if wd > 0 else []) + \
        (["--augment auto"] if cfg["augment"] == "strong" else []) + \
        ([f"--dropout {rate / 2:g}"] if rate > 0 else [])
    if loosen:
        r["looser"] = _remedy("Less regularisation", " ".join(loosen), "lets the model fit the training set")
    strong = cfg["augment"] == "strong" or wd > STRONG_WEIGHT_DECAY or rate > 0.5
    if steep:
        order = ["longer", "bigger", "higher_lr", "looser"]
        why = (f"train loss still fell {m['train_loss_prev']:.3f} -> {m['train_loss_last']:.3f} in the last epoch, "
               f"{m['last_epoch_share_pct']:.0f}% of its whole fall: it has not converged, and more epochs are the "
               "cheapest fix")
    elif strong and loosen:
        order = ["looser", "bigger", "longer", "higher_lr"]
        why = f"the run is strongly regularised ({', '.join(loosen)} undoes it) and cannot fit even its training set"
    else:
        order = ["bigger", "higher_lr", "longer", "looser"]
        acc = f"train accuracy is only {m['train_accuracy']:.1f}%" if math.isfinite(m["train_accuracy"]) else \
            f"train loss is {m['train_loss_last']:.3f}"
        why = (f"the train loss has flattened ({m['last_epoch_share_pct']:.0f}% of its fall in the last epoch) "
               f"yet {acc}: more epochs will not help, more capacity may")
    return why, [r[k] for k in order if k in r]


def _good_fit(m: dict, cfg: dict, still: bool) -> tuple[str, list[dict]]:
    E, width = m["last_epoch"], float(cfg["width"])
    r = {"longer": _remedy("Train longer", f"--epochs {2 * E}" + ("" if still else " --patience 5"),
                           "val loss was still falling" if still else "a last point or two, stopped by patience"),
         "bigger": _remedy("A bigger model", f"--width {2 * width:g}", "more capacity, if you can spend the time"),
         "pretrained": _remedy("Pretrained weights", "--weights FILE" + (
             ", or --init PRETRAIN_RUN" if get(cfg["task"]).learning_curve else ""),
                               "usually better, most when data is scarce")}
    if get(cfg["task"]).learning_curve:  # a task that can retrain on shares of its data
        r["more_data"] = _remedy("More training images", "deepix advise RUN --learning-curve",
                                 "the learning curve says whether more data would pay")
    pick = lambda *keys: [r[k] for k in keys if k in r]  # noqa: E731
    if still:
        return (f"val loss still fell {m['val_loss_last_fall_pct']:.1f}% in the last epoch: the run stopped "
                "while it was still learning", pick("longer", "bigger", "more_data", "pretrained"))
    return ("train and val agree and val loss has settled: the schedule is not the limit, the model or the data "
            "is", pick("bigger", "more_data", "pretrained", "longer"))


def fit_verdict(rows: list[dict], summary: dict | None = None, config: dict | None = None) -> dict:
    """overfitting / underfitting / good fit (or unknown), with the numbers that say by how much, the evidence in
    words, and the remedies ranked for it, each naming its flag with a value from the run's own config."""
    summary = summary or {}
    cfg = settings(config, summary)
    m = measure(rows)
    if m is None:
        return trend_verdict(rows, summary, cfg)
    E, B = m["last_epoch"], m["best_epoch"]
    rising = (m["epochs_since_best"] > 0 and m["val_loss_rise_pct"] > 100 * OVERFIT_VAL_RISE
              and m["train_loss_last"] < m["train_loss_best"])
    wide = m["gap_last"] > 100 * OVERFIT_ACC_GAP
    # augmentation and dropout hold train accuracy down: a model whose val accuracy is high has learned
    low = max(m["train_accuracy"], m["val_accuracy"] if math.isfinite(m["val_accuracy"]) else 0) \
        < 100 * UNDERFIT_TRAIN_ACC
    steep = m["last_epoch_share_pct"] > 100 * STEEP_FINAL_DROP and not rising
    acc = math.isfinite(m["gap_last"])
    accs = (f"train accuracy {m['train_accuracy']:.1f}% vs val {m['val_accuracy']:.1f}% at epoch {E} "
            f"(gap {m['gap_last']:.1f} points; {m['gap_best']:.1f} at epoch {B}, the lowest val loss)") if acc else ""
    if acc and m["gap_last"] < -5:
        accs += ("; train accuracy is measured on augmented images with dropout on, which is why it reads below "
                 "val")
    # a model that cannot fit its training set has a bias problem first, whatever the gap
    if rising or (wide and not low):
        verdict = "overfitting"
        headline = ((f"Overfitting by {m['gap_last']:.1f} points of accuracy: train {m['train_accuracy']:.1f}% vs "
                     f"val {m['val_accuracy']:.1f}%; " if acc else "Overfitting: ") +
                    f"val loss {m['val_loss_rise_pct']:.0f}% above its minimum at epoch {B}, "
                    f"{m['epochs_since_best']} epoch(s) before the end")
        evidence = ([f"val loss rose from {m['val_loss_best']:.3f} at epoch {B} to {m['val_loss_last']:.3f} at epoch "
                     f"{E} (+{m['val_loss_rise_pct']:.0f}%) while train loss fell from {m['train_loss_best']:.3f} "
                     f"to {m['train_loss_last']:.3f}"] if rising else []) + ([accs] if accs else [])
        why, remedies = _overfitting(m, cfg, summary)
    elif low or steep:
        verdict = "underfitting"
        headline = ("Underfitting: " + (f"train accuracy {m['train_accuracy']:.1f}%, "
                                        f"{m['train_short_of_100']:.1f} points short of 100% (val "
                                        f"{m['val_accuracy']:.1f}%, gap {m['gap_last']:.1f} points)" if acc else
                                        f"train loss {m['train_loss_last']:.3f}")
                    + (f"; train loss still fell {m['last_epoch_share_pct']:.0f}% of its whole fall in the last "
                       "epoch" if steep else ""))
        evidence = ([f"train accuracy only {m['train_accuracy']:.1f}% at epoch {E} (below "
                     f"{100 * UNDERFIT_TRAIN_ACC:.0f}%)"] if low else []) + \
            ([f"train loss still fell {m['train_loss_prev']:.3f} -> {m['train_loss_last']:.3f} in the last epoch, "
              f"{m['last_epoch_share_pct']:.0f}% of its whole fall since epoch {m['first_epoch']}"] if steep else []) \
            + ([accs] if accs and not low else [])
        why, remedies = _underfitting(m, cfg, steep)
    elif m["epochs"] < 2:
        return {"verdict": "unknown", "headline": "One epoch: too short to judge the fit", "numbers": _clean(m),
                "evidence": [accs] if accs else [], "first_because": "",
                "remedies": [_remedy("Train longer", f"--epochs {max(10, 2 * E)}", "curves need a few epochs")]}
    else:
        verdict = "good fit"
        still = (m["val_loss_last_fall_pct"] > 100 * STILL_IMPROVING
                 and not (summary.get("train") or {}).get("stopped_early"))
        headline = ("Good fit: " + (f"train {m['train_accuracy']:.1f}% vs val {m['val_accuracy']:.1f}% (gap "
                                    f"{m['gap_last']:.1f} points); " if acc else "")
                    + f"val loss within {max(0.0, m['val_loss_rise_pct']):.0f}% of its minimum")
        evidence = ([f"val accuracy {m['val_accuracy']:.1f}%, train {m['train_accuracy']:.1f}% at the last epoch "
                     f"(gap {m['gap_last']:.1f} points)"] if acc else []) + \
            [f"val loss {m['val_loss_last']:.3f} vs its minimum {m['val_loss_best']:.3f} at epoch {B}"] + \
            ([f"val loss still fell {m['val_loss_last_fall_pct']:.1f}% in the last epoch"] if still else [])
        why, remedies = _good_fit(m, cfg, still)
    return {"verdict": verdict, "headline": headline, "numbers": _clean(m), "evidence": evidence,
            "remedies": remedies, "first_because": why}


def _clean(m: dict) -> dict:
    """JSON-safe: NaN becomes None, floats are rounded."""
    return {k: (round(v, 4) if isinstance(v, float) else v) if _finite(v) is not None else None for k, v in m.items()}


def trend_verdict(rows: list[dict], summary: dict, cfg: dict) -> dict:
    """Without a train and a val loss (detect, generate, pretrain): read the monitored val metric alone."""
    keys = list(rows[0]) if rows else []
    metric = cfg.get("monitor")
    if metric not in keys or not any(map(math.isfinite, column(rows, metric))):
        metric = None
    if metric is None:
        return {"verdict": "unknown", "headline": "No validation curve in metrics.csv to judge the fit from",
                "numbers": {}, "evidence": [], "remedies": [], "first_because": ""}
    epochs, vals = epoch_numbers(rows), column(rows, metric)
    ok = [i for i in range(len(rows)) if math.isfinite(vals[i])]
    sign = 1 if get(cfg["task"]).higher_is_better(metric) else -1
    best, last = max(ok, key=lambda i: sign * vals[i]), ok[-1]
    prev = ok[-2] if len(ok) > 1 else last
    rel = lambda a, b: (a - b) / abs(b) if b else 0.0  # noqa: E731
    worse, step = sign * rel(vals[best], vals[last]), sign * rel(vals[last], vals[prev])
    numbers = {"metric": metric, "best_epoch": epochs[best], "last_epoch": epochs[last], "best": vals[best],
               "last": vals[last], "worse_than_best_pct": 100 * worse, "last_epoch_change_pct": 100 * step}
    E = epochs[last]
    # "overfitting" of a generator or an encoder is not what a falling metric means: only the trend is said
    fitting = get(cfg["task"]).fit_verdict
    no_pair = "metrics.csv has no train/val loss pair, so only the val curve speaks"
    if len(ok) < 2:
        return {"verdict": "unknown", "headline": "One epoch: too short to judge the fit", "numbers": _clean(numbers),
                "evidence": [no_pair], "first_because": "",
                "remedies": [_remedy("Train longer", f"--epochs {max(10, 2 * E)}", "curves need a few epochs")]}
    if worse > PAST_BEST:
        text = (f"{metric} peaked at {vals[best]:.4g} at epoch {epochs[best]} and ended at {vals[last]:.4g} "
                f"({100 * worse:.0f}% worse)")
        return {"verdict": "overfitting" if fitting else "unknown", "headline": f"Past its best: {text}",
                "numbers": _clean(numbers), "evidence": [text, no_pair],
                "first_because": f"{metric} was best at epoch {epochs[best]}; later epochs made it worse",
                "remedies": [_remedy("Early stopping: a shorter run", f"--epochs {epochs[best]}",
                                     f"ends where {metric} was best"),
                             _remedy("More weight decay",
                                     f"--weight-decay {_num(10 * float(cfg['weight_decay']) or 5e-4)}",
                                     "a harder brake on the weights")]}
    if step > TREND_STEP:
        text = f"{metric} still improved {100 * step:.1f}% in the last epoch ({vals[prev]:.4g} -> {vals[last]:.4g})"
        return {"verdict": "underfitting" if fitting else "unknown", "headline": f"Still learning: {text}",
                "numbers": _clean(numbers), "evidence": [text, no_pair],
                "first_because": "the curve had not flattened when the run ended",
                "remedies": [_remedy("Train longer", f"--epochs {2 * E}", "the curve was still climbing")]}
    text = f"{metric} settled at {vals[last]:.4g} (best {vals[best]:.4g} at epoch {epochs[best]})"
    return {"verdict": "good fit" if fitting else "unknown", "headline": f"Settled: {text}", "numbers": _clean(numbers),
            "evidence": [text, no_pair], "first_because": "",
            "remedies": [_remedy("A bigger model", f"--width {2 * float(cfg['width']):g}", "more capacity")]}
