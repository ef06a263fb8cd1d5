"""Prediction over files and folders, streamed: images are found, read and predicted a chunk at a time and
each result is written as it comes, so memory stays flat however large the folder. Under torchrun each
rank takes every N-th image and writes its own part; rank 0 merges the parts back into input order."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Iterator

from .engine import distributed as dist
from .errors import UserError
from .data.folder import IMAGE_EXTENSIONS


def iter_images(sources: list[str]) -> Iterator[Path]:
    """Image files in the order given, folders walked in sorted order, one directory listed at a time; a folder
    reached again through a symbolic link (a loop) is walked once."""
    found = False
    for s in sources:
        path = Path(s)
        if path.is_file():
            found = True
            yield path
        elif path.is_dir():
            stack, seen = [path], set()
            while stack:
                d = stack.pop()
                st = d.stat()
                if (st.st_dev, st.st_ino) in seen:  # a symbolic link back to a folder already walked
                    continue
                seen.add((st.st_dev, st.st_ino))
                entries = sorted(os.scandir(d), key=lambda e: e.name)
                for e in entries:
                    if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS:
                        found = True
                        yield Path(e.path)
                stack += [Path(e.path) for e in reversed(entries) if e.is_dir()]
        else:
            raise UserError(f"not found: {path}")
    if not found:
        raise UserError(f"no images in {', '.join(sources)}")


def mine(sources: list[str]) -> Iterator[tuple[int, Path]]:
    """(index in the whole input, path) of the images this rank predicts."""
    n, r = dist.world(), dist.rank()
    return ((i, p) for i, p in enumerate(iter_images(sources)) if i % n == r)


def chunks(it, size: int):
    it = iter(it)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Lines:
    """One JSON object per line into OUT/NAME: this rank's part under torchrun, merged by rank 0 on close.
    OUT/NAME is replaced only on close, so a run that stops on a bad image leaves an earlier file as it was
    (and what it had written in OUT/.NAME.part)."""

    def __init__(self, out: Path, name: str):
        self.out, self.name = out, name
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / (f".{name}.part" if dist.world() == 1 else f".{name}.rank{dist.rank()}")
        self.f = self.path.open("w")

    def write(self, obj: dict) -> None:
        self.f.write(json.dumps(obj) + "\n")

    def close(self) -> Path:
        """The merged file (on every rank, once all have finished)."""
        self.f.close()
        target = self.out / self.name
        if dist.world() == 1:
            self.path.replace(target)
        else:
            dist.barrier()
            if dist.is_main():
                parts = [(self.out / f".{self.name}.rank{r}").open() for r in range(dist.world())]
                with target.open("w") as f:  # rank r holds images r, r+N, ...: take a line from each in turn
                    for lines in itertools.zip_longest(*parts):
                        f.writelines(line for line in lines if line is not None)
                for p in parts:
                    p.close()
                    Path(p.name).unlink()
            dist.barrier()
        return target


def dist_sum(n: int) -> int:
    return int(dist.reduce_sums({"n": float(n)}, 0)[0]["n"])
