"""torchvision's detectors by name (`tv:fcos_resnet50_fpn`, `tv:ssdlite320_mobilenet_v3_large`, ...),
built with no weights at all (nothing is downloaded; `--weights FILE` loads a local file), sized to
the run's images and scoring down to 0.001 so that COCO's evaluator sees the whole ranking.

They train and predict through their own interface (a list of images and target dicts in, a loss
dict or detections out); the detect task drives them with `TorchvisionDetector.losses / detect`.
Class k of the data is their label k + 1: label 0 is their background.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

# keyword names differ across torchvision's families; each builder takes one of these pairs
SCORE_KW = (("score_thresh", "detections_per_img"), ("box_score_thresh", "box_detections_per_img"))


def names() -> list[str]:
    import torchvision.models.detection as d  # torchvision's model zoo takes ~0.5 s to import: only this path pays it
    return sorted(n for n in dir(d) if not n.startswith("_") and callable(getattr(d, n)) and n.islower()
                  and "keypoint" not in n and "mask" not in n)


class TorchvisionDetector(nn.Module):
    def __init__(self, name: str, num_classes: int, side: int, max_dets: int = 100):
        super().__init__()
        import torchvision.models.detection as d  # torchvision's model zoo takes ~0.5 s to import: only this path pays it
        if name not in names():
            raise UserError(f"tv:{name} is not a torchvision detector; use one of "
                            + ", ".join(f"tv:{n}" for n in names()))
        build = getattr(d, name)
        base = {"weights": None, "weights_backbone": None, "num_classes": num_classes + 1}
        last = None
        for size in ({"min_size": side, "max_size": side}, {}):
            for score, dets in SCORE_KW:
                try:
                    self.net = build(**base, **size, **{score: 0.001, dets: max_dets})
                    self.name = name
                    return
                except TypeError as e:  # this family names its settings otherwise
                    last = e
        raise UserError(f"tv:{name} could not be built for detection here: {last}")

    def losses(self, x: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: float (B, 3, H, W) in [0, 1]; targets (B, M, 5) [label, x1, y1, x2, y2], label -1 = none."""
        boxes = [{"boxes": t[t[:, 0] >= 0, 1:], "labels": t[t[:, 0] >= 0, 0].long() + 1} for t in targets]
        return self.net(list(x), boxes)

    def detect(self, x: torch.Tensor) -> list[dict]:
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1}
                for o in self.net(list(x))]

    def forward(self, x):
        return self.detect(x)
