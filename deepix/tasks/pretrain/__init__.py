"""Learning without labels: an encoder pretrained by SimCLR, BYOL or masked reconstruction, for
`train classify --init RUN`. The hooks of tasks/base.py; the work is in train.py (views, the step,
k-NN and linear probes), report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Report, Task

# train.py and what it imports (lightly, scikit-learn) load on first use, not for `deepix --help`


class Pretrain(Task):
    name = "pretrain"
    title = "an encoder from images without labels"
    defaults = dict(data="mnist-5k", model="vgg7", monitor="val_knn", epochs=100, batch=256, lr=0.002,
                    optimizer="adamw", schedule="cosine", warmup_epochs=2.0, weight_decay=0.0001, time_limit=10.0)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "strict", "augment", "translate", "degrees", "scale",
                      "hflip", "brightness", "contrast", "activation", "kernel_size", "width", "dropout", "method",
                      "temperature", "mask_ratio"})

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .train import Encoder  # on use: `import deepix` and `deepix --help` stay light
        return Encoder(run)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(run)

    def figure_unit(self, monitor: str):
        return (1.0, "") if monitor.endswith("loss") else (100.0, " points")

    def main_figure(self, test: dict):
        few = test.get("few_labels") or {}
        return "test_probe", next(iter(few.values()))["pretrained_probe"] if few else None

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        rows = m.get("few_labels", {})
        if rows:
            table = Table("labels per class", "labels", "k-NN", "linear probe", "untrained encoder: probe",
                          title=f"{result['run']}: the encoder's features on {m['images']} {m['split']} images")
            for k, r in rows.items():
                table.add_row(k, f"{r['labels']:,}", f"{r['pretrained_knn']:.1%}", f"{r['pretrained_probe']:.1%}",
                              f"{r['random_probe']:.1%}")
            console.print(table)
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['images_per_s']:,.0f} images/s, {t['precision']}")
        console.print(f"encoder: {result['run']}/weights/encoder.safetensors; fine-tune with: deepix train classify "
                      f"--init {result['run']} --labels-per-class 10")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        for k, r in m["few_labels"].items():
            console.print(f"{k:>4} labels per class: k-NN {r['pretrained_knn']:.1%}  linear probe "
                          f"{r['pretrained_probe']:.1%}  (untrained: {r['random_probe']:.1%})")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc, img, table  # on use: `import deepix` and `deepix --help` stay light
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return Report(*parts(summary, run / "plots", esc, table, img))

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from .report import findings  # on use: `import deepix` and `deepix --help` stay light
        return findings(rows, summary)

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        enc = self.load(run)
        return exportable(enc, enc.cfg, data)


TASK = Pretrain()
