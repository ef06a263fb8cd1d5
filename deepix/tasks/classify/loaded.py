"""A trained classifier (a run folder or an exported file) ready to predict, print and serve."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ...data.inputs import to_batch
from ...engine import distributed as dist
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...runs import open_run
from ...models import build_classifier
from ...predict import Lines, chunks, dist_sum, mine
from ..base import Loaded


def ranked(probs: torch.Tensor, classes: list[str], k: int) -> list[dict]:
    """Per image: its class, probability, the k likeliest classes and every probability."""
    p, i = probs.topk(min(k, len(classes)), 1)
    return [{"class": classes[ii[0]], "probability": float(pp[0]),
             "top": [{"class": classes[c], "probability": float(v)} for v, c in zip(pp.tolist(), ii.tolist())],
             "probabilities": pr.tolist()} for pp, ii, pr in zip(p, i, probs)]


class Classifier(Loaded):
    """What predicting takes from a classifier; `scores(x)` gives logits for a batch in [0, 1]."""

    task = "classify"
    batching = True
    channels: int
    size: tuple[int, int]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images, top_k: int = 5) -> list[dict]:
        """Paths, PIL images or arrays in; for each image its top-k classes with probabilities."""
        return ranked(self.scores(to_batch(images, self.channels, self.size)).float().softmax(1), self.classes, top_k)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        """Top-k classes per image: printed, or with -o written to OUT/predictions.jsonl (one line each)."""
        if output is None and dist.world() > 1:
            raise UserError("under several processes give -o FOLDER: the predictions are merged into "
                            "FOLDER/predictions.jsonl")
        lines = Lines(Path(output), "predictions.jsonl") if output else None
        count = 0
        for chunk in chunks(mine(sources), 256):
            for (i, path), r in zip(chunk, self.predict([p for _, p in chunk], options.get("top_k", 5))):
                count += 1
                record = {"image": str(path), "class": r["class"], "probability": r["probability"], "top": r["top"]}
                if lines:
                    lines.write(record)
                elif options.get("json"):
                    print(json.dumps(record))
                else:
                    print(f"{path}: " + "  ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]))
        if lines:
            target = lines.close()
            total = dist_sum(count)
            if dist.is_main():
                print(f"{total} images -> {target}" + (f" ({dist.world()} processes)" if dist.world() > 1 else ""))

    def answer(self, images: list, options: dict) -> list[dict]:
        return [{"class": r["class"], "probability": r["probability"], "top": r["top"]}
                for r in self.predict(list(images), options.get("top_k", 5))]

    def options(self, form: dict) -> dict:
        return {"top_k": form["top_k"]}


class Predictor(Classifier):
    """A trained run, ready to predict: `deepix.load("runs/classify/exp1").predict("img.png")`."""

    def __init__(self, run: str | Path, weights: str = "best", model: torch.nn.Module | None = None):
        self.run, self.cfg, meta = open_run(run)
        self.classes, self.channels, self.size = meta["classes"], meta["channels"], tuple(meta["size"])
        if model is None and self.cfg.model.startswith("custom:"):
            saved = self.run / "model.json"
            if not saved.is_file():
                raise UserError(f"{self.run} was trained with your own model ({self.cfg.model[7:]}); "
                                f"pass it: deepix.load(run, model=YourModel())")
            from ...keras.models import model_from_config  # the Keras front, only for runs trained with it
            model = model_from_config(json.loads(saved.read_text())["config"])
        self.model = build_classifier(self.cfg, len(self.classes), self.channels, self.size, [0.0] * self.channels,
                                      [1.0] * self.channels, model)
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ExportedClassifier(Classifier):
    """An exported classifier file used like its run."""

    def __init__(self, file):
        self.file = file
        self.classes, self.channels, self.size = file.meta["classes"], int(file.meta["channels"]), tuple(file.meta["size"])

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.file.run({"images": x}))
