"""A detection run as an exported file: the network and its box decoding, up to the NMS."""
from __future__ import annotations

import torch

from ...data.coco_eval import evaluate
from ...errors import UserError
from ..base import Exportable
from .augment import FILL
from .fcos_head import to_boxes
from .images import letterbox
from .loaded import MAX_DETS, from_dense
from .train import load_data


class Dense(torch.nn.Module):
    """FCOS's outputs decoded up to the NMS: boxes (N, P, 4) in the letterboxed image's pixels and scores
    (N, P, C) = sqrt(class probability x centre-ness), as deepix's own decoder computes them."""

    def __init__(self, model: torch.nn.Module, points: torch.Tensor, imgsz: int):
        super().__init__()
        self.model, self.imgsz = model, imgsz
        self.register_buffer("points", points)

    def forward(self, images: torch.Tensor):
        out = self.model(images).float()
        c = out.shape[-1] - 5
        scores = torch.sqrt(out[..., :c].sigmoid() * out[..., -1:].sigmoid())
        return to_boxes(self.points[None], out[..., c:c + 4]).clamp(0, self.imgsz), scores


def exportable(det, data: str | None) -> Exportable:
    """deepix's own detectors (a loaded run), checked on the run's own test images."""
    cfg = det.cfg
    if data:
        cfg.data = data
    if det.step.tv:
        raise UserError(f"{cfg.model} is a torchvision detector; export covers deepix's own (fcos-n, fcos-s) so far")
    try:
        ds = load_data(cfg)
    except UserError as e:
        raise UserError(f"the parity check runs on the run's own images, and they could not be read ({e}); "
                        f"pass --data to point at them") from None
    split = "test" if ds.splits.get("test") else "val"
    x = letterbox(ds.splits[split][:16], det.imgsz)[0].float().div(255)
    det.step.prepare(x, None, False)  # sets the points of this image size
    info = dict(classes=det.classes, size=[det.imgsz, det.imgsz], iou=cfg.iou,
                input=f"images: float32 (N, 3, {det.imgsz}, {det.imgsz}) RGB in [0, 1]: each image scaled so its "
                      f"longer side is {det.imgsz}, placed top-left, the rest filled with grey {FILL:.4f} (114/255)",
                output=f"boxes (N, P, 4) x1 y1 x2 y2 in those pixels (divide by the scale for the image's own), "
                       f"scores (N, P, classes); keep scores over a threshold (0.25) and apply class-wise NMS at "
                       f"IoU {cfg.iou}")
    def calibration(n: int) -> list[tuple]:
        cal = letterbox(ds.splits["train"][:n], det.imgsz)[0].float().div(255)
        return [(cal[i:i + 16],) for i in range(0, len(cal), 16)]

    def score(module) -> tuple[dict, None]:
        test = ds.splits[split]
        images, _, scales = letterbox(test, det.imgsz)
        preds = []
        with torch.no_grad():
            for i in range(0, len(images), 32):
                boxes, scores = module(images[i:i + 32].float().div(255))
                preds += from_dense(boxes, scores, scales[i:i + 32], 0.001, cfg.iou, MAX_DETS)
        r = evaluate(test, preds, det.classes, MAX_DETS)
        return {"map50": r["map50"], "map": r["map"], "split": split, "images": len(test)}, None

    return Exportable(Dense(det.model.float().cpu(), det.step.points.cpu(), det.imgsz).eval(), (x,), ["images"],
                      ["boxes", "scores"], {"images": {0: "batch"}}, info, f"{len(x)} {split} images of {ds.name}",
                      calibration=calibration, score=score, int8_budget=("map50", 0.01))
