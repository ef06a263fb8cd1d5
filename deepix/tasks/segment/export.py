"""A segmentation run as an exported file (class scores per pixel, any image size), and an exported file used
like the run: the same scale and overlapping tiles, the network run by onnxruntime (or TorchScript)."""
from __future__ import annotations

import torch

from ...errors import UserError
from ...export import FileNet
from ..base import Exportable
from .data import load, tensors
from .loaded import Segmentation
from .train import score as figures


def exportable(seg, data: str | None) -> Exportable:
    """The segmenter (a loaded run), checked on the run's own test images."""
    cfg = seg.cfg
    if data:
        cfg.data = data
    try:
        ds = load(cfg)
    except UserError as e:
        raise UserError(f"the parity check runs on the run's own images, and they could not be read ({e}); "
                        f"pass --data to point at them") from None
    split = "test" if ds.splits.get("test") else "val"
    x = tensors(ds.splits[split][:8], seg.imgsz)[0].float().div(255)
    info = dict(classes=seg.classes, colours=[list(c) for c in seg.colours], size=[seg.imgsz, seg.imgsz],
                scale=seg.scale, tile=max(cfg.tile, seg.imgsz),
                input="images: float32 (N, 3, H, W) RGB in [0, 1], any H and W (deepix resizes by `scale` first and "
                      "runs tiles of `tile` pixels)",
                output="scores: float32 (N, classes, H, W); the class of a pixel is the argmax over axis 1")
    def calibration(n: int) -> list[tuple]:
        cal = tensors(ds.splits["train"][:n], seg.imgsz)[0].float().div(255)
        return [(cal[i:i + 16],) for i in range(0, len(cal), 16)]

    def score(module) -> tuple[dict, None]:
        r = figures(seg.step, module, ds.splits[split], seg.imgsz, torch.device("cpu"), False, None, seg.colours)
        return {"miou": r["miou"], "split": split, "images": len(ds.splits[split])}, None

    return Exportable(seg.model.float().cpu().eval(), (x,), ["images"], ["scores"],
                      {"images": {0: "batch", 2: "height", 3: "width"}}, info, f"{len(x)} {split} images of {ds.name}",
                      parity=lambda got, want: {"pixel_agreement": float((got.argmax(1) == want.argmax(1)).mean())},
                      calibration=calibration, score=score, int8_budget=("miou", 0.01))


class ExportedSegmenter(Segmentation):
    """An exported segmenter file: `deepix predict model.onnx field.jpg -o out/`."""

    def __init__(self, file):
        self.file, self.classes = file, list(file.meta["classes"])
        self.colours = [tuple(c) for c in file.meta["colours"]]
        self.scale, self.tile = float(file.meta.get("scale", 1.0)), int(file.meta.get("tile", 256))
        self.net = FileNet(file.path)
