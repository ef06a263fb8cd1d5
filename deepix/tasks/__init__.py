"""One file per task: what a batch, the loss, the metrics and the pictures mean for it."""
from __future__ import annotations

import importlib

from ..errors import UserError

TASKS = ("classify", "restore", "detect", "generate", "pretrain")


def get(name: str):
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return importlib.import_module(f".{name}", __name__)
