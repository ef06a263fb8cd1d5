"""A trained detector (a run folder or an exported file) ready to find boxes, write them and serve them."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torchvision.ops import batched_nms

from ...data.boxes import DetImage
from ...engine import distributed as dist, machine
from ...engine.checkpoint import load_weights
from ...errors import UserError
from ...runs import open_run
from ...predict import Lines, chunks, mine
from ...report.plots import draw_boxes
from ..base import Loaded
from .images import letterbox, pixels, unlabelled
from .train import MAX_DETS, Detect, build


class Detection(Loaded):
    """What every detector gives: `detect(images, conf, max_dets)`; printing, files and the service."""

    task = "detect"
    batching = True

    def detect(self, images, conf: float = 0.25, max_dets: int = MAX_DETS) -> list[dict]:
        raise NotImplementedError

    def predict(self, images, conf: float = 0.25, max_dets: int = MAX_DETS, **options) -> list[dict]:
        """Boxes, scores and labels per image (paths); the same as `detect`."""
        return self.detect(images if isinstance(images, (list, tuple)) else [images], conf, max_dets)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        """Boxes for each image: printed, and with -o drawn onto copies plus a COCO-style predictions.json."""
        conf, max_det, as_json = options.get("conf", 0.25), options.get("max_det", 100), options.get("json")
        if not 0 <= conf < 1 or max_det < 1:
            raise UserError("--conf must be in [0, 1) and --max-det at least 1")
        if output is None and dist.world() > 1:
            raise UserError("under several processes give -o FOLDER: the boxes are merged into FOLDER/predictions.json")
        out = Path(output) if output else None
        lines = Lines(out, ".detections.jsonl") if out else None
        for chunk in chunks(mine(sources), 32):
            for (i, path), r in zip(chunk, self.detect([p for _, p in chunk], conf, max_det)):
                found = [{"image_id": i + 1, "file_name": str(path), "category_id": int(c) + 1,
                          "category": self.classes[int(c)], "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                                                     float(b[3] - b[1])], "score": float(s)}
                         for b, s, c in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist())]
                if as_json:
                    print(json.dumps({"image": str(path), "detections": found}))
                elif dist.world() == 1:
                    names = ", ".join(f"{d['category']} {d['score']:.2f}" for d in found[:8])
                    print(f"{path}: {len(found)} found" + (f" ({names}{', ...' if len(found) > 8 else ''})" if found else ""))
                if out:
                    lines.write({"detections": found})
                    self.draw(path, r, out)
        if out:
            merged = lines.close()
            if dist.is_main():  # one COCO results array, written a line at a time
                boxes = images_ = 0
                with merged.open() as f, (out / "predictions.json").open("w") as g:
                    g.write("[")
                    for line in f:
                        images_ += 1
                        for d in json.loads(line)["detections"]:
                            g.write(("," if boxes else "") + "\n" + json.dumps(d))
                            boxes += 1
                    g.write("\n]\n")
                merged.unlink()
                print(f"{boxes} boxes in {images_} images -> {out}/ (images with boxes, predictions.json)")
            dist.barrier()

    def draw(self, path: Path, r: dict, out: Path) -> None:
        im = pixels(DetImage(str(path), (0, 0), r["boxes"], r["labels"]))
        drawn = draw_boxes(im, r["boxes"], r["labels"], self.classes, r["scores"], side=0)
        Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out / f"{path.stem}.png")

    def answer(self, images: list, options: dict) -> list[dict]:
        with tempfile.TemporaryDirectory() as tmp:  # the server names these files, never the client
            paths = []
            for i, im in enumerate(images):
                paths.append(Path(tmp) / f"{i}.png")
                im.convert("RGB").save(paths[-1])
            found = self.detect(paths, options.get("conf", 0.25), options.get("max_det", 100))
        return [{"detections": [{"box": [round(v, 2) for v in b], "score": round(s, 4), "class": self.classes[c]}
                                for b, s, c in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist())]}
                for r in found]

    def options(self, form: dict) -> dict:
        return {"conf": form["conf"], "max_det": form["max_det"]}


class Detector(Detection):
    """A trained detection run: `deepix.load(run).detect("street.jpg")` gives boxes, scores, labels."""

    def __init__(self, run: Path, weights: str = "best"):
        self.run, self.cfg, meta = open_run(run)
        self.classes, self.imgsz = meta["classes"], meta["imgsz"]
        self.dev = machine.device()
        self.bf16 = machine.use_bf16(self.cfg.precision, self.dev)
        self.model = build(self.cfg, len(self.classes), self.imgsz).to(self.dev)
        path = self.run / "weights" / f"{weights}.safetensors"
        if not path.is_file():
            raise UserError(f"{path} not found; is {self.run} a finished detection run?")
        load_weights(self.model, path)
        self.model.eval()
        self.step = Detect((self.imgsz, self.imgsz), None, False, self.cfg.iou, self.cfg.model.startswith("tv:")).to(self.dev)

    def detect(self, images, conf: float = 0.25, max_dets: int = MAX_DETS) -> list[dict]:
        """Detections for image paths (or DetImages), boxes in each image's own pixels."""
        items = [im if isinstance(im, DetImage) else unlabelled(im) for im in images]
        out = []
        for i in range(0, len(items), 32):
            x, _, scales = letterbox(items[i:i + 32], self.imgsz)
            preds = self.step.predict(self.model, x, self.dev, self.bf16, conf, max_dets)
            out += [{**p, "boxes": p["boxes"] / s} for p, s in zip(preds, scales.tolist())]
        return out


class ExportedDetector(Detection):
    """An exported detector file: its dense outputs thresholded and put through class-wise NMS here."""

    def __init__(self, file):
        self.file, self.classes, self.imgsz = file, file.meta["classes"], int(file.meta["size"][0])

    def detect(self, images, conf: float = 0.25, max_dets: int = MAX_DETS) -> list[dict]:
        """Boxes in each image's own pixels."""
        x, _, scales = letterbox([unlabelled(im) for im in images], self.imgsz)
        boxes, scores = (torch.from_numpy(a) for a in self.file.run({"images": x.float().div(255)}, every=True))
        return from_dense(boxes, scores, scales, conf, float(self.file.meta.get("iou", 0.6)), max_dets)


def from_dense(boxes, scores, scales, conf: float, iou: float, max_dets: int) -> list[dict]:
    """An exported detector's dense outputs (boxes (N, P, 4), scores (N, P, C)) as detections in each image's
    own pixels: thresholded, the best 3 x max_dets, class-wise NMS."""
    out = []
    for b, s, scale in zip(boxes, scores, scales.tolist()):
        flat = s.flatten()
        keep = (flat > conf).nonzero().squeeze(1)
        keep = keep[flat[keep].topk(min(len(keep), 3 * max_dets)).indices]
        point, label = keep // s.shape[1], keep % s.shape[1]
        kept = batched_nms(b[point], flat[keep], label, iou)[:max_dets]
        out.append({"boxes": b[point][kept] / scale, "scores": flat[keep][kept], "labels": label[kept]})
    return out
