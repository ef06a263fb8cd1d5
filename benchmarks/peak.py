"""Peak resident memory of the calling process (standard library only: it runs in every benchmark venv)."""
from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's own peak. Not ru_maxrss alone: Linux carries it over exec from the forked parent,
    so a worker started by a benchmark that has torch loaded would read at least the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # macOS bytes, Linux KiB
