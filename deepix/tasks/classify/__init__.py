"""Image classification: one label per image. The hooks of tasks/base.py; the work is in train.py
(data, model, step, test metrics), loaded.py (predicting), report.py and explain.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Exportable, Report, Task

# train.py and what it imports (torchmetrics, captum, matplotlib) load on first use, not for `deepix --help`


class Classify(Task):
    name = "classify"
    title = "one class per image"
    # the softening of a teacher's targets (Hinton et al. 2015 used 1-20), and the share of the loss that follows
    # them: 0.9 beat 0.5 on validation for a tenth-size vgg7 student on mnist-5k (benchmarks/distill_seeds.py)
    defaults = dict(temperature=4.0, distill_weight=0.9)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "strict", "workers", "augment", "translate", "degrees",
                      "scale", "hflip", "brightness", "contrast", "activation", "kernel_size", "width", "dropout",
                      "weights", "channels_last", "loss", "label_smoothing", "init", "freeze", "labels_per_class",
                      "label_fraction", "baseline", "semi", "teacher", "distill_weight", "temperature"})
    learning_curve = True
    no_int8 = ""
    fit_verdict = True

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Predictor  # on use: `import deepix` and `deepix --help` stay light
        return Predictor(run, weights, model)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data, split)

    def figure_unit(self, monitor: str):
        return (1.0, "") if monitor.endswith("loss") else (100.0, " points")

    def main_figure(self, test: dict):
        return "test_accuracy", test.get("accuracy")

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        table = Table(title=f"{result['run']}", show_header=False)
        table.add_row(f"{m['split']} accuracy", f"{m['accuracy']:.4f}")
        if m.get("top5") is not None:
            table.add_row("top-5 accuracy", f"{m['top5']:.4f}")
        table.add_row(f"{m['split']} loss", f"{m['loss']:.4f}")
        table.add_row("epochs", f"{t['epochs_run']} (best {t['best_epoch']}"
                      f"{', stopped early' if t['stopped_early'] else ''})")
        table.add_row("training time", f"{t['seconds']:.1f} s, {t['images_per_s']:,.0f} img/s, {t['precision']}, "
                      f"{t['threads']} threads")
        console.print(table)
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        console.print(f"accuracy {m['accuracy']:.4f}" + (f"  top-5 {m['top5']:.4f}" if m["top5"] is not None else "")
                      + f"  loss {m['loss']:.4f}")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc  # on use: `import deepix` and `deepix --help` stay light
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return Report(*parts(summary, run / "plots", esc))

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from ...report.diagnose import diagnose  # on use: `import deepix` and `deepix --help` stay light
        return diagnose(rows, summary, config)

    def prune_keep(self, model) -> list:
        import torch
        return [[m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]]  # its outputs are the classes

    def exportable(self, run: Path, weights: str, data: str | None) -> Exportable:
        from .train import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights), data)

    def exported(self, file):
        from .loaded import ExportedClassifier  # on use: `import deepix` and `deepix --help` stay light
        return ExportedClassifier(file)

    def explain(self, run: Path, images, layer, cls, out: Path, conf: float) -> dict:
        from .explain import explain_images, page_body  # on use: `import deepix` and `deepix --help` stay light
        r = explain_images(self.load(run), images, layer, cls, out)
        r["lines"] = [f"{p['image']}: {p['class']} {p['probability']:.1%}"
                      + (f"  ({p['asked']['class']}: {p['asked']['probability']:.1%})" if "asked" in p else "")
                      for p in r["predictions"]]
        r["html"] = page_body(r, out)
        return r


TASK = Classify()
