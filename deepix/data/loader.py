"""Batches of uint8 images: sliced from memory, or decoded by DataLoader workers when the
images do not fit. Order comes from a generator seeded by (seed, epoch) so a resumed run
sees the batches an uninterrupted one would have."""
from __future__ import annotations

import torch

from .types import Split
from .folder import load_image
from ..engine.distributed import enough, shard as part


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + stream)


class Batches:
    def __init__(self, split: Split, batch: int, shuffle: bool, seed: int = 0,
                 channels: int = 1, imgsz: int = 0, workers: int = 0):
        self.split, self.batch, self.shuffle, self.seed = split, batch, shuffle, seed
        self.channels, self.imgsz, self.workers = channels, imgsz, workers

    def __len__(self) -> int:
        n = len(self.split)
        full, rest = divmod(n, self.batch)
        # a training batch of one breaks BatchNorm; fold it away
        return full + (1 if rest > 1 or (rest == 1 and not self.shuffle) else 0)

    def order(self, epoch: int) -> torch.Tensor:
        n = len(self.split)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=epoch_generator(self.seed, epoch))

    def epoch(self, epoch: int = 0, shard: bool = False):
        """The epoch's batches; with `shard`, this rank's share of each (every rank the same count of steps)."""
        idx = self.order(epoch)
        chunks = [idx[i * self.batch:(i + 1) * self.batch] for i in range(len(self))]
        if shard:
            chunks = [part(c) for c in chunks if enough(len(c))]
        if self.split.x is not None:
            for c in chunks:
                yield self.split.x[c], self.split.y[c]
            return
        yield from self._stream(chunks)

    def _stream(self, chunks):
        from torch.utils.data import DataLoader  # DataLoader (and its workers' machinery): only data streamed from disk needs it
        ds = _PathImages(self.split.paths, self.split.y, self.channels, self.imgsz)
        loader = DataLoader(ds, batch_sampler=[c.tolist() for c in chunks], num_workers=self.workers)
        yield from loader


class _PathImages(torch.utils.data.Dataset):
    def __init__(self, paths, labels, channels, imgsz):
        self.paths, self.labels, self.channels, self.imgsz = paths, labels, channels, imgsz

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return load_image(self.paths[i], self.channels, self.imgsz), self.labels[i]
