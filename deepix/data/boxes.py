"""Detection data: images with labelled boxes, the one in-memory form every detection reader returns.

Boxes are float32 (N, 4) tensors of pixel corners x1, y1, x2, y2 with 0 <= x1 < x2 <= W and
0 <= y1 < y2 <= H (the readers clip and drop, and count what they did in `DetDataset.info`);
labels are int64 (N,) indices into `DetDataset.classes`. An image with no boxes is background.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DetImage:
    """One image and its boxes. `file` is its path on disk, or "" when `image` holds it in memory."""
    file: str
    size: tuple[int, int]          # (H, W)
    boxes: torch.Tensor            # float32 (N, 4) xyxy pixels
    labels: torch.Tensor           # int64 (N,)
    image: torch.Tensor | None = None   # uint8 (C, H, W) when held in memory (the built-in shapes)
    id: int | str = 0              # its id in the source (COCO image id, file stem), kept on conversion
    mask: torch.Tensor | None = None    # uint8 (H, W) class + 1 per pixel, where the source draws masks (shapes)

    def __post_init__(self):
        if self.boxes.numel() == 0:
            self.boxes = self.boxes.reshape(0, 4).float()
            self.labels = self.labels.reshape(0).long()


@dataclass
class DetDataset:
    """Named splits ("train", "val", "test", or "all" when the source has none) of DetImages."""
    name: str
    classes: list[str]
    splits: dict[str, list[DetImage]]
    info: dict = field(default_factory=dict)   # format, source, and counts of clipped / dropped boxes

    def images(self) -> list[DetImage]:
        return [im for split in self.splits.values() for im in split]


def empty_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
