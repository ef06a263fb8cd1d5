"""Image folders (class subfolders, optionally under train/val/test) read into a Dataset."""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import UserError
from .splits import stratified_split
from .types import Dataset, Split

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_SIZE = 64
SPLITS = ("train", "val", "test")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the file name says image (hidden files never do)."""
    # macOS leaves "._name.jpg" resource forks next to real images; they are not images
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def is_colour_mode(mode: str) -> bool:
    """Whether an image of this PIL mode needs three channels."""
    # decided by mode alone so a file header is enough; a palette image counts as colour
    return not (mode in _GRAY_MODES or mode.startswith("I;16"))


def load_image(src: str | os.PathLike | Image.Image, channels: int, imgsz: int) -> torch.Tensor:
    """A file or PIL image as a uint8 (channels, imgsz, imgsz) tensor; UserError if unreadable."""
    try:
        return _decode(src, channels, imgsz)[0]
    except Exception as e:
        raise UserError(f"cannot read image {getattr(src, 'filename', '') or src}: {e}") from e


def read_rgb(src: str | os.PathLike | Image.Image) -> np.ndarray:
    """An image (file or PIL) as uint8 H x W x 3, upright: its EXIF orientation applied, as a photo viewer
    shows it, any mode made RGB. Every reader and predict path takes pixels this way; boxes and masks are in
    the coordinates of the upright image."""
    if isinstance(src, Image.Image):
        return np.asarray(to_l_or_rgb(ImageOps.exif_transpose(src)).convert("RGB")).copy()
    with Image.open(src) as img:
        return np.asarray(to_l_or_rgb(ImageOps.exif_transpose(img)).convert("RGB")).copy()


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(H, W) of the image as shown, from its header: EXIF orientations 5 to 8 turn it a quarter."""
    w, h = img.size
    return (w, h) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (h, w)


def read_folder(root: str, imgsz: int, val_fraction: float, test_fraction: float, seed: int,
                strict: bool = False, memory_budget_bytes: int = 2**31) -> Dataset:
    """Read an image folder into a Dataset, splitting off val/test where no folder gives them."""
    base = Path(root).expanduser().absolute()
    if not base.exists():
        raise UserError(f"data folder not found: {base}")
    if not base.is_dir():
        raise UserError(f"data path is not a folder: {base} (give the folder that holds the class folders)")
    imgsz = imgsz or DEFAULT_SIZE
    if imgsz < 0:
        raise UserError(f"imgsz must be positive, got {imgsz}")
    layout, classes, found, ignored = _scan(base)

    n_files = sum(len(paths) for paths, _ in found.values())
    channels = 3 if any_colour(found["train"][0]) else 1
    in_memory = n_files * channels * imgsz * imgsz <= memory_budget_bytes
    corrupt: list[str] = []
    conversions: Counter = Counter()
    data = {}
    for split, (paths, labels) in found.items():
        # too large for memory: every file is still decoded once here, so corrupt ones are skipped and
        # counted (or refused under --strict) exactly as in memory, and the loader only meets good files
        data[split] = decode_all(paths, labels, channels, imgsz, strict, base, corrupt, conversions,
                                 keep_pixels=in_memory)
    _check_readable(base, classes, data["train"], corrupt)

    carved = [s for s in ("val", "test") if s not in found]
    if carved:
        full = data["train"]
        train, val, test = stratified_split(full.y.numpy(), val_fraction if "val" in carved else 0,
                                            test_fraction if "test" in carved else 0, seed)
        data["train"] = _subset(full, train)
        data.update({s: _subset(full, idx) for s, idx in (("val", val), ("test", test)) if s in carved})
    _check_not_empty(base, classes, data, found, val_fraction, test_fraction)

    return Dataset(
        name=base.name, classes=classes, train=data["train"], val=data["val"], test=data["test"],
        channels=channels, size=(imgsz, imgsz), kind="natural",
        info={
            "layout": layout, "root": str(base), "seed": seed,
            "fractions": {"val": val_fraction, "test": test_fraction},
            "split_sources": {s: "carved from train" if s in carved else "folder" for s in ("val", "test")},
            "in_memory": in_memory,
            "counts": {s: len(data[s]) for s in SPLITS},
            "class_counts": {s: torch.bincount(data[s].y, minlength=len(classes)).tolist() for s in SPLITS},
            "ignored_files": ignored,
            "corrupt_files": len(corrupt), "corrupt_examples": corrupt[:10],
            "mode_conversions": dict(conversions),
        })


