"""The report: plots, diagnosis and a self-contained report.html from a fake run folder."""
import json
import re

import numpy as np
import yaml

from deepix.report import diagnose, image_grid, plot_class_counts, plot_confusion, plot_curves, write_report

CLASSES = ["cat", "dog", "bird"]


def _rows(train_loss, val_loss, train_acc, val_acc):
    return [{"epoch": i + 1, "train_loss": tl, "train_accuracy": ta, "val_loss": vl, "val_accuracy": va,
             "lr": 0.003 * (1 - i / len(train_loss)), "seconds": 1.5}
            for i, (tl, vl, ta, va) in enumerate(zip(train_loss, val_loss, train_acc, val_acc))]


def overfit_rows():
    n = 12
    tl = [1.0 * 0.7 ** i for i in range(n)]
    vl = [0.9, 0.7, 0.55, 0.5, 0.52, 0.58, 0.65, 0.72, 0.8, 0.88, 0.95, 1.0]
    return _rows(tl, vl, [min(0.5 + 0.05 * i, 0.999) for i in range(n)], [0.6, 0.7, 0.75, 0.78] + [0.77] * 8)


def underfit_rows():
    return _rows([1.09, 1.08, 1.08, 1.07, 1.07], [1.09, 1.09, 1.08, 1.08, 1.08],
                 [0.36, 0.38, 0.39, 0.40, 0.40], [0.35, 0.37, 0.38, 0.39, 0.39])


def healthy_rows():
    tl = [0.9, 0.4, 0.25, 0.18, 0.14, 0.12, 0.11, 0.105]
    vl = [0.7, 0.35, 0.24, 0.19, 0.16, 0.15, 0.145, 0.144]
    return _rows(tl, vl, [0.7, 0.87, 0.92, 0.94, 0.955, 0.96, 0.965, 0.966],
                 [0.76, 0.88, 0.92, 0.935, 0.945, 0.95, 0.952, 0.953])


def summary(train_counts=(500, 480, 510)):
    return {"task": "classify",
            "data": {"name": "pets", "classes": CLASSES, "channels": 3, "size": [32, 32], "info": {},
                     "counts": {"train": list(train_counts), "val": [60, 55, 62], "test": [100, 98, 102]}},
            "model": {"name": "seed-cnn", "params": 123456, "summary": "Conv2d  3->16\nLinear 256->3 <out>"},
            "train": {"epochs_run": 12, "best_epoch": 4, "stopped_early": False, "seconds": 83.2,
                      "images_per_s": 2400.0, "precision": "bf16", "threads": 8, "device": "cpu"},
            "test": {"loss": 0.61, "accuracy": 0.8123, "top5": None,
                     "per_class": {"precision": [0.8, 0.82, 0.81], "recall": [0.79, 0.8, 0.85],
                                   "f1": [0.795, 0.81, 0.83]},
                     "confusion": [[79, 15, 6], [12, 78, 8], [5, 10, 87]]}}


def names(findings):
    return " | ".join(f["finding"].lower().split(":")[0] for f in findings)


def make_run(tmp_path, rows):
    run = tmp_path / "runs" / "classify" / "exp"
    (run / "plots").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "classify", "data": "pets", "model": "seed-cnn",
                                                     "epochs": 12, "lr": 0.003, "augment": "auto"}))
    keys = list(rows[0])
    (run / "metrics.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(r[k]) for k in keys) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps(summary()))
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    image_grid(images, CLASSES * 3 + ["cat"], run / "plots" / "samples.png", cols=5)
    return run


def test_write_report_is_self_contained(tmp_path):
    run = make_run(tmp_path, overfit_rows())
    out = write_report(run)
    assert out == run / "report.html" and out.is_file()
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower()
    assert html.count('src="data:image/png;base64,') >= 6  # counts, samples, loss, accuracy, lr, confusion
    assert "81.23%" in html
    for name in CLASSES + ["seed-cnn", "123,456", "bf16", "Overfitting", "&lt;out&gt;"]:
        assert name in html
    for png in ("loss", "accuracy", "lr", "confusion", "class_counts"):
        assert (run / "plots" / f"{png}.png").stat().st_size > 1000


def test_report_with_one_epoch_and_no_samples(tmp_path):
    run = make_run(tmp_path, healthy_rows()[:1])
    (run / "plots" / "samples.png").unlink()
    html = write_report(run).read_text()
    assert "no curves" in html and "81.23%" in html
    assert plot_curves(run / "metrics.csv", tmp_path / "p") == []


def test_diagnose_overfitting():
    found = diagnose(overfit_rows(), summary())
    assert "overfitting" in names(found)
    f = next(f for f in found if "overfitting" in f["finding"].lower())
    assert "0.500" in f["evidence"] and any("--weight-decay" in r for r in f["remedies"])
    assert "healthy" not in names(found)


def test_diagnose_underfitting():
    found = diagnose(underfit_rows(), summary())
    assert "underfitting" in names(found) and "overfitting" not in names(found)
    assert "healthy" not in names(found)


def test_diagnose_healthy():
    found = diagnose(healthy_rows(), summary())
    text = names(found)
    assert "healthy" in text
    for bad in ("overfitting", "underfitting", "unstable", "too few", "imbalance"):
        assert bad not in text
    assert "most confused" in text  # the cat/dog pair still shows
    assert "cat <-> dog: 27" in next(f for f in found if "confused" in f["finding"].lower())["evidence"]


def test_diagnose_data_problems_and_instability():
    assert "too few images per class" in names(diagnose(healthy_rows(), summary((30, 400, 420))))
    assert "imbalance" in names(diagnose(healthy_rows(), summary((100, 400, 420))))
    rows = healthy_rows()
    rows[4]["val_loss"] = 2.0
    rows[6]["train_loss"] = float("nan")
    assert "unstable" in names(diagnose(rows, summary()))


def test_plots_edge_cases(tmp_path):
    assert image_grid(np.zeros((0, 8, 8), np.uint8), [], tmp_path / "none.png").is_file()
    gray = np.full((3, 8, 8), 128, np.uint8)
    assert image_grid(gray, ["a", "b", "c"], tmp_path / "g.png", title_colors=["green", "red", "red"]).is_file()
    many = [f"class_{i}" for i in range(30)]
    assert plot_confusion(np.eye(30, dtype=int).tolist(), many, tmp_path / "cm.png").is_file()
    assert plot_class_counts({"train": list(range(1, 31))}, many, tmp_path / "cc.png").is_file()


def test_the_embedding_map_of_a_collapsed_network_says_so_instead_of_crashing(tmp_path):
    # every unit dead: all images share one feature vector, on which scikit-learn's Barnes-Hut t-SNE segfaults
    from deepix.report.plots import embedding_map
    out = embedding_map(np.zeros((200, 16), np.float32), np.arange(200) % 4, list("abcd"), tmp_path / "e.png", "t")
    assert out.is_file() and out.stat().st_size > 1000
    spread = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    assert embedding_map(spread, np.arange(120) % 4, list("abcd"), tmp_path / "f.png", "t", iterations=250).is_file()
