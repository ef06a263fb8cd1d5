"""A pretrain run as an exported file: its encoder, images in, flat features out."""
from __future__ import annotations

import torch

from ...export import photos, real_images
from ..base import Exportable


class EncoderFile(torch.nn.Module):
    """A pretrained encoder: images in, flat features out."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images).flatten(1)


def exportable(enc, cfg, data: str | None) -> Exportable:
    """A loaded Encoder (the last epoch's, whatever --weights says: what the run is for), checked on the run's
    own test images, or on photographs when it learnt from images without labels."""
    ch, size, dim = enc.channels, list(enc.size), enc.model.dim
    if data:
        cfg.data = data
    if enc.labelled:
        x, about = real_images(cfg, 64)
    else:
        x = torch.nn.functional.interpolate(photos(ch), size=tuple(size), mode="bilinear", antialias=True)
        about = f"{len(x)} photographs (scikit-image's camera and astronaut)"
    info = dict(weights="encoder", channels=ch, size=size, method=cfg.method, features=dim,
                input=f"images: float32 (N, {ch}, {size[0]}, {size[1]}) in [0, 1]; the standardisation is inside "
                      "the graph",
                output=f"features (N, {dim}): the encoder's, for k-NN, probes or your own head")
    return Exportable(EncoderFile(enc.model.encoder).eval(), (x,), ["images"], ["features"], {"images": {0: "batch"}},
                      info, about)
