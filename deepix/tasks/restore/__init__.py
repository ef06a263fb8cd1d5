"""Image restoration: undo noise, blur, JPEG or down-scaling. The hooks of tasks/base.py; the work is in
train.py (data, patches, model, step, the PSNR / SSIM table), degrade.py, classical.py, metrics.py,
tiles.py, images.py (reading and writing every bit depth), files.py, report.py, export.py, denoise.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Report, Task

# train.py and what it imports (scikit-image, scipy) load on first use, not for `deepix --help`


class Restore(Task):
    name = "restore"
    title = "undo noise, blur, JPEG or down-scaling"
    defaults = dict(data="photos", model="unet-s", loss="l1", monitor="val_psnr", epochs=30, batch=32, lr=0.001,
                    optimizer="adam", schedule="cosine", weight_decay=0.0)
    uses = frozenset({"val_fraction", "test_fraction", "degrade", "patch", "patches", "channels", "tile", "augment",
                      "loss", "activation", "kernel_size", "width", "dropout", "weights", "channels_last", "init",
                      "teacher", "distill_weight", "baseline"})
    fit_verdict = True
    augment_presets = False  # flips and turns of the patches: on or off
    dropout = False
    result_unit = "patches"
    no_int8 = ""

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .train import Restorer  # on use: `import deepix` and `deepix --help` stay light
        return Restorer(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(run, data)

    def figure_unit(self, monitor: str):
        return (1.0, " dB") if monitor.endswith("psnr") else (1.0, "")

    def main_figure(self, test: dict):
        return "test_psnr", test["methods"].get("deepix", {}).get("psnr")

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        table = Table("method", "PSNR (dB)", "SSIM", title=f"{result['run']}: {m['degrade']} on {m['split']} images")
        for name, v in sorted(m["methods"].items(), key=lambda kv: -kv[1]["psnr"]):
            table.add_row(name, f"{v['psnr']:.2f}", f"{v['ssim']:.4f}")
        console.print(table)
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['patches_per_s']:,.0f} patches/s, {t['precision']}")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        for name, v in sorted(m["methods"].items(), key=lambda kv: -kv[1]["psnr"]):
            console.print(f"{name:<24} PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc  # on use: `import deepix` and `deepix --help` stay light
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return Report(*parts(summary, run / "plots", esc))

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from ...report.diagnose import diagnose  # on use: `import deepix` and `deepix --help` stay light
        return diagnose(rows, summary, config)

    def prune_keep(self, model) -> list:
        import torch
        return [[m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]]  # it gives the image

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights), data)

    def exported(self, file):
        from .export import ExportedRestorer  # on use: `import deepix` and `deepix --help` stay light
        return ExportedRestorer(file)


TASK = Restore()
