"""A trained agent in use: `deepix.load(RUN).predict(observations)` answers the action the agent takes for
each observation (an image file, a PIL image or an array shaped as the environment gives them), with the
actions' probabilities and the state's value; `deepix predict RUN frame.png` prints them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...engine import machine
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...predict import iter_images
from ...runs import open_run
from ..base import Loaded
from .model import Pixels
from .train import environment, test


class Player(Loaded):
    task = "agent"
    batching = True

    def __init__(self, run, weights: str = "best"):
        self.run, self.cfg, self.meta = open_run(run)
        self.weights = weights
        c, h, w = self.meta["observation"]
        self.shape, self.uint8 = (c, h, w), self.meta["dtype"] == "uint8"
        self.actions = int(self.meta["actions"])
        self.model = Pixels(c, (h, w), self.actions, 1 / 255 if self.uint8 else 1.0, self.cfg.width)
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def read(self, image, name: str) -> np.ndarray:
        """One observation as the (C, H, W) array the network reads; a picture is resized to the run's H x W."""
        c, h, w = self.shape
        if isinstance(image, (str, Path)):
            try:
                with Image.open(image) as f:
                    image = f.convert("L" if c == 1 else "RGB")
                    image.load()
            except OSError as e:
                raise UserError(f"{name}: not a readable image ({type(e).__name__})") from None
        if isinstance(image, Image.Image):
            image = image.convert("L" if c == 1 else "RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.NEAREST)
            a = np.asarray(image, np.uint8)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            a = np.concatenate([a, np.zeros((c - a.shape[0], h, w), np.uint8)]) if a.shape[0] < c else a[:c]
        else:
            a = np.asarray(image)
            if a.shape != (c, h, w) and a.ndim == 3 and a.shape == (h, w, c):
                a = a.transpose(2, 0, 1)
            elif a.shape != (c, h, w) and a.shape == (h, w) and c == 1:
                a = a[None]
            if a.shape != (c, h, w):
                raise UserError(f"{name}: an observation of shape {a.shape}; the agent reads ({c}, {h}, {w})")
        return np.ascontiguousarray(a.astype(np.uint8 if self.uint8 else np.float32))

    def act(self, observations: np.ndarray) -> list[dict]:
        with torch.no_grad():
            logits, value = self.model(torch.from_numpy(observations))
        p = torch.softmax(logits.float(), 1)
        return [{"action": int(q.argmax()), "probs": [round(float(v), 5) for v in q], "value": float(v)}
                for q, v in zip(p, value.float())]

    def predict(self, images, **options) -> list[dict]:
        if isinstance(images, (str, Path, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim <= 3):
            images = [images]
        obs = [self.read(im, str(im) if isinstance(im, (str, Path)) else f"observation {k}")
               for k, im in enumerate(images)]
        return self.act(np.stack(obs)) if obs else []

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        paths = list(iter_images(sources))
        answers = self.predict(paths)
        out = Path(output) if output else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        for path, a in zip(paths, answers):
            r = {"image": str(path), **a}
            print(json.dumps(r) if options.get("json") else
                  f"{path}: action {a['action']} (p {a['probs'][a['action']]:.2f}), value {a['value']:.3f}")
            if out:
                (out / f"{path.stem}.json").write_text(json.dumps(r, indent=1))

    def answer(self, images: list, options: dict) -> list[dict]:
        return self.predict(images)


def val(player: Player, data: str | None = None) -> dict:
    """The run's weights on the test episodes of its environment (or of `data`), beside a random agent."""
    make, _, _ = environment(player.cfg, data or None)
    dev = torch.device("cpu")
    return test(player.model, make, player.actions, dev, machine.use_bf16(player.cfg.precision, dev))
