"""Prediction over files and folders, streamed: images are found, read and predicted a chunk at a time and
each result is written as it comes, so memory stays flat however large the folder. Under torchrun each
rank takes every N-th image and writes its own part; rank 0 merges the parts back into input order."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Iterator

from .engine import distributed as dist
from .errors import UserError


def iter_images(sources: list[str]) -> Iterator[Path]:
    """Image files in the order given, folders walked in sorted order, one directory listed at a time."""
    from .data.folder import IMAGE_EXTENSIONS
    found = False
    for s in sources:
        path = Path(s)
        if path.is_file():
            found = True
            yield path
        elif path.is_dir():
            stack = [path]
            while stack:
                d = stack.pop()
                entries = sorted(os.scandir(d), key=lambda e: e.name)
                for e in entries:
                    if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS:
                        found = True
                        yield Path(e.path)
                stack += [Path(e.path) for e in reversed(entries) if e.is_dir()]
        else:
            raise UserError(f"not found: {path}")
    if not found:
        raise UserError(f"no images in {', '.join(sources)}")


def mine(sources: list[str]) -> Iterator[tuple[int, Path]]:
    """(index in the whole input, path) of the images this rank predicts."""
    n, r = dist.world(), dist.rank()
    return ((i, p) for i, p in enumerate(iter_images(sources)) if i % n == r)


def chunks(it, size: int):
    it = iter(it)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Lines:
    """One JSON object per line into OUT/NAME: this rank's part under torchrun, merged by rank 0 on close."""

    def __init__(self, out: Path, name: str):
        self.out, self.name = out, name
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / (name if dist.world() == 1 else f".{name}.rank{dist.rank()}")
        self.f = self.path.open("w")

    def write(self, obj: dict) -> None:
        self.f.write(json.dumps(obj) + "\n")

    def close(self) -> Path:
        """The merged file (on every rank, once all have finished)."""
        self.f.close()
        target = self.out / self.name
        if dist.world() > 1:
            dist.barrier()
            if dist.is_main():
                parts = [(self.out / f".{self.name}.rank{r}").open() for r in range(dist.world())]
                with target.open("w") as f:  # rank r holds images r, r+N, ...: take a line from each in turn
                    for lines in itertools.zip_longest(*parts):
                        f.writelines(line for line in lines if line is not None)
                for p in parts:
                    p.close()
                    Path(p.name).unlink()
            dist.barrier()
        return target


def classify_files(pred, sources: list[str], output: str | None, top_k: int, as_json: bool) -> None:
    """Top-k classes per image: printed, or with -o written to OUT/predictions.jsonl (one line each)."""
    if output is None and dist.world() > 1:
        raise UserError("under several processes give -o FOLDER: the predictions are merged into FOLDER/predictions.jsonl")
    lines = Lines(Path(output), "predictions.jsonl") if output else None
    count = 0
    for chunk in chunks(mine(sources), 256):
        for (i, path), r in zip(chunk, pred.predict([p for _, p in chunk], top_k)):
            count += 1
            record = {"image": str(path), "class": r["class"], "probability": r["probability"], "top": r["top"]}
            if lines:
                lines.write(record)
            elif as_json:
                print(json.dumps(record))
            else:
                print(f"{path}: " + "  ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]))
    if lines:
        target = lines.close()
        total = dist_sum(count)
        if dist.is_main():
            print(f"{total} images -> {target}" + (f" ({dist.world()} processes)" if dist.world() > 1 else ""))


def dist_sum(n: int) -> int:
    return int(dist.reduce_sums({"n": float(n)}, 0)[0]["n"])


def detect_files(detector, sources: list[str], output: str | None, conf: float, max_det: int, as_json: bool) -> None:
    """Boxes for each image: printed, and with -o drawn onto copies plus a COCO-style predictions.json."""
    if not 0 <= conf < 1 or max_det < 1:
        raise UserError("--conf must be in [0, 1) and --max-det at least 1")
    if output is None and dist.world() > 1:
        raise UserError("under several processes give -o FOLDER: the boxes are merged into FOLDER/predictions.json")
    out = Path(output) if output else None
    lines = Lines(out, ".detections.jsonl") if out else None
    for chunk in chunks(mine(sources), 32):
        for (i, path), r in zip(chunk, detector.detect([p for _, p in chunk], conf, max_det)):
            found = [{"image_id": i + 1, "file_name": str(path), "category_id": int(c) + 1,
                      "category": detector.classes[int(c)], "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                                                    float(b[3] - b[1])], "score": float(s)}
                     for b, s, c in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist())]
            if as_json:
                print(json.dumps({"image": str(path), "detections": found}))
            elif dist.world() == 1:
                names = ", ".join(f"{d['category']} {d['score']:.2f}" for d in found[:8])
                print(f"{path}: {len(found)} found" + (f" ({names}{', ...' if len(found) > 8 else ''})" if found else ""))
            if out:
                lines.write({"detections": found})
                _draw(detector, path, r, out)
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


def _draw(detector, path: Path, r: dict, out: Path) -> None:
    from PIL import Image

    from .data.boxes import DetImage
    from .report.plots import draw_boxes
    from .tasks.detect import pixels
    im = pixels(DetImage(str(path), (0, 0), r["boxes"], r["labels"]))
    drawn = draw_boxes(im, r["boxes"], r["labels"], detector.classes, r["scores"], side=0)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(out / f"{path.stem}.png")


def restore_files(restorer, sources: list[str], output: str | None) -> None:
    """Restore each image into -o: a file for one input, else a folder keeping names and bit depth."""
    from .restore import images as imgio
    if not output:
        raise UserError("restoration writes images: give -o OUT.png (one input) or -o FOLDER")
    out = Path(output)
    first_two = list(itertools.islice(iter_images(sources), 2))
    single = len(first_two) == 1 and out.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
    for _, path in mine(sources):
        depth = imgio.read(path)[1]
        target = out if single else out / (path.stem + (path.suffix if path.suffix.lower() in (".png", ".tif", ".tiff")
                                                            else ".png"))
        imgio.write(target, restorer.restore(path), depth)
        print(f"{path} -> {target}")
    dist.barrier()
