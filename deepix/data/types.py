"""The one in-memory form every reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Split:
    """Images as uint8 (N, C, H, W) tensors and int64 labels; or, for folders too large
    for memory, `paths` (decoded on the fly) with `x` left None."""
    x: torch.Tensor | None
    y: torch.Tensor
    paths: list[str] | None = None
    ids: list | None = None        # each item's place in its source (index or relative path), for the record

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    channels: int
    size: tuple[int, int]          # (H, W) every image has
    kind: str = "natural"          # "digits" or "natural": picks the augmentation preset
    info: dict = field(default_factory=dict)   # how it was read and split, saved with the run

    def counts(self, split: Split) -> list[int]:
        return torch.bincount(split.y, minlength=len(self.classes)).tolist()
