"""Where a segmenter fails, in figures the diagnosis reads: accuracy on the pixels along the true boundaries
against the interior (blurred boundaries), and the share of small and large objects found (small objects
missed), an object being one connected region of one class in the truth."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

BAND = 2            # pixels on either side of a true boundary that count as "boundary"
SMALL = 0.01        # an object under this share of its image's pixels is small
FOUND = 0.5         # an object is found when at least this share of its pixels is predicted as its class


def where_it_fails(images, preds, classes: int, ignore: int) -> dict:
    edge_right = edge_all = inner_right = inner_all = 0
    found = {"small": [0, 0], "large": [0, 0]}
    for im, p in zip(images, preds):
        t = im.mask
        valid = t != ignore
        edge = np.zeros_like(valid)
        edge[:, 1:] |= t[:, 1:] != t[:, :-1]
        edge[1:] |= t[1:] != t[:-1]
        edge = ndimage.binary_dilation(edge, iterations=BAND) & valid
        right = (p == t) & valid
        edge_right += int(right[edge].sum())
        edge_all += int(edge.sum())
        inner = valid & ~edge
        inner_right += int(right[inner].sum())
        inner_all += int(inner.sum())
        for c in range(1, classes):   # class 0 is the background, not an object
            regions, n = ndimage.label(t == c)
            if not n:
                continue
            area = np.bincount(regions.ravel(), minlength=n + 1)[1:]
            hit = np.bincount(regions.ravel(), weights=(p == c).ravel(), minlength=n + 1)[1:]
            for a, h in zip(area, hit):
                size = "small" if a < SMALL * t.size else "large"
                found[size][0] += int(h >= FOUND * a)
                found[size][1] += 1
    return {"boundary_accuracy": round(edge_right / edge_all, 4) if edge_all else None,
            "interior_accuracy": round(inner_right / inner_all, 4) if inner_all else None,
            "objects_found": {k: {"found": v[0], "objects": v[1], "share": round(v[0] / v[1], 4) if v[1] else None}
                              for k, v in found.items()}}
