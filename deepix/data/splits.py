"""Train/val/test index splits that keep class proportions."""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError


def stratified_split(y: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, val, test) indices into `y`, stratified by label where the classes allow."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"val and test fractions must be >= 0 and add up to less than 1, "
                        f"got {val_fraction} and {test_fraction}")
    y = np.asarray(y)
    rest, test = _carve(np.arange(len(y)), y, test_fraction, seed)
    # val_fraction is a share of the whole set, so rescale it to what the test split left
    train, val = _carve(rest, y[rest], val_fraction / (1 - test_fraction), seed)
    return np.sort(train), np.sort(val), np.sort(test)


def _carve(idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (kept, taken) with about `fraction` of it taken."""
    # rounding up (as sklearn does) gives a small set at least one example; the epsilon
    # keeps float noise such as 0.1 * 30 = 3.0000000000000004 from adding one more
    n_take = min(math.ceil(fraction * len(idx) - 1e-9), len(idx) - 1)
    if n_take < 1:
        return idx, idx[:0]
    from sklearn.model_selection import train_test_split  # scikit-learn takes ~1 s to import: only splitting pays it
    try:
        kept, taken = train_test_split(idx, test_size=n_take, random_state=seed, stratify=y)
    except ValueError:
        # a class too small to appear on both sides: a plain random split still works
        kept, taken = train_test_split(idx, test_size=n_take, random_state=seed)
    return kept, taken


def hold_out(ds, val_fraction: float, test_fraction: float, seed: int):
    """Carve val (and test) from the training images where the source has no such split: for a data set
    with `splits` (name -> list of images) and `info` (detection's DetDataset, segmentation's SegDataset)."""
    splits = dict(ds.splits)
    if "train" not in splits:
        splits["train"] = [im for name in list(splits) for im in splits.pop(name)]
    rng = np.random.default_rng(seed)
    for name, fraction in (("val", val_fraction), ("test", test_fraction)):
        if name in splits or not fraction:
            continue
        order = rng.permutation(len(splits["train"]))
        n = int(round(len(order) * fraction))
        if n < 1 or n >= len(order):
            raise UserError(f"{len(splits['train'])} training images are too few to hold out a {name} split "
                            f"of {fraction:.0%}; add a {name} split to the data or change --{name}-fraction")
        taken = set(order[:n].tolist())
        splits[name] = [im for i, im in enumerate(splits["train"]) if i in taken]
        splits["train"] = [im for i, im in enumerate(splits["train"]) if i not in taken]
        ds.info[f"{name}_from"] = f"{fraction:.0%} of train, seed {seed}"
    ds.splits = splits
    return ds
