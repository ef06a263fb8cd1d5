"""The generation sections of a run's report: data, the generator and its judge (the run's own
classifier), samples, quality figures, and what to try next, judged from the curves."""
from __future__ import annotations

import math
from pathlib import Path
from .pictures import plot_gan_losses
from .pictures import plot_coverage

LOW_VARIETY = 0.6       # test recall below this share of the training images' own: too little variety
FLOOR = 0.05            # a class with under this share of the samples counts as dropped
COLLAPSE_DROP = 0.5     # val coverage_min below this fraction of its earlier best: modes were lost
D_WINS_LOSS = 0.05      # D loss under this ...
D_WINS_EPOCHS = 3       # ... for this many epochs in a row: D wins and G gets no useful gradient
D_WINS_GAP = 0.8        # D's mean score on real minus on generated, at the end and still growing
SWING = 0.30            # a change of FID between evaluations this large (relative) is a swing
STILL_IMPROVING = 0.10  # last FID this far (relative) below every earlier one: train longer


def _f(x, fmt: str = ".3g") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def curves(rows: list[dict], plots: Path) -> list[Path]:
    """The run's losses.png, drawn from metrics.csv when the run did not leave one."""
    png = plots / "losses.png"
    if not png.is_file() and rows:
        png = plot_gan_losses(rows, png)
    return [png] if png and png.is_file() else []


def _coverage_phrase(test: dict, classes: list) -> str:
    cov = test.get("coverage") or []
    if not cov:
        return ""
    covered = sum(c >= FLOOR for c in cov)
    lead = f"all {len(cov)} classes covered" if covered == len(cov) else f"{covered} of {len(cov)} classes covered"
    return f"{lead} (min {_pct(min(cov))})"


def parts(summary: dict, plots: Path, e, table, img) -> tuple[str, str, list[tuple[str, str, str]]]:
    data, model = summary.get("data") or {}, summary.get("model") or {}
    test, clf = summary.get("test") or {}, summary.get("classifier") or {}
    classes, images = data.get("classes") or [], data.get("images") or {}
    size = "x".join(map(str, data.get("size") or [])) + f"x{data.get('channels', '?')}"

    head = [f"FID {_f(test.get('fid'))} in classifier features (real-vs-real floor {_f(test.get('fid_floor'))})",
            _coverage_phrase(test, classes)]
    if test.get("class_accuracy") is not None:
        head.append(f"{100 * test['class_accuracy']:.0f}% of conditional samples are the asked class")

    d = [table(["split", "images"], [[s, n] for s, n in images.items()]),
         f"<p>{len(classes)} classes ({e(', '.join(map(str, classes)))}), {e(size)} pixels"
         + (f"; {e(data['resized'])}" if data.get("resized") else "") + "</p>"]

    kind = "conditional on the class" if model.get("conditional") else "unconditional"
    m = [table(["part", "parameters"], [["generator", f"{int(model.get('params_g') or 0):,}"],
                                        ["discriminator", f"{int(model.get('params_d') or 0):,}"]])
         if model.get("params_d") else "",
         f"<p>{e(model.get('name', '?'))}, {kind}, {int(model.get('params') or 0):,} parameters in all."
         f" The judge: a {e(clf.get('model', '?'))} classifier "
         + (f"from {e(clf['from'])} (--judge)" if clf.get("from") else "trained on the same data in this run")
         + " (test accuracy "
         f"{_pct(clf.get('test_accuracy'))}); its features are where FID, KID, precision and recall are measured "
         "and its labels give the class coverage.</p>",
         f"<details><summary>model layers</summary><pre>{e(model.get('summary', ''))}</pre></details>"]

    s = [f"<h3>{title}</h3>{note}{img(plots / name, title)}" for name, title, note in (
        ("samples.png", "Final samples", ""), ("progress.gif", "During training (the same noise each epoch)", ""),
        ("interpolation.png", "Latent interpolation", ""),
        ("neighbours.png", "Nearest training images", "<p>Each sample beside the training images closest to it. "
         "Near-copies of training images here would show memorisation rather than generation.</p>"))
        if (plots / name).is_file()] or ["<p>The run left no sample pictures in plots/.</p>"]

    n_inc = test.get("inception_samples")
    train_ref = ("" if test.get("fid_train") is None else
                 f"; the training images themselves score FID {_f(test['fid_train'])}, precision "
                 f"{_f(test.get('precision_train'))}, recall {_f(test.get('recall_train'))}")
    rows = [["FID", _f(test.get("fid")), "distance between real and generated features (Gaussian fit); lower is "
             f"better, {_f(test.get('fid_floor'))} is what half the real images score against the other half"
             + train_ref],
            ["KID", f"{_f(test.get('kid'), '.4f')} ± {_f(test.get('kid_std'), '.4f')}",
             f"kernel distance, unbiased at small sample sizes; lower is better, real floor "
             f"{_f(test.get('kid_floor'), '.4f')}"],
            ["precision", _f(test.get("precision")), "share of samples that land among real images: fidelity"],
            ["recall", _f(test.get("recall")), "share of real images the samples reach: diversity"],
            ["coverage (min)", _pct(test.get("coverage_min")),
             f"the rarest class's share of samples (uniform {_pct(1 / len(classes)) if classes else 'n/a'})"]]
    if test.get("class_accuracy") is not None:
        rows.append(["class accuracy", _pct(test["class_accuracy"]),
                     "conditional samples the classifier labels as the class asked for"])
    if test.get("inception_fid") is not None:
        rows.append(["Inception FID", _f(test["inception_fid"]), f"FID in Inception-v3 features on {n_inc or '?'}"
                     " samples, the usual published scale; biased upward at small sample counts"])
    q = [f"<p>{e(_f(test.get('samples'), ','))} generated samples compared with real images; features from "
         f"{e(test.get('feature_space', '?'))}; computed by {e(test.get('evaluator', '?'))}. Sampling took "
         f"{e(_f(test.get('sample_seconds'), '.1f'))} s.</p>",
         table(["metric", "value", "meaning"], rows)]
    cov_png = plots / "coverage.png"
    if not cov_png.is_file() and test.get("coverage") and classes:
        cov_png = plot_coverage(test["coverage"], classes, cov_png, FLOOR)
    q.append(img(cov_png, "class coverage"))

    return ("; ".join(h for h in head if h), f"{len(classes)} classes, {size}, {sum(images.values())} images",
            [("data", "Data", "".join(d)), ("model", "Model", "".join(x for x in m if x)),
             ("samples", "Samples", "".join(x for x in s if x)), ("quality", "Quality", "".join(q))])