def _scan(base: Path) -> tuple[str, list[str], dict[str, tuple[list[Path], list[int]]], int]:
    """Find the layout, the classes, each split folder's (image paths, labels), and the ignored-file count."""
    if (base / "train").is_dir():
        layout, dirs = "train/val/test", {s: base / s for s in SPLITS if (base / s).is_dir()}
    else:
        layout, dirs = "class folders", {"train": base}
    classes = _subfolders(dirs["train"])
    if not classes:
        raise UserError(f"no class folders in {dirs['train']}: put images in {dirs['train']}/<class>/")
    if len(classes) < 2:
        raise UserError(f"need at least 2 classes, found only '{classes[0]}' in {dirs['train']}")
    found, ignored = {}, 0
    for split, folder in dirs.items():
        unknown = sorted(set(_subfolders(folder)) - set(classes))
        if unknown:
            raise UserError(f"{folder / unknown[0]} is not a class in {dirs['train']}: rename or remove it")
        paths, labels = [], []
        for label, name in enumerate(classes):
            # val/test may lack a class; rglob also takes images nested deeper in a class folder
            class_dir = folder / name
            files = sorted(p for p in class_dir.rglob("*") if p.is_file()) if class_dir.is_dir() else []
            images = [p for p in files if is_image_file(p)]
            if split == "train" and not images:
                raise UserError(f"class folder {folder / name} has no images: add images or remove the folder")
            ignored += len(files) - len(images)
            paths += images
            labels += [label] * len(images)
        found[split] = (paths, labels)
    return layout, classes, found, ignored


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def any_colour(paths: list[Path]) -> bool:
    """Whether any of these images has a colour mode, reading headers only."""
    for path in paths:
        try:
            with Image.open(path) as img:
                if is_colour_mode(img.mode):
                    return True
        except Exception:
            continue  # unreadable files are reported when decoded
    return False


def _decode(src: str | os.PathLike | Image.Image, channels: int,
            imgsz: int) -> tuple[torch.Tensor, str | None]:
    """load_image, also naming the mode conversion made ("RGBA->RGB"), or None."""
    if isinstance(src, Image.Image):
        return _to_tensor(src, channels, imgsz)
    with Image.open(src) as img:
        # JPEGs decode at up to 1/8 scale when that still covers imgsz: much faster, and
        # the resize afterwards still antialiases
        img.draft(None, (imgsz, imgsz))
        img.load()  # truncated files only fail once the pixels are read
        return _to_tensor(img, channels, imgsz)


def _to_tensor(img: Image.Image, channels: int, imgsz: int) -> tuple[torch.Tensor, str | None]:
    source_mode = img.mode
    img = to_l_or_rgb(ImageOps.exif_transpose(img)).convert("RGB" if channels == 3 else "L")
    # PIL widens the bilinear filter when shrinking, so this is antialiased
    img = img.resize((imgsz, imgsz), Image.Resampling.BILINEAR)
    a = torch.from_numpy(np.array(img))  # uint8 (H, W) or (H, W, 3): torchvision's import would cost seconds
    converted = None if img.mode == source_mode else f"{source_mode}->{img.mode}"
    return (a[None] if a.ndim == 2 else a.permute(2, 0, 1)), converted


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as L or RGB: high bit depths scaled to 8 bit, alpha composited on white."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = a.min(), a.max()
        if img.mode != "F":
            # integers scale by the 16-bit full scale 65535, not their own range, so a
            # dark image stays dark and a flat one stays flat
            a = a / 65535 * 255
        elif lo >= 0 and hi <= 1:
            a = a * 255
        elif hi > lo:  # floats beyond 0..1 have no full scale: stretch their own range
            a = (a - lo) / (hi - lo) * 255
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
        return flat if is_colour_mode(img.mode) else flat.convert("L")
    return img.convert("L" if img.mode == "1" else "RGB")


