"""The task registry: each task is a package here (tasks/<name>/) whose `TASK` follows tasks/base.py.
The built-in ones are imported when first asked for; `register` adds one made elsewhere."""
from __future__ import annotations

import importlib

from ..errors import UserError
from .base import Task

BUILT_IN = ("classify", "restore", "detect", "generate", "segment", "pretrain", "navigate", "locate", "agent")
_REGISTERED: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds a task (or replaces one of the same name): `deepix train NAME` and every verb then take it."""
    _REGISTERED[task.name] = task
    return task


def names() -> list[str]:
    return list(BUILT_IN) + [n for n in _REGISTERED if n not in BUILT_IN]


def get(name: str) -> Task:
    if name not in _REGISTERED:
        if name not in BUILT_IN:
            raise UserError(f"unknown task {name!r}: use one of {', '.join(names())}")
        register(importlib.import_module(f".{name}", __name__).TASK)
    return _REGISTERED[name]
