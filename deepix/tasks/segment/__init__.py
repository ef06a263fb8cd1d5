"""Semantic segmentation: a class for every pixel. The hooks of tasks/base.py; the work is in train.py (step,
loss, scoring), data.py, augment.py, metrics.py, where.py, loaded.py, pictures.py, report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Report, Task

# train.py and what it imports (torchmetrics, scipy) load on first use, not for `deepix --help`


class Segment(Task):
    name = "segment"
    title = "a class for every pixel"
    defaults = dict(data="shapes", model="unet-seg", monitor="val_miou", loss="cross-entropy+dice", epochs=30,
                    batch=16, lr=0.003, optimizer="adamw", schedule="onecycle", weight_decay=0.0005, time_limit=10.0)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "augment", "translate", "degrees", "scale", "hflip",
                      "brightness", "contrast", "loss", "ignore_index", "class_weights", "width", "weights", "init",
                      "channels_last", "tile", "activation", "kernel_size"})
    fit_verdict = True
    no_int8 = ""
    dropout = False
    folder_imgsz = 256
    data_help = "shapes, or a folder of images/ and masks/ (or Pascal VOC, COCO, YOLO segmentation)"

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Segmenter  # on use: `import deepix` and `deepix --help` stay light
        return Segmenter(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data, split)

    def figure_unit(self, monitor: str):
        return (1.0, "") if monitor.endswith("loss") else (100.0, " points")

    def main_figure(self, test: dict):
        return "test_miou", test.get("miou")

    def print_result(self, result: dict, console) -> None:
        m, t = result["test"], result["train"]
        absent = f" ({', '.join(m['absent'])} absent)" if m.get("absent") else ""
        console.print(f"{result['run']}: mIoU {m['miou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}  "
                      f"Dice {m['dice']:.4f}{absent}")
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['images_per_s']:,.0f} images/s, {t['precision']}; inference {m['images_per_s']:,.0f} images/s")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        per = ", ".join(f"{c} {'absent' if v is None else f'{v:.3f}'}" for c, v in m["iou_per_class"].items())
        console.print(f"mIoU {m['miou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}  Dice {m['dice']:.4f}")
        console.print(f"IoU per class: {per}")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc, img, table  # on use: `import deepix` and `deepix --help` stay light
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return Report(*parts(summary, run / "plots", esc, table, img))

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from .report import findings  # on use: `import deepix` and `deepix --help` stay light
        return findings(rows, summary)

    def prune_keep(self, model) -> list:
        import torch
        return [[m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]]  # it gives the class scores

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights), data)

    def exported(self, file):
        from .export import ExportedSegmenter  # on use: `import deepix` and `deepix --help` stay light
        return ExportedSegmenter(file)

    def explain(self, run: Path, images, layer, cls, out: Path, conf: float) -> dict:
        from .explain import explain_images, page_body  # on use: `import deepix` and `deepix --help` stay light
        r = explain_images(self.load(run), images, layer, cls, out)
        r["lines"] = [f"{p['image']}: " + (", ".join(f"{c} {v:.1%}" for c, v in p["classes"].items())
                                           or "background only") for p in r["predictions"]]
        r["html"] = page_body(r, out)
        return r


TASK = Segment()
