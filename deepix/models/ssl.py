"""Self-supervised pretraining around a registry classifier's encoder (the classifier without its last
layer): SimCLR and BYOL with lightly's losses and heads, and a masked-image reconstruction (SimMIM-style
for CNNs: masked patches in, a 1x1-conv + pixel-shuffle decoder from the last feature map out)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from collections import OrderedDict

METHODS = ("simclr", "byol", "mae")


def strip_head(model: nn.Sequential) -> int:
    """Replaces the classifier's last Linear layer (in place) by Identity; returns the feature size. The
    encoder keeps the classifier's tensor names, so its weights load straight into a classifier."""
    net = model[1]
    if isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear):
        dim = net[-1].in_features
        net[-1] = nn.Identity()
    elif isinstance(getattr(net, "fc", None), nn.Linear):  # torchvision's ResNets
        dim = net.fc.in_features
        net.fc = nn.Identity()
    elif hasattr(net, "reset_classifier"):  # timm
        net.reset_classifier(0)
        dim = net.num_features
    else:
        raise UserError("pretraining needs a classifier whose last layer is a Linear layer "
                        "(vgg7, resnet8, resnet14, seed-cnn-bn, tv:resnet18, timm:...)")
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0  # the features are the output: no dropout on them
    return dim


def backbone(model: nn.Module) -> nn.Sequential:
    """A detector's or restorer's down-sampling path (stem, then its stages), globally pooled, under the
    model's own tensor names so that its weights load back into the model."""
    for name in ("stages", "downs"):  # FCOS, U-Net
        if hasattr(model, name) and hasattr(model, "stem"):
            return nn.Sequential(OrderedDict([("stem", model.stem), (name, nn.Sequential(*getattr(model, name))),
                                              ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]))
    raise UserError(f"{type(model).__name__} has no down-sampling path to pretrain; use a classifier, "
                    "fcos-n/fcos-s or unet-s/unet")


def trunk(encoder: nn.Sequential) -> nn.Sequential:
    """The encoder up to its global pooling: the last feature map, which masked reconstruction decodes."""
    net = encoder[1]
    if isinstance(net, nn.Sequential):
        for i, m in enumerate(net):
            if isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten)):
                return nn.Sequential(encoder[0], net[:i])
    raise UserError("--method mae needs a built-in CNN with global pooling (vgg7, resnet8, resnet14)")


class Pretrainer(nn.Module):
    """The encoder and what one method adds to it. `loss(v1, v2)` for two views of a batch (or the
    batch and its mask for mae); `embed(x)` the features that downstream tasks use."""

    def __init__(self, encoder: nn.Sequential, dim: int, method: str, channels: int, size: tuple[int, int],
                 temperature: float = 0.2, mask_ratio: float = 0.5):
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity, NTXentLoss  # lightly takes ~1 s to import: only pretraining pays it
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead  # lightly takes ~1 s to import: only pretraining pays it
        self.encoder, self.method, self.dim, self.mask_ratio = encoder, method, dim, mask_ratio
        if method == "simclr":
            self.head = SimCLRProjectionHead(dim, 512, 128)
            self.criterion = NTXentLoss(temperature=temperature)
        elif method == "byol":
            self.head = BYOLProjectionHead(dim, 512, 128)
            self.predictor = BYOLPredictionHead(128, 512, 128)
            # the momentum (target) networks: saved with the run so that a resumed run goes on exactly
            self.encoder_m, self.head_m = copy.deepcopy(self.encoder), copy.deepcopy(self.head)
            for p in list(self.encoder_m.parameters()) + list(self.head_m.parameters()):
                p.requires_grad_(False)
            self.criterion = NegativeCosineSimilarity()
        elif method == "mae":
            trunk(encoder)  # checks that there is one
            with torch.no_grad():
                c, h, w = trunk(encoder).eval()(torch.zeros(1, channels, *size)).shape[1:]
            encoder.train()
            self.patch = max(1, size[0] // h)
            self.grid = (h, w)
            self.decoder = nn.Conv2d(c, channels * self.patch ** 2, 1)
        else:
            raise UserError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        # built on each call, not kept as a submodule: its tensors would be saved twice
        return trunk(self.encoder)(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        if self.method == "simclr":
            return self.criterion(self.head(self.embed(v1)).float(), self.head(self.embed(v2)).float())
        if self.method == "byol":
            p1, p2 = (self.predictor(self.head(self.embed(v))).float() for v in (v1, v2))
            with torch.no_grad():
                t1, t2 = (self.head_m(self.encoder_m(v).flatten(1)).float() for v in (v1, v2))
            return 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))
        return self.masked_loss(v1, v2)

    def mask(self, n: int, g: torch.Generator | None = None) -> torch.Tensor:
        """(n, 1, H, W) with 1 on the hidden patches (a share mask_ratio of the trunk's output cells)."""
        h, w = self.grid
        keys = torch.rand(n, h * w, generator=g)
        hidden = keys.argsort(1) < round(self.mask_ratio * h * w)
        m = hidden.float().view(n, 1, h, w)
        return m.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)

    def masked_loss(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(m, size=x.shape[2:], mode="nearest")
        target = self.encoder[0](x)  # standardised pixels
        out = self.reconstruct(x, m)
        err = (out.float() - target.float()).pow(2) * m
        return err.sum() / (m.sum() * x.shape[1]).clamp_min(1)

    def reconstruct(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The standardised image predicted from its visible patches (hidden ones set to the mean)."""
        hidden = x * (1 - m) + self.encoder[0].mean * m
        y = F.pixel_shuffle(self.decoder(self.trunk(hidden)), self.patch)
        return F.interpolate(y, size=x.shape[2:], mode="bilinear") if y.shape[2:] != x.shape[2:] else y

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        if self.method == "byol":
            from lightly.models.utils import update_momentum  # lightly takes ~1 s to import: only pretraining pays it
            update_momentum(self.encoder, self.encoder_m, m)
            update_momentum(self.head, self.head_m, m)
