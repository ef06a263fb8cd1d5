"""Finding objects by reward (Caicedo and Lazebnik, 2015): an agent that starts from the whole image and
moves, scales and reshapes a box until it triggers on an object, then masks it and looks for the next.
The hooks of tasks/base.py; the work is in env.py, baselines.py, model.py, train.py (DAgger on the
oracle, then PPO from deepix/rl), loaded.py, pictures.py, report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Task

# train.py and what it imports (torchrl, pycocotools) load on first use, not for `deepix --help`


class Locate(Task):
    name = "locate"
    title = "finding objects by reward: a box that moves until it triggers"
    defaults = dict(data="shapes", model="searcher", monitor="val_recall50", epochs=200, time_limit=12.0, batch=256,
                    lr=0.001, optimizer="adamw", schedule="cosine", weight_decay=0.0001, envs=16, rollout=32, bc=0.85)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "width", "bc", "envs", "rollout", "ppo_epochs",
                      "gamma", "entropy", "algo", "init"})
    augment_presets = False
    dropout = False
    result_unit = "frames"
    data_help = "shapes (built in, 128x128) or a COCO / YOLO / VOC detection set (its boxes are the objects to find)"

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Finder  # on use: `import deepix` and `deepix --help` stay light
        return Finder(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .loaded import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data)

    def figure_unit(self, monitor: str):
        return (1.0, "") if monitor.endswith(("loss", "steps_per_object")) else (100.0, " points")

    def higher_is_better(self, monitor: str) -> bool:
        return not monitor.endswith(("loss", "steps_per_object"))

    def main_figure(self, test: dict):
        return "test_recall50", test.get("recall50")

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        console.print(searchers_table(m, Table, f"{result['run']}: {m['images']} test images, {m['objects']} objects"))
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['frames_per_s']:,.0f} frames/s, {t['precision']}")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        console.print(searchers_table(m, Table, f"{m['images']} images, {m['objects']} objects"))

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict):
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return parts(run, summary, rows, config)

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from ...rl.diagnose import diagnose  # on use: `import deepix` and `deepix --help` stay light
        return diagnose(rows, summary, config, "val_recall50", "val recall@0.5")

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights))


def searchers_table(m: dict, Table, title: str):
    table = Table("searcher", "recall@0.5", "AP50", "AP", "mean IoU", "steps / found", "ms / image", title=title)
    for name, r in m["searchers"].items():
        table.add_row(name, f"{r['recall50']:.1%}", f"{r['ap50']:.3f}", f"{r['ap']:.3f}", f"{r['mean_iou']:.3f}",
                      "-" if r["steps_per_object"] is None else f"{r['steps_per_object']:.1f}", f"{r['ms_per_image']:.1f}")
    return table


TASK = Locate()
