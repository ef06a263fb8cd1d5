"""--precision auto: bf16 only where the CPU computes it natively, and the reason said."""
import torch

from deepix.engine import machine

CPU = torch.device("cpu")


def test_auto_precision_follows_the_cpus_real_bf16(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512f", "avx512bw", "amx_bf16", "amx_tile"})
    assert machine.precision("auto", CPU) == (True, "bf16: the CPU computes it natively (amx_bf16)")
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert machine.precision("auto", CPU)[0]
    # plain AVX-512: oneDNN would emulate bf16 (this torch says "supported" on any AVX-512 CPU)
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512f", "avx512bw", "avx512vl"})
    bf16, why = machine.precision("auto", CPU)
    assert not bf16 and why.startswith("fp32")
    monkeypatch.setattr(machine, "cpu_flags", set)  # flags unreadable (not Linux)
    assert machine.precision("auto", CPU)[0] is False
    assert machine.precision("bf16", CPU) == (True, "bf16: asked for (--precision bf16)")
    assert machine.precision("fp32", CPU)[0] is False


def test_this_machines_flags_are_read():
    flags = machine.cpu_flags()
    assert not flags or "fpu" in flags or "fp" in flags  # x86 lists fpu, ARM lists fp
