"""What a sweep tries, shared by the runner (sweep.py) and its report (report/sweep.py): the plan, the
ranges that random and TPE search sample, and the command line that repeats a setting."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .config import Config


@dataclass
class Range:
    """A numeric range to sample from (random / tpe search)."""
    low: float
    high: float
    log: bool
    integer: bool

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}" + (" (log)" if self.log else "")


@dataclass
class Plan:
    """A resolved sweep: what every trial shares, what varies, and the trials (grid and presets)."""
    task: str
    base: dict
    factors: dict  # name -> {"values": [...] or a Range, "default": the value the others are measured against}
    trials: list = field(default_factory=list)  # {"labels": {factor: value}, "settings": {...}}; empty for random/tpe
    seeds: list = field(default_factory=lambda: [0])
    search: str = "grid"
    n_trials: int = 0
    monitor: str = "val_accuracy"
    higher: bool = True  # the monitor improves upward (the task says)
    question: str = ""
    preset: str = ""

    @property
    def runs(self) -> int:
        return (len(self.trials) if self.search == "grid" else self.n_trials) * len(self.seeds)


def flags(task: str, settings: dict) -> str:
    """The `deepix train` command line that repeats these settings."""
    defaults = {f.name: f.default for f in fields(Config)}
    out = [f"deepix train {task}"]
    for k, v in settings.items():
        if k in ("threads", "quiet", "project", "name") or v is None:
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(defaults.get(k), bool):
            out.append(flag if v else f"--no-{flag[2:]}")
        else:
            out.append(f"{flag} {v:g}" if isinstance(v, float) else f"{flag} {v}")
    return " ".join(out)
