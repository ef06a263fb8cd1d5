"""A trained locate run in use: `deepix.load(RUN).predict("photo.png")` searches the image and answers with
the boxes it triggered on, each scored by its probability of triggering."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...data.folder import read_rgb
from ...engine import machine
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...predict import iter_images
from ...runs import open_run
from ..base import Loaded
from .env import CROP, HISTORY, ACTIONS, TRIGGER, _pixel_span, transform
from .model import Searcher
from .train import load_images, test as test_searchers

MAX_STEPS = 200      # a search on an image without boxes to check against stops here
MAX_TRIGGERS = 10    # at most this many boxes an image


class Finder(Loaded):
    task = "locate"

    def __init__(self, run, weights: str = "best"):
        self.run, self.cfg, self.meta = open_run(run)
        self.model = Searcher(self.cfg.width, standardised=bool(self.cfg.init))
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def search(self, picture: np.ndarray) -> list[dict]:
        """The agent's boxes on an H x W x 3 uint8 image: it searches, triggers, masks, searches again."""
        picture = picture.copy()
        h, w = picture.shape[:2]
        fill = picture.reshape(-1, 3).mean(0).round().astype(np.uint8)
        box, history, found, steps = np.array([0.0, 0.0, w, h]), [], [], 0
        while steps < MAX_STEPS and len(found) < MAX_TRIGGERS:
            x0, y0, x1, y1 = _pixel_span(box)
            crop = np.asarray(Image.fromarray(picture[y0:y1, x0:x1]).resize((CROP, CROP), Image.BILINEAR), np.uint8)
            hist = np.zeros(HISTORY * len(ACTIONS), np.float32)
            for k, a in enumerate(reversed(history[-HISTORY:])):
                hist[k * len(ACTIONS) + a] = 1.0
            with torch.no_grad():
                logits, _ = self.model(torch.from_numpy(crop.transpose(2, 0, 1).copy())[None], torch.from_numpy(hist)[None])
            p = torch.softmax(logits[0].float(), 0)
            a = int(p.argmax())
            steps += 1
            if a == TRIGGER:
                found.append({"box": [round(float(v), 2) for v in box], "score": round(float(p[TRIGGER]), 4),
                              "steps": len(history) + 1})
                picture[y0:y1, x0:x1] = fill
                box, history = np.array([0.0, 0.0, w, h]), []
                if float(p[TRIGGER]) < 0.5:   # an unsure trigger: the search has run out of objects
                    break
            else:
                box = transform(box, a, h, w)
                history.append(a)
                if len(history) > 40:         # lost: a search that long finds nothing more
                    break
        return found

    def read(self, image, name: str) -> np.ndarray:
        if isinstance(image, (str, Path)):
            try:
                return read_rgb(image)
            except OSError as e:
                raise UserError(f"{name}: not a readable image ({type(e).__name__})") from None
        if isinstance(image, Image.Image):
            return read_rgb(image)
        a = np.asarray(image)
        return np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a[..., :3].astype(np.uint8)

    def predict(self, images, **options) -> list[dict]:
        if isinstance(images, (str, Path, Image.Image, np.ndarray)):
            images = [images]
        out = []
        for k, image in enumerate(images):
            name = str(image) if isinstance(image, (str, Path)) else f"image {k}"
            out.append({"image": name, "detections": [{**d, "class": "object"} for d in self.search(self.read(image, name))]})
        return out

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        out = Path(output) if output else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        for path in iter_images(sources):
            picture = self.read(path, str(path))
            found = self.search(picture)
            r = {"image": str(path), "detections": [{**d, "class": "object"} for d in found]}
            if options.get("json"):
                print(json.dumps(r))
            else:
                print(f"{path}: {len(found)} found" + (" (" + ", ".join(f"{d['score']:.2f}" for d in found[:8]) + ")"
                                                        if found else ""))
            if out:
                img = picture.copy()
                for d in found:
                    x0, y0, x1, y1 = _pixel_span(np.array(d["box"]))
                    x1, y1 = min(x1, img.shape[1]) - 1, min(y1, img.shape[0]) - 1
                    img[y0, x0:x1 + 1] = img[y1, x0:x1 + 1] = (255, 45, 85)
                    img[y0:y1 + 1, x0] = img[y0:y1 + 1, x1] = (255, 45, 85)
                Image.fromarray(img).save(out / f"{path.stem}.png")
                (out / f"{path.stem}.json").write_text(json.dumps(r, indent=1))

    def answer(self, images: list, options: dict) -> list[dict]:
        return [{"detections": [{**d, "class": "object"} for d in self.search(self.read(im, f"image {k}"))]}
                for k, im in enumerate(images)]


def val(finder: Finder, data: str | None = None) -> dict:
    """The run's weights on its test images (or on those of `data`) beside the baselines."""
    if data:
        finder.cfg.data = data
    images = load_images(finder.cfg)
    dev = torch.device("cpu")
    return test_searchers(finder.model, images, dev, machine.use_bf16(finder.cfg.precision, dev))
