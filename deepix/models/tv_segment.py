"""torchvision's segmenters by name (`tv:lraspp_mobilenet_v3_large`, `tv:deeplabv3_resnet50`, ...), built with
no weights at all (nothing is downloaded; `--weights FILE` loads a local file). They take images normalised
with ImageNet's statistics, as their pretrained weights expect, and give the class scores at the input's size."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def names() -> list[str]:
    import torchvision.models.segmentation as s  # torchvision's model zoo takes ~0.5 s to import: only this path pays it
    return sorted(n for n in dir(s) if n.startswith(("deeplabv3_", "lraspp_", "fcn_")) and callable(getattr(s, n)))


class TorchvisionSegmenter(nn.Module):
    def __init__(self, name: str, num_classes: int):
        super().__init__()
        import torchvision.models.segmentation as s
        if name not in names():
            raise UserError(f"tv:{name} is not a torchvision segmenter; use one of " + ", ".join(f"tv:{n}" for n in names()))
        kw = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if not name.startswith("lraspp"):
            kw["aux_loss"] = False
        self.net = getattr(s, name)(**kw)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float (B, 3, H, W) in [0, 1] -> (B, K, H, W) scores."""
        return self.net((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))["out"]