def decode_all(paths: list[Path], labels: list[int], channels: int, imgsz: int, strict: bool, base: Path,
               corrupt: list[str], conversions: Counter, keep_pixels: bool = True) -> Split:
    """Decode files into one Split, skipping (or, if strict, refusing) unreadable ones; without
    `keep_pixels` the Split holds the readable files' paths, for the loader to decode again."""
    x = torch.empty((len(paths) if keep_pixels else 0, channels, imgsz, imgsz), dtype=torch.uint8)
    keep = []
    # PIL releases the GIL while decoding and resizing, so threads overlap well
    pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1))
    try:
        results = pool.map(_try_decode, paths, [channels] * len(paths), [imgsz] * len(paths))
        for i, (path, result) in enumerate(zip(paths, results)):
            if isinstance(result, Exception):
                if strict:
                    raise UserError(f"corrupt image {path} ({result}): remove it or run without --strict")
                corrupt.append(str(path.relative_to(base)))
                continue
            if keep_pixels:
                x[len(keep)] = result[0]
            keep.append(i)
            note = result[1]
            if note:
                conversions[note] += 1
    finally:
        pool.shutdown(cancel_futures=True)
    y = torch.tensor(labels, dtype=torch.int64)[keep]
    ids = [str(paths[i].relative_to(base)) for i in keep]
    if not keep_pixels:
        return Split(None, y, [str(paths[i]) for i in keep], ids)
    return Split(x[:len(keep)].clone() if len(keep) < len(paths) else x, y, ids=ids)


def _try_decode(path: Path, channels: int, imgsz: int) -> tuple[torch.Tensor, str | None] | Exception:
    try:
        return _decode(path, channels, imgsz)
    except Exception as e:  # a damaged file can fail in many ways (OSError, SyntaxError, zlib, ...)
        return e


def _subset(split: Split, idx: np.ndarray) -> Split:
    i = torch.from_numpy(idx).long()
    pick = lambda items: None if items is None else [items[j] for j in idx]  # noqa: E731
    return Split(None if split.x is None else split.x[i], split.y[i], pick(split.paths), pick(split.ids))


def _check_readable(base: Path, classes: list[str], train: Split, corrupt: list[str]) -> None:
    if len(train) == 0:
        example = f": {len(corrupt)} image files failed to decode, e.g. {corrupt[0]}" if corrupt else ""
        raise UserError(f"no readable images in {base}{example}")
    per_class = torch.bincount(train.y, minlength=len(classes)).tolist()
    if 0 in per_class:
        name = classes[per_class.index(0)]
        raise UserError(f"class '{name}' has no readable training images: replace them or remove the folder")


def _check_not_empty(base: Path, classes: list[str], data: dict[str, Split], found: dict,
                     val_fraction: float, test_fraction: float) -> None:
    """Refuse a split left empty by too little data, saying how many images each class has."""
    wanted = {"train": True, "val": val_fraction > 0, "test": test_fraction > 0}
    for split in SPLITS:
        if len(data[split]):
            continue
        if split != "train" and split in found:
            raise UserError(f"{base / split} has no images: add images or remove the folder")
        if wanted[split]:
            total = torch.bincount(torch.cat([data[s].y for s in SPLITS]), minlength=len(classes)).tolist()
            per_class = ", ".join(f"{c}={n}" for c, n in zip(classes, total))
            fix = "lower the val/test fractions" if split == "train" else f"set the {split} fraction to 0"
            raise UserError(f"the {split} split is empty: too few images ({per_class} per class); "
                            f"add images or {fix}")
