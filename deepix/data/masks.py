"""Segmentation data in memory: images with a class index per pixel. The readers of the formats on disk
(folder pairs, Pascal VOC, COCO, YOLO) are in seg_formats.py; the built-in `shapes` draws its own masks."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE = 255   # the void index: pixels no loss or metric counts (VOC's border, unlabelled areas)


@dataclass
class SegImage:
    """One image and its mask, both at the image's own size."""
    name: str             # the file's name (its stem names the pair), or an index for generated images
    image: np.ndarray     # uint8 (H, W, 3) RGB
    mask: np.ndarray      # uint8 (H, W): the class index of each pixel, IGNORE (or --ignore-index) where void


@dataclass
class SegDataset:
    name: str
    classes: list[str]                      # index 0 is usually "background"
    splits: dict[str, list[SegImage]]       # "train", and "val" / "test" where the source has them
    info: dict = field(default_factory=dict)
    colours: list[tuple[int, int, int]] | None = None   # one per class where the source gives them (palette, YAML)

    def images(self) -> list[SegImage]:
        return [im for part in self.splits.values() for im in part]


def palette(n: int) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour map for n classes (index 0 black): the colours a user's tools already show."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def colours_of(ds: SegDataset) -> list[tuple[int, int, int]]:
    """The data set's own colours, else VOC's."""
    return list(ds.colours) if ds.colours and len(ds.colours) >= len(ds.classes) else palette(len(ds.classes))


def pixels_per_class(images: list[SegImage], n: int, ignore: int = IGNORE) -> list[int]:
    """How many pixels of each class (void left out): the class imbalance that dataset.json and the report show."""
    counts = np.zeros(n, np.int64)
    for im in images:
        m = im.mask[im.mask != ignore]
        counts += np.bincount(m.ravel(), minlength=n)[:n]
    return counts.tolist()


def load_shapes_masks(n_train: int = 2000, n_val: int = 500, n_test: int = 500, size: int = 128,
                      seed: int = 0) -> SegDataset:
    """The built-in `shapes` with the mask each shape is drawn with: background and the five shape classes."""
    from .shapes import DEFAULT_CLASSES, load_shapes
    det = load_shapes(n_train, n_val, n_test, size=size, seed=seed, masks=True)
    splits = {name: [SegImage(str(im.id), im.image.numpy().transpose(1, 2, 0), im.mask.numpy()) for im in part]
              for name, part in det.splits.items()}
    return SegDataset("shapes", ["background", *DEFAULT_CLASSES], splits,
                      {"format": "shapes", "source": "generated", "seed": seed, "size": size})
