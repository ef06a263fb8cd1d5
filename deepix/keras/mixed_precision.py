"""set_global_policy: 'float32' or 'mixed_bfloat16' fix the precision; deepix.keras otherwise
uses bf16 autocast only where the machine is fast at it."""
from __future__ import annotations

from ..errors import UserError
from . import training

POLICIES = {"float32": "fp32", "mixed_bfloat16": "bf16", "auto": "auto"}


def set_global_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise UserError(f"deepix.keras does not support the precision policy {policy!r}; use one of "
                        f"{', '.join(POLICIES)}")
    training.PRECISION = POLICIES[policy]


def global_policy() -> str:
    return {v: k for k, v in POLICIES.items()}[training.PRECISION]
