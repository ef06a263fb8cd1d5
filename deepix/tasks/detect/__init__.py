"""Object detection: boxes and classes. The hooks of tasks/base.py; the work is in train.py (data,
model, step, COCO scoring), images.py, augment.py, fcos_head.py, loaded.py, report.py,
explain.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ..base import Report, Task

# train.py and what it imports (pycocotools, torchvision's detectors) load on first use, not for `deepix --help`


class Detect(Task):
    name = "detect"
    title = "boxes and classes"
    defaults = dict(data="shapes", model="fcos-n", monitor="val_map", epochs=20, batch=16, lr=0.003,
                    optimizer="adamw", schedule="cosine", warmup_epochs=1.0, weight_decay=0.0005)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "augment", "translate", "degrees", "scale", "hflip",
                      "brightness", "contrast", "mosaic", "multiscale", "iou", "conf", "max_det", "width", "weights",
                      "channels_last", "init", "teacher", "distill_weight", "baseline"})
    fit_verdict = True
    no_int8 = ""
    folder_imgsz = 320   # train.FOLDER_SIZE: boxes need more pixels than whole-image labels

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Detector  # on use: `import deepix` and `deepix --help` stay light
        return Detector(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data, split)

    def figure_unit(self, monitor: str):
        return (1.0, "") if monitor.endswith("loss") else (100.0, " points")

    def main_figure(self, test: dict):
        return "test_map", test.get("map")

    def print_result(self, result: dict, console) -> None:
        m, t = result["test"], result["train"]
        console.print(f"{result['run']}: mAP@[.5:.95] {m['map']:.4f}  mAP@.5 {m['map50']:.4f}  ({m['evaluator']}, "
                      f"max {m['max_dets']} detections)")
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['images_per_s']:,.0f} images/s, {t['precision']}; inference {m['images_per_s']:,.0f} images/s")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        console.print(f"mAP@[.5:.95] {m['map']:.4f}  mAP@.5 {m['map50']:.4f}  mAP@.75 {m['map75']:.4f}  "
                      f"({m['evaluator']}, max {m['max_dets']} detections per image)")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc, img, table  # on use: `import deepix` and `deepix --help` stay light
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return Report(*parts(summary, run / "plots", esc, table, img))

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from .report import findings  # on use: `import deepix` and `deepix --help` stay light
        return findings(rows, summary)

    def prune_keep(self, model) -> list:
        if not all(hasattr(model, k) for k in ("cls", "box", "ctr")):
            raise UserError("deepix prune takes deepix's own detectors (fcos-n, fcos-s), not torchvision's")
        # class scores, box distances, centre-ness; and the per-level scales (a bare Parameter, indexed by level)
        return [model.cls, model.box, model.ctr, model.scales]

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights), data)

    def exported(self, file):
        from .loaded import ExportedDetector  # on use: `import deepix` and `deepix --help` stay light
        return ExportedDetector(file)

    def explain(self, run: Path, images, layer, cls, out: Path, conf: float) -> dict:
        from .explain import explain_images, page_body  # on use: `import deepix` and `deepix --help` stay light
        r = explain_images(self.load(run), images, layer, cls, out, conf)
        r["lines"] = [f"{p['image']}: " + (", ".join(f"{b['class']} {b['score']:.2f}" for b in p["boxes"]) or "no box")
                      for p in r["predictions"]]
        r["html"] = page_body(r, out)
        return r


TASK = Detect()
