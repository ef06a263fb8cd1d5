"""A generation run as an exported file: the averaged generator, or the whole DDIM sampler."""
from __future__ import annotations

import torch

from ..base import Exportable


class GeneratorFile(torch.nn.Module):
    """A GAN's averaged generator with its output mapped to pixels in [0, 1]."""

    def __init__(self, g: torch.nn.Module, conditional: bool):
        super().__init__()
        self.g, self.conditional = g, conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.g(z, labels if self.conditional else None).add(1).div(2).clamp(0, 1)


class DiffusionFile(torch.nn.Module):
    """The diffusion model's whole DDIM sampler (the run's --sample-steps, guidance 2) from its starting noise."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model.sample(z.shape[0], labels if self.model.num_classes else None, z=z)


def exportable(s) -> Exportable:
    """A loaded Sampler's network, checked on 16 latents drawn with seed 0."""
    n = 16
    z = s.model.latent(n, torch.Generator().manual_seed(0))
    labels = torch.arange(n) % max(1, s.model.num_classes)
    shape = "x".join(map(str, z.shape[1:]))
    gan = hasattr(s.model, "g_ema")
    info = dict(classes=s.classes, z_shape=list(z.shape[1:]), conditional=bool(s.model.num_classes),
                input=f"z: float32 (N, {shape}) from N(0, 1); labels: int64 (N,) class indices"
                      + ("" if s.model.num_classes else " (ignored: unconditional)"),
                output="images: float32 (N, C, H, W) in [0, 1]"
                       + ("" if gan else f"; the whole DDIM sampler ({s.model.steps} steps) is in the graph"))
    net = GeneratorFile(s.model.g_ema, bool(s.model.num_classes)) if gan else DiffusionFile(s.model)
    # the sampler's graph fixes its batch at export (the exporter specialises it): batches of 16 images
    dynamic = {"z": {0: "batch"}, "labels": {0: "batch"}} if gan else {"z": {}, "labels": {}}
    if not gan:
        info["input"] += f"; batches of exactly {n}"
    # the sampler unrolls one network pass per step: the exporter's optimiser took 31 s of a 52 s export of it (ddpm, width 0.25)
    return Exportable(net.eval(), (z, labels), ["z", "labels"], ["images"], dynamic, info,
                      f"{n} latents drawn with seed 0, labels 0..9", optimize=gan)
