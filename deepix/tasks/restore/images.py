"""Reading and writing images for restoration at their own size and bit depth, as floats in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...data.folder import is_image_file
from ...errors import UserError
import imageio.v3 as iio

# scikit-image's bundled sample photographs (no download); a fixed split so runs compare
PHOTOS = {
    "train": ["astronaut", "chelsea", "hubble_deep_field", "immunohistochemistry", "rocket", "grass", "gravel",
              "brick", "cell", "page", "text", "retina", "stereo_motorcycle"],
    "val": ["clock", "moon"],
    "test": ["camera", "coffee", "coins"],
}


def to_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """HxW or HxWxC floats to HxWxchannels: colour to gray by luminance, gray repeated, alpha on white."""
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] in (2, 4):  # alpha: composite on white, as the classification reader does
        alpha = a[..., -1:]
        a = a[..., :-1] * alpha + (1 - alpha)
    if channels == 1 and a.shape[2] == 3:
        a = a @ np.array([0.299, 0.587, 0.114], dtype=a.dtype)[:, None]
    elif channels == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a


def as_float(a: np.ndarray) -> tuple[np.ndarray, int]:
    """An image array as float32 in [0, 1], and its bit depth (8 or 16)."""
    if a.dtype == bool:
        return a.astype(np.float32), 8
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255, 8
    if a.dtype in (np.uint16, np.int32, np.int64, np.uint32):
        return (a.astype(np.float64) / 65535).clip(0, 1).astype(np.float32), 16
    # floats are taken as [0, 1] and left unclipped: a noisy input's excursions are part of the signal
    return a.astype(np.float32), 8


def read(path: str | Path, channels: int = 0) -> tuple[torch.Tensor, int]:
    """(C, H, W) float tensor in [0, 1], upright as shown, and the file's bit depth; channels 0 keeps the file's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        a = np.asarray(iio.imread(path, **_as_shown(path)))
    except Exception as e:  # damaged files fail in many ways inside the codecs
        raise UserError(f"cannot read image {path}: {str(e).splitlines()[0][:120]}") from None
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 2, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 4:  # an animation: its first frame
        a = a[0]
    a, depth = as_float(a)
    a = to_channels(a, channels or (1 if a.ndim == 2 or a.shape[2] in (1, 2) else 3))
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), depth


def _as_shown(path: Path) -> dict:
    """imageio's options to read a file as a viewer shows it: upright by its EXIF orientation, CMYK made RGB
    (as it is, its four channels would pass for RGBA), a palette's transparent colour made alpha (which
    to_channels lays on white, as every reader does)."""
    try:
        with Image.open(path) as im:
            # PIL decodes a PNG to find EXIF after its pixels: only EXIF before them is looked at, not to decode twice
            exif = im.getexif() if im.format != "PNG" or "exif" in im.info else {}
            turned = exif.get(0x0112, 1) != 1
            mode = "RGB" if im.mode == "CMYK" else "RGBA" if im.mode == "P" and "transparency" in im.info else None
    except Exception:  # not for PIL: imageio's other plugins decide, or say why they cannot
        return {}
    if not (turned or mode):
        return {}
    return {"plugin": "pillow", "rotate": True, **({"mode": mode} if mode else {})}


def write(path: str | Path, image: torch.Tensor, depth: int = 8) -> Path:
    """Write a (C, H, W) [0, 1] image as PNG/TIFF/JPEG at 8 or 16 bits (16 only where the format has it)."""
    path = Path(path)
    a = image.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    a = a[..., 0] if a.shape[2] == 1 else a
    if depth == 16 and path.suffix.lower() in (".png", ".tif", ".tiff"):
        a = np.round(a * 65535).astype(np.uint16)
    else:
        a = np.round(a * 255).astype(np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        iio.imwrite(tmp, a)
        tmp.replace(path)  # never a half-written output
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    return path


def photos(channels: int) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """The built-in photographs, split train / val / test; grayscale unless channels is 3."""
    import skimage.data  # scikit-image takes ~1 s to import: only this path pays it
    out = {}
    for split, names in PHOTOS.items():
        out[split] = []
        for name in names:
            a = getattr(skimage.data, name)()
            a = a[0] if isinstance(a, tuple) else a
            a = to_channels(as_float(a)[0], channels or 1)
            out[split].append((name, torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))))
    return out


