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


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_why() -> tuple[bool, str]:
    """Whether bf16 pays on this CPU, and why. Only AVX-512 BF16 and AMX compute bf16 natively; oneDNN
    also "supports" bf16 on plain AVX-512 by emulating it, which is never faster than fp32 and less precise,
    so there (and wherever the flags cannot be read) the answer is fp32."""
    flags = cpu_flags()
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    if native:
        return True, f"bf16: the CPU computes it natively ({' + '.join(native)})"
    try:
        emulated = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        emulated = False
    if emulated:
        return False, "fp32: this CPU has no AVX-512 BF16 or AMX, so bf16 would be emulated"
    return False, "fp32: this CPU has no native bf16"


def cpu_has_bf16() -> bool:
    return cpu_bf16_why()[0]


def precision(setting: str, dev: torch.device) -> tuple[bool, str]:
    """Whether to compute in bf16, and the reason, for --precision SETTING on DEV."""
    if setting == "bf16":
        return True, "bf16: asked for (--precision bf16)"
    if setting == "fp32":
        return False, "fp32: asked for (--precision fp32)"
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "bf16: the GPU supports it" if ok else "fp32: the GPU has no bf16"
    return cpu_bf16_why()


def use_bf16(setting: str, dev: torch.device) -> bool:
    return precision(setting, dev)[0]
