"""An agent for the user's own Gymnasium environment with image observations and discrete actions:
`deepix train agent --data my_envs.py:Maze` or `deepix.train("agent", env=Maze)`. PPO (or DQN) from
deepix/rl, with DAgger first when the environment names an expert's action. The hooks of tasks/base.py;
the work is in env.py, model.py, train.py, loaded.py, pictures.py, report.py and export.py."""
from __future__ import annotations

from pathlib import Path

from ..base import Task

# train.py and what it imports (torchrl) load on first use, not for `deepix --help`


class Agent(Task):
    name = "agent"
    title = "an agent for your own Gymnasium environment (image observations), learnt by reward"
    defaults = dict(data="catch", model="cnn", monitor="val_return", epochs=200, time_limit=10.0, batch=256,
                    lr=0.003, optimizer="adamw", schedule="cosine", weight_decay=0.0, envs=16, rollout=64, bc=0.0)
    uses = frozenset({"width", "bc", "envs", "rollout", "ppo_epochs", "gamma", "entropy", "algo"})
    augment_presets = False
    dropout = False
    result_unit = "frames"
    data_help = ("catch (built in) or your environment: a registered Gymnasium id, module:Class or file.py:Class "
                 "(image observations, discrete actions); in Python, env=YourEnv")

    def given(self, data):
        return data if callable(data) else None

    def setup(self, cfg, dataset, net, dev, bf16, resume):
        from .train import setup  # on use: `import deepix` and `deepix --help` stay light
        return setup(cfg, dataset, net, dev, bf16, resume)

    def load(self, run: Path, weights: str = "best", model=None):
        from .loaded import Player  # on use: `import deepix` and `deepix --help` stay light
        return Player(run, weights)

    def val(self, run: Path, data: str | None = None, split: str = "test") -> dict:
        from .loaded import val  # on use: `import deepix` and `deepix --help` stay light
        return val(self.load(run), data)

    def main_figure(self, test: dict):
        return "test_return", test.get("return")

    def print_result(self, result: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        m, t = result["test"], result["train"]
        console.print(agents_table(m, Table, f"{result['run']}: {m['episodes']} test episodes"))
        console.print(f"training: {t['epochs_run']} epochs (best {t['best_epoch']}), {t['seconds']:.0f} s, "
                      f"{t['frames_per_s']:,.0f} frames/s, {t['precision']}")
        console.print(f"report: {result['report']}")

    def print_val(self, m: dict, console) -> None:
        from rich.table import Table  # on use: `deepix --help` stays light
        console.print(agents_table(m, Table, f"{m['episodes']} test episodes"))

    def report(self, run: Path, summary: dict, rows: list[dict], config: dict):
        from .report import parts  # on use: `import deepix` and `deepix --help` stay light
        return parts(run, summary, rows, config)

    def findings(self, rows: list[dict], summary: dict, config: dict) -> list[dict]:
        from ...rl.diagnose import diagnose  # on use: `import deepix` and `deepix --help` stay light
        return diagnose(rows, summary, config, "val_return", "val mean return", share=False)

    def exportable(self, run: Path, weights: str, data: str | None):
        from .export import exportable  # on use: `import deepix` and `deepix --help` stay light
        return exportable(self.load(run, weights))


def agents_table(m: dict, Table, title: str):
    from .report import HEAD, rows_of  # on use: `deepix --help` stays light
    table = Table(*HEAD, title=title)
    for row in rows_of(m["agents"]):
        table.add_row(*row)
    return table


TASK = Agent()
