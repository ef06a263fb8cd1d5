"""A trained segmenter ready to label every pixel of images of any size: scored at the scale it was trained
at, in overlapping tiles blended without seams (engine/tiles.py), and written as index PNGs and overlays."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ...engine import distributed as dist, machine
from ...engine.checkpoint import load_weights
from ...engine.tiles import predict_tiled
from ...errors import UserError
from ...predict import chunks, dist_sum, mine
from ...runs import open_run
from ..base import Loaded
from .pictures import overlay
from .train import Segment, build, save_mask

OVERLAP = 32   # pixels two neighbouring tiles share


def read_rgb(source) -> np.ndarray:
    """uint8 (H, W, 3) from a path, PIL image or array; a photo turned upright by its EXIF orientation."""
    if isinstance(source, np.ndarray):
        a = source if source.ndim == 3 else np.repeat(source[..., None], 3, 2)
        return np.ascontiguousarray(a[..., :3].astype(np.uint8))
    try:
        im = source if isinstance(source, Image.Image) else Image.open(source)
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
    except OSError as e:
        raise UserError(f"cannot read image {source}: {e}") from None


class Segmentation(Loaded):
    """What every segmenter gives from `scores(image)`: masks, files and the service's answers."""

    task = "segment"
    classes: list[str]
    colours: list[tuple[int, int, int]]
    net: torch.nn.Module      # image batch -> class scores: the network, or an exported file run as one
    scale: float = 1.0        # what images were resized by for training (data read from disk)
    tile: int = 256
    bf16: bool = False
    dev = torch.device("cpu")

    def scores(self, image: np.ndarray) -> torch.Tensor:
        """(K, H, W) class probabilities for one uint8 (H, W, 3) image, scored at the scale it learned at."""
        h, w = image.shape[:2]
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.dev)
        side = (round(h * self.scale), round(w * self.scale))
        if side != (h, w):
            x = F.interpolate(x, size=side, mode="bilinear", antialias=self.scale < 1, align_corners=False)
        s = predict_tiled(self.net, x, tile=self.tile, overlap=OVERLAP, bf16=self.bf16)
        if side != (h, w):
            s = F.interpolate(s.float(), size=(h, w), mode="bilinear", align_corners=False)
        return s[0].float().softmax(0).cpu()

    def predict(self, images, **options) -> list[dict]:
        """Per image: `mask` (uint8 H x W class indices) and `shares` (each class's share of the pixels)."""
        out = []
        for src in images if isinstance(images, (list, tuple)) else [images]:
            mask = self.scores(read_rgb(src)).argmax(0).numpy().astype(np.uint8)
            counts = np.bincount(mask.ravel(), minlength=len(self.classes))
            out.append({"mask": mask, "shares": {c: round(float(n / mask.size), 4)
                                                 for c, n in zip(self.classes, counts) if n}})
        return out

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        """Prints each image's classes by share; with -o, writes NAME.png (index mask, palette in the class
        colours) and NAME_overlay.png per image."""
        if output is None and dist.world() > 1:
            raise UserError("under several processes give -o FOLDER: each process writes its share of the masks there")
        out = Path(output) if output else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        n = 0
        for chunk in chunks(mine(sources), 8):
            for _, path in chunk:
                image = read_rgb(path)
                r = self.predict([image])[0]
                n += 1
                if options.get("json"):
                    print(json.dumps({"image": str(path), "shares": r["shares"]}))
                elif dist.world() == 1:
                    top = sorted(r["shares"].items(), key=lambda kv: -kv[1])[:6]
                    print(f"{path}: " + ", ".join(f"{c} {s:.1%}" for c, s in top))
                if out:
                    save_mask(r["mask"], self.colours, out / f"{path.stem}.png")
                    Image.fromarray(overlay(image, r["mask"], self.colours)).save(out / f"{path.stem}_overlay.png")
        n = dist_sum(n)   # every process's images, under --nproc
        if out and dist.is_main():
            print(f"{n} images -> {out}/ (NAME.png: class index per pixel; NAME_overlay.png: drawn over the image)")

    def answer(self, images: list, options: dict) -> list[dict]:
        """The service's answer: class shares, and the mask as a colour PNG (transparent background) to lay over
        the picture."""
        answers = []
        for im in images:
            r = self.predict([read_rgb(im)])[0]
            rgba = np.zeros((*r["mask"].shape, 4), np.uint8)
            lut = np.zeros((256, 3), np.uint8)
            lut[:len(self.colours)] = self.colours
            rgba[..., :3] = lut[r["mask"]]
            rgba[..., 3] = np.where(r["mask"] == 0, 0, 255)
            buf = io.BytesIO()
            Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
            answers.append({"shares": r["shares"], "classes": self.classes,
                            "mask_png": base64.b64encode(buf.getvalue()).decode()})
        return answers


class Segmenter(Segmentation):
    """`deepix.load(run).predict("field.jpg")` gives each image's mask (class index per pixel) and class shares."""

    def __init__(self, run: Path, weights: str = "best"):
        self.run, self.cfg, meta = open_run(run)
        self.classes, self.imgsz = meta["classes"], meta["imgsz"]
        self.colours = [tuple(c) for c in meta["colours"]]
        self.scale = float(meta.get("scale", 1.0))
        self.dev = machine.device()
        self.bf16 = machine.use_bf16(self.cfg.precision, self.dev)
        self.model = build(self.cfg, len(self.classes), self.imgsz).to(self.dev)
        path = self.run / "weights" / f"{weights}.safetensors"
        if not path.is_file():
            raise UserError(f"{path} not found; is {self.run} a finished segmentation run?")
        load_weights(self.model, path)
        self.model.eval()
        self.step = Segment(self.classes, self.cfg.ignore_index, self.cfg.loss, None, None, False)
        self.net, self.tile = self.model, max(self.cfg.tile, self.imgsz)
