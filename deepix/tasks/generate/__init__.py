"""Image generation: new images like the training set (GANs, a small diffusion model). The hooks of
tasks/base.py; the work is in train.py (data, models, the GAN step, the judge, FID/KID), metrics.py,
pictures.py, report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Report, Task

# train.py and what it imports (torchmetrics' FID, matplotlib) load on first use, not for `deepix --help`


class Generate(Task):
    name = "generate"
    title = "new images like the training set"
    no_int8 = ("a generator is judged by FID over thousands of samples, and int8 shifts it in ways a test split cannot "
               "check; export it in float")
    defaults = dict(data="mnist-5k", model="cgan", loss="hinge", monitor="val_fid", epochs=40, batch=64, lr=0.0002,
                    d_lr=0.0002, optimizer="adam", schedule="constant", weight_decay=0.0)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "strict", "hflip", "loss", "width", "z_dim", "d_lr",
                      "sn", "gp", "diversity", "ema", "judge_epochs", "judge", "test_samples", "sample_steps", "inception",
                      "inception_weights"})
    ignores = frozenset({"optimizer", "momentum", "nesterov"})  # a GAN's two Adams (or the denoiser's AdamW) are fixed

    def higher_is_better(self, monitor: str) -> bool:
        return not monitor.endswith(("loss", "fid", "kid"))

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .train import Sampler  # on use: `import deepix` and `deepix --help` stay light
        return Sampler(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .train import val  # on use: `import deepix` and `deepix --help` stay light
        return val(run)

    def main_figure(self, test: dict):
        return "test_fid", test.get("fid")

    def print_result(self, result: dict, console) -> None:
        m, t = result["test"], result["train"]
        acc = "" if m.get("class_accuracy") is None else f"  asked class {m['class_accuracy']:.1%}"
        console.print(f"{result['run']}: FID {m['fid']:.2f} (real-vs-real floor {m['fid_floor']:.2f})  KID "
                      f"{m['kid']:.4f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}  smallest class "
                      f"{m['coverage_min']:.1%}{acc}  ({m['samples']:,} samples; features: {m['feature_space']})")
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['images_per_s']:,.0f} images/s, {t['precision']}")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        console.print(f"FID {m['fid']:.3f} (floor {m['fid_floor']:.3f})  KID {m['kid']:.4f}  precision "
                      f"{m['precision']:.3f}  recall {m['recall']:.3f}  smallest class {m['coverage_min']:.1%}"
                      + ("" if m["class_accuracy"] is None else f"  asked class {m['class_accuracy']:.1%}")
                      + f"  ({m['samples']:,} samples; {m['feature_space']})")

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from ...report.html import esc, img, table  # on use: `import deepix` and `deepix --help` stay light
        from .report import curves, parts  # on use: `import deepix` and `deepix --help` stay light
        plots = run / "plots"
        return Report(*parts(summary, plots, esc, table, img), curves=curves(rows, plots))  # a GAN's many columns

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from .report import findings  # on use: `import deepix` and `deepix --help` stay light
        return findings(rows, summary)

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights))


TASK = Generate()
