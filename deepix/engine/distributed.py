"""Training on several processes, as torchrun starts them: the process group, each rank's share of a
batch, sums reduced across ranks, and the rule that only rank 0 writes. One process is world size 1
and every function here is then a no-op, so the loop reads the same either way."""
from __future__ import annotations

import atexit
import os
import signal
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from ..runs import new_run as make
from ..errors import UserError

_manual_grads = False  # set while a task that steps its own optimizers trains under several processes


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init() -> None:
    """Joins the process group torchrun set up (gloo on CPUs, nccl on GPUs); once per process."""
    if not under_torchrun() or dist.is_initialized():
        return
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))
    # leaving with the group's threads alive aborts the process ("terminate called ..."): close it first
    atexit.register(lambda: dist.destroy_process_group() if dist.is_initialized() else None)
    # the launcher ends the other ranks with SIGTERM when one fails: leave quietly, the launcher explains
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))


def lost_peer(e: BaseException) -> bool:
    """A collective that failed because another process went away."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return isinstance(e, getattr(dist, "DistError", ())) or any(
        w in str(e) for w in ("Connection reset", "Connection closed", "gloo", "NCCL", "Broken pipe"))


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def local_world() -> int:
    """Processes sharing this machine's cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if under_torchrun() else 1


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch's indices."""
    n = world()
    return idx if n == 1 else idx.tensor_split(n)[rank()]


def enough(batch: int) -> bool:
    """A global batch every rank can train on: at least two images each (BatchNorm needs two)."""
    return batch >= 2 * world()


def broadcast(obj):
    """rank 0's value of `obj`, on every rank."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduce_sums(sums: dict[str, float], seen: int) -> tuple[dict[str, float], int]:
    """Per-rank running sums of the training metrics, added over all ranks."""
    if world() == 1:
        return sums, seen
    keys = list(sums)  # the same order on every rank: the same code made them
    t = torch.tensor([sums[k] for k in keys] + [float(seen)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t = t.cpu().tolist()
    return dict(zip(keys, t[:-1])), int(t[-1])


def close() -> None:
    """The end of a command under torchrun: wait for every rank, then close the group while all are alive,
    so that no rank tears down its connections while a peer still talks to it."""
    if dist.is_initialized():
        if world() > 1:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def check_sync_bn(sync_bn: bool, cuda: bool) -> None:
    if sync_bn and not cuda:
        raise UserError("--sync-bn needs GPUs (SyncBatchNorm runs on nccl); on CPUs each process keeps its own "
                        "BatchNorm statistics, drop --sync-bn")


def wrap(model: torch.nn.Module, sync_bn: bool) -> torch.nn.Module:
    """DistributedDataParallel around `model` (gradients averaged during backward); the model itself is
    what the loop saves and evaluates."""
    if world() == 1:
        return model
    dev = next(model.parameters()).device
    check_sync_bn(sync_bn, dev.type == "cuda")
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def manual_grads(on: bool) -> None:
    """Tasks that drive parts of their model (a GAN's G and D) cannot sit inside DDP: their gradients
    are averaged by average_grads in the optimizer step instead."""
    global _manual_grads
    _manual_grads = on and world() > 1


def average_grads(params) -> None:
    if not _manual_grads:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world()
    for g, f in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(f)


def new_run(project: str, task: str, name: str = "") -> Path:
    """The run folder, made by rank 0 and told to the others. A launcher that asked (DEEPIX_RUN_FILE)
    learns the first one made, to say where to resume should a rank fail."""
    path = broadcast(str(make(project, task, name)) if is_main() else None)
    note = os.environ.get("DEEPIX_RUN_FILE")
    if note and is_main() and Path(note).is_file() and not Path(note).read_text():
        Path(note).write_text(path)
    return Path(path)