def folder(root: str, channels: int, val_fraction: float, test_fraction: float, seed: int):
    """Clean images under root (train/ val/ test/ subfolders, or one folder split by the fractions)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"data folder not found: {base}")
    find = lambda d: sorted(p for p in d.rglob("*") if p.is_file() and is_image_file(p))  # noqa: E731
    if (base / "train").is_dir():
        files = {s: find(base / s) if (base / s).is_dir() else [] for s in ("train", "val", "test")}
    else:
        every = find(base)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(every))
        n_test, n_val = round(len(every) * test_fraction), round(len(every) * val_fraction)
        pick = lambda idx: sorted(every[i] for i in idx)  # noqa: E731
        files = {"test": pick(order[:n_test]), "val": pick(order[n_test:n_test + n_val]),
                 "train": pick(order[n_test + n_val:])}
    if not files["train"]:
        raise UserError(f"no training images in {base}; add clean photos (png, jpg, tif, ...)")
    if not channels:  # colour if any training image has colour
        channels = max(read(p)[0].shape[0] for p in files["train"][:50])
    return {s: [(str(p.relative_to(base)), read(p, channels)[0]) for p in paths] for s, paths in files.items()}


INPUT_DIRS = ("input", "degraded", "noisy", "lr", "low")
TARGET_DIRS = ("target", "clean", "gt", "hr", "high")


def _pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    found = [next((folder / d for d in names if (folder / d).is_dir()), None) for names in (INPUT_DIRS, TARGET_DIRS)]
    return (found[0], found[1]) if all(found) else None


def is_pairs(root: str) -> bool:
    base = Path(root).expanduser()
    return _pair_dirs(base) is not None or _pair_dirs(base / "train") is not None


def pairs(root: str, channels: int, val_fraction: float, test_fraction: float, seed: int):
    """Degraded/clean pairs with the same file names: root/{input,target}/ (or degraded/clean, lr/hr, ...),
    optionally under train/ val/ test/. Returns {split: [(name, clean, degraded)]} and the scale."""
    base = Path(root).expanduser()
    splits = {s: _pair_dirs(base / s) for s in ("train", "val", "test")} if (base / "train").is_dir() else None
    if splits is None:
        every = _read_pairs(base, *_pair_dirs(base), channels)
        order = np.random.default_rng(seed).permutation(len(every))
        n_test, n_val = round(len(every) * test_fraction), round(len(every) * val_fraction)
        out = {"test": [every[i] for i in sorted(order[:n_test])],
               "val": [every[i] for i in sorted(order[n_test:n_test + n_val])],
               "train": [every[i] for i in sorted(order[n_test + n_val:])]}
    else:
        out = {s: _read_pairs(base, *dirs, channels) if dirs else [] for s, dirs in splits.items()}
    scales = {s for items in out.values() for s in [item[3] for item in items]}
    if len(scales) > 1:
        raise UserError(f"the pairs in {base} mix scales {sorted(scales)}; keep one up-scaling factor per data set")
    if not out["train"]:
        raise UserError(f"no training pairs in {base}")
    return {s: [item[:3] for item in items] for s, items in out.items()}, scales.pop()


def _read_pairs(base: Path, inputs: Path, targets: Path, channels: int) -> list:
    files = sorted(p for p in inputs.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise UserError(f"no images in {inputs}")
    if not channels:
        channels = max(read(p)[0].shape[0] for p in files[:50])
    out = []
    for p in files:
        rel = p.relative_to(inputs)
        partner = next((q for q in (targets / rel, *targets.glob(f"{rel.with_suffix('')}.*")) if q.is_file()), None)
        if partner is None:
            raise UserError(f"pair missing: {p.relative_to(base)} has no partner in {targets.relative_to(base)}/; "
                            f"pairs share file names")
        degraded, clean = read(p, channels)[0], read(partner, channels)[0]
        (h, w), (hc, wc) = degraded.shape[1:], clean.shape[1:]
        scale = hc // h if h else 0
        if scale < 1 or wc // w != scale or hc - h * scale >= scale or wc - w * scale >= scale:
            raise UserError(f"pair {rel} does not fit: input {w}x{h}, target {wc}x{hc}; the target must be the "
                            f"input's size or a whole multiple of it")
        out.append((str(rel), clean[:, :h * scale, :w * scale], degraded, scale))
    return out