def _col(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) for the rows where key has a finite value."""
    out = []
    for i, r in enumerate(rows):
        v = r.get(key)
        if v is not None and math.isfinite(float(v)):
            ep = r.get("epoch")
            out.append((int(ep) if ep is not None and math.isfinite(ep) else i + 1, float(v)))
    return out


def _finding(finding: str, evidence: str, remedies: list[str]) -> dict:
    return {"finding": finding, "evidence": evidence, "remedies": remedies}


def findings(rows: list[dict], summary: dict) -> list[dict]:
    """What went wrong in training the generator, and which flags would most likely fix it."""
    test, model = summary.get("test") or {}, summary.get("model") or {}
    classes = (summary.get("data") or {}).get("classes") or []
    gan = bool(_col(rows, "train_d_loss"))
    lr = next((v for _, v in reversed(_col(rows, "lr"))), None)
    lower_lr = f"--lr {lr / 2:.2g}" if lr else "--lr (halve it)"
    out = []

    if gan:  # mode collapse: the rarest class vanishes from the samples
        cov = _col(rows, "val_coverage_min")
        final = test.get("coverage_min")
        peak = max(cov[:-1], key=lambda t: t[1], default=None)
        fell = bool(cov) and (cov[-1][1] < FLOOR or (peak is not None and cov[-1][1] < COLLAPSE_DROP * peak[1]))
        if fell or (final is not None and final < FLOOR):
            ev = []
            if peak and cov:
                ev.append(f"val coverage_min {_pct(peak[1])} at epoch {peak[0]}, "
                          f"{_pct(cov[-1][1])} at epoch {cov[-1][0]}")
            if final is not None:
                c = test.get("coverage") or []
                rare = classes[c.index(min(c))] if c and len(c) == len(classes) else "?"
                ev.append(f"test: the rarest class ({rare}) is {_pct(final)} of samples"
                          + (f" (uniform {_pct(1 / len(classes))})" if classes else ""))
            out.append(_finding("Mode collapse: the generator has dropped some classes", "; ".join(ev), [
                "Spectral normalisation in D (--sn on)", "The hinge loss (--loss hinge)",
                f"A lower learning rate ({lower_lr})",
                "A bigger batch (--batch), so each step shows D more of the data's variety"]
                + ([] if model.get("conditional") else ["The conditional GAN, which is asked for every class "
                                                        "(--model cgan)"])))

        d = _col(rows, "train_d_loss")
        run = best_run = 0
        for _, v in d:
            run = run + 1 if v < D_WINS_LOSS else 0
            best_run = max(best_run, run)
        real, fake = dict(_col(rows, "train_d_real")), dict(_col(rows, "train_d_fake"))
        gap = [(ep, real[ep] - fake[ep]) for ep in real if ep in fake]
        growing = len(gap) >= 3 and gap[-1][1] >= D_WINS_GAP and gap[-1][1] > gap[len(gap) // 2][1]
        if best_run >= D_WINS_EPOCHS or growing:
            ev = []
            if best_run:
                ev.append(f"D loss under {D_WINS_LOSS} for {best_run} epochs in a row (last {d[-1][1]:.3g})")
            if gap:
                ev.append(f"D's score on real minus generated {gap[0][1]:.2f} at epoch {gap[0][0]}, "
                          f"{gap[-1][1]:.2f} at epoch {gap[-1][0]}")
            out.append(_finding("The discriminator is winning: the generator gets little to learn from",
                                "; ".join(ev), [
                f"A slower discriminator (--d-lr {lr / 4:.2g})" if lr else "A slower discriminator (--d-lr)",
                "A gradient penalty on D (--gp 10)",
                "More training images (or --hflip on where mirrored images are still valid), so D cannot memorise "
                "the training set"]))

    rec, rec_train = test.get("recall"), test.get("recall_train")
    if rec is not None and rec_train and rec < LOW_VARIETY * rec_train:
        out.append(_finding("Little variety: the samples keep to a few styles of each class",
                            f"test recall {rec:.2f} against {rec_train:.2f} for the training images themselves "
                            f"(precision {_f(test.get('precision'))})", [
                                "The mode-seeking term, which pushes apart the images of two latents (--diversity 1)",
                                f"A lower learning rate ({lower_lr})",
                                "The diffusion model (--model ddpm), which covers the data more evenly"]
                            if gan else ["Train longer (--epochs)", "A wider network (--width 1.5)"]))

    fid = _col(rows, "val_fid")
    late = fid[len(fid) // 2:]
    moves = [(b[1] - a[1]) / min(a[1], b[1]) for a, b in zip(late, late[1:]) if min(a[1], b[1]) > 0]
    if any(m > SWING for m in moves) and any(m < -SWING for m in moves):
        out.append(_finding("Unstable: val FID swings up and down late in training",
                            "val FID " + ", ".join(f"{v:.3g} (epoch {ep})" for ep, v in late), [
                                f"A lower learning rate ({lower_lr})",
                                "Sample from a moving average of the weights (--ema 0.999)"]))
    problems = len(out)
    if len(fid) >= 3 and fid[-1][1] < (1 - STILL_IMPROVING) * min(v for _, v in fid[:-1]):
        out.append(_finding("Still improving at the end: train longer",
                            f"val FID {fid[-1][1]:.3g} at the last epoch ({fid[-1][0]}), below its best before "
                            f"({min(v for _, v in fid[:-1]):.3g})", [f"--epochs {2 * len(rows)}"]))
    if not problems:
        ev = f"test FID {_f(test.get('fid'))} (real-vs-real floor {_f(test.get('fid_floor'))})"
        if test.get("coverage_min") is not None:
            ev += f"; rarest class {_pct(test['coverage_min'])} of samples"
        if gan:
            ev += "; no mode collapse, D not overpowering G"
        ev += "; no large swings in val FID late in training" if fid else ""
        out.insert(0, _finding("Healthy: no sign of collapse or instability", ev, []))
    return out
