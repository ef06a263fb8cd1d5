"""Restored images written to files (`deepix predict`, `deepix denoise`) and sent by the service."""
from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Callable

import torch

from ...engine import distributed as dist
from ...errors import UserError
from ...predict import iter_images, mine
from ...serve.encode import png_base64
from . import images as imgio

Restore = Callable[[object], torch.Tensor]  # a path or image in, (C, H, W) in [0, 1] out


def write_restored(restore: Restore, sources: list[str], output: str | None) -> None:
    """Restore each image into -o: a file for one input, else a folder keeping names and bit depth."""
    if not output:
        raise UserError("restoration writes images: give -o OUT.png (one input) or -o FOLDER")
    out = Path(output)
    first_two = list(itertools.islice(iter_images(sources), 2))
    single = len(first_two) == 1 and out.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
    for _, path in mine(sources):
        depth = imgio.read(path)[1]
        target = out if single else out / (path.stem + (path.suffix if path.suffix.lower() in (".png", ".tif", ".tiff")
                                                            else ".png"))
        imgio.write(target, restore(path), depth)
        print(f"{path} -> {target}")
    dist.barrier()


def answer_images(restore: Restore, images: list) -> list[dict]:
    """The service's answers: one image at a time (each its own size), as base64 PNGs."""
    out = []
    for im in images:
        with tempfile.TemporaryDirectory() as tmp:  # the server names these files, never the client
            path = Path(tmp) / "in.png"
            im.save(path)
            restored = restore(path)
        out.append({"image": png_base64(restored), "width": int(restored.shape[-1]), "height": int(restored.shape[-2])})
    return out
