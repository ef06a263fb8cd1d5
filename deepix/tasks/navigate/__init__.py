"""Path planning on map images, learnt by reward: an agent that sees the map, itself and the goal as image
channels and takes 8-connected moves. The hooks of tasks/base.py; the work is in maps.py, planner.py,
env.py, baselines.py, model.py, train.py (cloning the planner, then PPO from deepix/rl), loaded.py,
pictures.py, report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Report, Task

# train.py and what it imports (torchrl, scikit-image) load on first use, not for `deepix --help`


class Navigate(Task):
    name = "navigate"
    title = "path planning on map images, learnt by reward"
    defaults = dict(data="maps", model="fcn", imgsz=16, monitor="val_spl", epochs=200, time_limit=12.0, batch=64, bc=0.8,
                    lr=0.003, optimizer="adamw", schedule="cosine", weight_decay=0.0001)
    uses = frozenset({"imgsz", "val_fraction", "test_fraction", "width", "bc", "envs", "rollout", "ppo_epochs",
                      "gamma", "entropy", "wall_threshold", "cost", "algo"})
    augment_presets = False
    dropout = False
    result_unit = "frames"
    folder_imgsz = 16
    data_help = ("maps (built in: rooms, mazes and caves by seed, --imgsz 16, 32 or 64 cells a side) or a folder "
                 "of map images (dark pixels are walls; --cost reads grey levels as costs)")

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Navigator  # on use: `import deepix` and `deepix --help` stay light
        return Navigator(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .loaded import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data)

    def figure_unit(self, monitor: str):
        return (100.0, " points") if monitor.endswith(("success", "spl")) else (1.0, "")

    def main_figure(self, test: dict):
        return "test_success", test.get("success")

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        console.print(walkers_table(m, Table, f"{result['run']}: {m['episodes']} episodes on {m['maps']} unseen "
                                              f"{m['size'][0]}x{m['size'][1]} test maps"))
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['frames_per_s']:,.0f} frames/s, {t['precision']}")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        console.print(walkers_table(m, Table, f"{m['episodes']} episodes on {m['maps']} maps"))

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict) -> Report:
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return parts(run, summary, rows, config)

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from .report import findings  # on use: `import deepix` and `deepix --help` stay light
        return findings(rows, summary, config)

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights))


def walkers_table(m: dict, Table, title: str):
    """The agent beside the planner, greedy and random walkers: success, SPL, cost ratio, collisions, time."""
    table = Table("walker", "success", "SPL", "cost / optimal", "collisions", "steps", "ms per path", title=title)
    for name, r in m["walkers"].items():
        ratio = "-" if r["cost_ratio"] is None else f"{r['cost_ratio']:.3f}"
        table.add_row(name, f"{r['success']:.1%}", f"{r['spl']:.3f}", ratio, f"{r['collisions']:.2f}",
                      f"{r['length']:.1f}", f"{r['ms_per_path']:.2f}")
    return table


TASK = Navigate()
