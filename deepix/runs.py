"""Run folders: runs/<task>/<name>/, never overwritten."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config import make_config
from .errors import UserError


def new_run(project: str, task: str, name: str = "") -> Path:
    base = Path(project) / task
    stem = name or "exp"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1, 100_000):
            run = base / (stem if (name and i == 1) else f"{stem}{i}")
            try:
                run.mkdir()
                return run
            except FileExistsError:
                continue
    except PermissionError:
        raise UserError(f"cannot write the run folder under {base}: permission denied; choose another --project") from None
    except OSError as e:
        raise UserError(f"cannot write the run folder under {base}: {e.strerror}; choose another --project") from None
    raise UserError(f"too many runs named {stem} under {base}")


def find_run(path: str | os.PathLike) -> Path:
    run = Path(path)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run} is not a deepix run folder (no config.yaml); pass a folder like runs/classify/exp1")
    return run


def open_run(run: str | os.PathLike, data: str | None = None):
    """A finished run's folder, settings and dataset.json; `data` says where its data now lives."""
    run = find_run(run)
    cfg = make_config(run / "config.yaml")
    if data:
        cfg.data = data
    path = run / "dataset.json"
    return run, cfg, json.loads(path.read_text()) if path.is_file() else {}
