"""Threads, precision and memory layout: set from what this machine has and measured to pay."""
from __future__ import annotations

import os

import torch
from .distributed import local_world


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_threads(threads: int) -> int:
    n = threads or max(1, cores() // local_world())  # processes on one machine share its cores
    torch.set_num_threads(n)
    return n


def device() -> torch.device:
    # under torchrun each process has its own GPU (LOCAL_RANK), made current when the group formed
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def cpu_has_bf16() -> bool:
    # AVX-512 BF16 or AMX make bf16 matmuls several times faster than fp32 on the CPU
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(setting: str, dev: torch.device) -> bool:
    if setting == "bf16":
        return True
    if setting == "fp32":
        return False
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()
