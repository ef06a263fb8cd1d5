"""What the detection readers and writers (COCO, YOLO, VOC) share, so that bad input means the same in
every format: boxes clipped to the image (counted), empty ones dropped (counted), unknown classes and missing
or unreadable images a UserError naming the file; image sizes (each image decoded once); output file names."""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from ..errors import UserError
from .boxes import DetDataset, DetImage
from .folder import IMAGE_EXTENSIONS, upright_size


def clean_boxes(boxes, labels, size: tuple[int, int], ncls: int, where: str,
                info: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip boxes to the (H, W) image and drop empty ones, counting both in info; unknown classes are a UserError."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    bad = (labels < 0) | (labels >= ncls)
    if bad.any():
        raise UserError(f"{where}: class id {int(labels[bad][0])} is not one of the {ncls} classes "
                        f"(0-{ncls - 1}); fix the label or the class list")
    h, w = size
    finite = torch.isfinite(boxes).all(1)
    boxes = torch.nan_to_num(boxes)
    clipped = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                           boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], 1)
    keep = finite & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    # normalised formats round a box on the edge a hair outside it: not worth counting
    moved = (clipped - boxes).abs().amax(1) > 1e-3 if len(boxes) else torch.zeros(0, dtype=torch.bool)
    info["clipped"] = info.get("clipped", 0) + int((moved & keep).sum())
    info["dropped"] = info.get("dropped", 0) + int((~keep).sum())
    return clipped[keep], labels[keep]


def new_info(fmt: str, source: str | Path) -> dict:
    return {"format": fmt, "source": str(source), "clipped": 0, "dropped": 0}


def image_sizes(paths: list[Path], where: str | Path) -> list[tuple[int, int]]:
    """(H, W) of each upright image (EXIF orientation applied). Each file is decoded once (JPEGs at a reduced
    scale, several files at a time), so that a damaged image is a UserError naming it when the data is read,
    not a failure once training has begun; a header claiming too many pixels is refused before decoding."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        sizes = list(pool.map(_decoded_size, paths))
    for path, size in zip(paths, sizes):
        if isinstance(size, Exception):
            reason = (str(size).splitlines() or [type(size).__name__])[0]
            raise UserError(f"cannot read image {path} (listed in {where}): {reason}; "
                            "replace it, or remove it and its labels")
    return sizes


def _decoded_size(path: Path) -> tuple[int, int] | Exception:
    try:
        with Image.open(path) as im:
            size = upright_size(im)
            im.draft(None, (64, 64))
            im.load()  # truncated files only fail once the pixels are read
        return size
    except Exception as e:  # a damaged file fails in many ways (OSError, SyntaxError, DecompressionBombError, ...)
        return e


def check_exist(paths: list[Path], where: str | Path, what: str = "images") -> None:
    """A UserError naming how many of the files listed in `where` are missing, and the first."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{len(missing)} of the {len(paths)} {what} listed in {where} are missing on disk, "
                        f"the first: {missing[0]}")


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def output_names(ds: DetDataset) -> dict:
    """A file name per image for the writers, its stem unique (label and XML files are named by it);
    one image in two splits keeps one name."""
    names, taken = {}, set()
    for im in ds.images():
        key = _key(im)
        if key in names:
            continue
        name = Path(im.file).name if im.file else f"{str(im.id).replace('/', '_')}.png"
        stem, suffix, k = Path(name).stem, Path(name).suffix, 1
        while Path(name).stem in taken:
            name, k = f"{stem}_{k}{suffix}", k + 1
        names[key] = name
        taken.add(Path(name).stem)
    return names


def _key(im: DetImage):
    return im.file or id(im)


def name_of(names: dict, im: DetImage) -> str:
    return names[_key(im)]


def put_image(im: DetImage, target: Path) -> None:
    """Copy the image file to target, or save an in-memory image there as PNG."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if im.file:
        shutil.copyfile(im.file, target)
    else:
        arr = im.image.detach().cpu()
        arr = arr[0] if arr.shape[0] == 1 else arr.permute(1, 2, 0)
        Image.fromarray(arr.numpy()).save(target)


def split_name(name: str) -> str | None:
    """train / val / test when a file or folder name says so (train2017, valid, ...)."""
    name = name.lower()
    for split in ("train", "val", "test"):
        if name.startswith(split):
            return split
    return None
