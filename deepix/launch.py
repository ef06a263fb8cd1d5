"""`--nproc N`: deepix starts PyTorch's own launcher (what torchrun runs) on itself, and turns a rank that
failed into one line that says where the run stands and how to go on."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from .errors import UserError

FLAGS = ("--nproc", "--nnodes", "--rdzv-endpoint", "--rdzv-id")


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several processes (the same as torchrun's)")
    g.add_argument("--nproc", type=int, help="processes on this machine (torchrun --nproc-per-node): one per GPU, "
                   "or CPU processes sharing the cores")
    g.add_argument("--nnodes", type=int, default=1, help="machines taking part; each runs the same command")
    g.add_argument("--rdzv-endpoint", default="", help="HOST:PORT where the machines meet (any one of them)")
    g.add_argument("--rdzv-id", default="deepix", help="a name for this job, the same on every machine")


def child_argv(argv: list[str]) -> list[str]:
    """The command line without the launch flags: what every process runs."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in FLAGS:
            skip = "=" not in a
            continue
        out.append(a)
    return out


def check_settings(task: str, config: str | None, settings: dict) -> None:
    """The settings' own errors, said once by the launcher rather than by every process."""
    import torch  # on use: `import deepix` and `deepix --help` stay light

    from .config import make_config  # on use: `import deepix` and `deepix --help` stay light
    from .engine.distributed import check_sync_bn  # on use: `import deepix` and `deepix --help` stay light
    cfg = make_config(config, task=task, **{k: v for k, v in settings.items() if isinstance(v, (str, int, float, bool))})
    check_sync_bn(cfg.sync_bn, torch.cuda.is_available())


def launch(argv: list[str], nproc: int, nnodes: int = 1, endpoint: str = "", job: str = "deepix",
           resume: str | None = None) -> int:
    """Runs `deepix ARGV` in nproc processes per machine; returns the exit code."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError  # torchrun's launcher: only --nproc needs it
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch  # torchrun's launcher: only --nproc needs it
    if nproc < 1 or nnodes < 1:
        raise UserError("--nproc and --nnodes must be at least 1")
    if nnodes > 1 and not endpoint:
        raise UserError("--nnodes N needs --rdzv-endpoint HOST:PORT, the same on every machine (e.g. the first one's)")
    with tempfile.NamedTemporaryFile("w", suffix=".run", delete=False) as f:
        note = Path(f.name)  # rank 0 writes the run folder it made here
    os.environ["DEEPIX_RUN_FILE"] = str(note)
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its warnings would bury the one line that matters
    config = LaunchConfig(min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc, rdzv_backend="c10d",
                          rdzv_endpoint=endpoint or "localhost:0", run_id=job if nnodes > 1 else uuid.uuid4().hex,
                          max_restarts=0, monitor_interval=0.2)
    try:
        elastic_launch(config, sys.executable)("-m", "deepix", *child_argv(argv))
        return 0
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda kv: (_blame(kv[1].exitcode), kv[0]))
        if failure.exitcode == 2:  # a user error: the rank has said it in one line already
            return 2
        code = failure.exitcode
        how = (f"was killed ({signal.Signals(-code).name})" if code < 0 and -code in signal.Signals._value2member_map_
               else f"stopped with exit code {code}")
        run = resume or note.read_text().strip()
        print(f"deepix: error: rank {rank} {how}, so the other processes were stopped; {_where(run, nproc, nnodes)}",
              file=sys.stderr)
        return 1
    finally:
        note.unlink(missing_ok=True)


def _blame(code: int) -> int:
    """Which failure to name first: one killed from outside, a user error, a crash; last, the ranks that the
    launcher itself ended (SIGTERM) once another had failed."""
    if code in (-signal.SIGTERM, 128 + signal.SIGTERM):
        return 3
    return 0 if code < 0 else 1 if code == 2 else 2


def _where(run: str, nproc: int, nnodes: int) -> str:
    if not run:
        return "it failed before the run folder was made"
    if not (Path(run) / "state" / "last.pt").is_file():
        return f"no epoch of {run} had finished: start it again"
    import yaml  # on use: `import deepix` and `deepix --help` stay light
    task = yaml.safe_load((Path(run) / "config.yaml").read_text()).get("task", "classify")
    again = f" --nproc {nproc}" + (f" --nnodes {nnodes} --rdzv-endpoint HOST:PORT" if nnodes > 1 else "")
    return (f"{run} keeps its last finished epoch: go on with deepix train {task} --resume {run}{again} "
            "(any number of processes)")
