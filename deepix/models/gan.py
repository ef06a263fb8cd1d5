"""GANs for `deepix train generate`: a DCGAN-style generator and discriminator sized to the image,
unconditional (dcgan) or class-conditional (cgan: the label joins the latent in G, and D scores
through a projection of the label embedding, Miyato & Koyama 2018). D's layers may carry spectral
normalisation; G's weights are followed by an exponential moving average used for sampling."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import UserError
from .registry import Spec, register


def levels(size: tuple[int, int]) -> int:
    """How many times to double from the first feature map (4x4 to 7x7) to the image side."""
    h, w = size
    if h != w:
        raise UserError(f"GANs here take square images; got {w}x{h}: pass --imgsz N to resize them")
    for k in range(1, 6):
        if h % 2 ** k == 0 and 4 <= h // 2 ** k <= 7:
            return k
    raise UserError(f"a {h}x{h} image does not halve to a 4-7 pixel map; use --imgsz 28, 32, 48 or 64")


class Generator(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int], z_dim: int, num_classes: int, width: int):
        super().__init__()
        k = levels(size)
        self.base, self.z_dim, self.num_classes = size[0] // 2 ** k, z_dim, num_classes
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        chans = [width * 2 ** (k - 1 - i) for i in range(k)] + [max(width // 2, 16)]
        self.fc = nn.Linear(z_dim * (2 if num_classes else 1), chans[0] * self.base ** 2)
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.BatchNorm2d(a), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(a, b, 3, 1, 1)]
        layers += [nn.BatchNorm2d(chans[-1]), nn.ReLU(), nn.Conv2d(chans[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.fc(z)
        return self.net(h.view(len(z), -1, self.base, self.base))


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """One extra feature map: how much the images of a small group differ (Karras et al. 2018). A generator
    that ignores its latent and draws one image per class shows up here, so D can punish it."""
    n, c, hh, ww = h.shape
    g = group if n % group == 0 else 1 if n < 2 else next(d for d in (4, 3, 2, 1) if n % d == 0)
    if g == 1:
        return h.new_zeros(n, 1, hh, ww)
    s = h.float().view(g, n // g, c, hh, ww).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
    return s.to(h.dtype).view(1, n // g, 1, 1).repeat(g, 1, hh, ww).view(n, 1, hh, ww)


class Discriminator(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int], num_classes: int, width: int, sn: bool):
        super().__init__()
        k = levels(size)
        wrap = spectral_norm if sn else (lambda m: m)
        chans = [max(width // 2, 16)] + [width * 2 ** i for i in range(k)]
        layers: list[nn.Module] = [wrap(nn.Conv2d(channels, chans[0], 3, 1, 1)), nn.LeakyReLU(0.2)]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [wrap(nn.Conv2d(a, b, 4, 2, 1)), nn.LeakyReLU(0.2), wrap(nn.Conv2d(b, b, 3, 1, 1)),
                       nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        features = (chans[-1] + 1) * (size[0] // 2 ** k) ** 2
        self.fc = wrap(nn.Linear(features, 1))
        self.embed = wrap(nn.Embedding(num_classes, features)) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(x)
        h = torch.cat([h, minibatch_std(h)], 1).flatten(1)
        out = self.fc(h).squeeze(1)
        if self.embed is not None:  # projection: the score rises where h points along the class's vector
            out = out + (self.embed(labels) * h).sum(1)
        return out


class GAN(nn.Module):
    """The pair and G's moving average. Images go in and come out in [0, 1]."""

    def __init__(self, spec: Spec):
        super().__init__()
        z_dim, sn = spec.z_dim, spec.sn
        width = max(16, round(64 * spec.width))
        self.num_classes, self.channels, self.size, self.z_dim = spec.num_classes, spec.in_channels, spec.size, z_dim
        self.g = Generator(spec.in_channels, spec.size, z_dim, spec.num_classes, width)
        self.d = Discriminator(spec.in_channels, spec.size, spec.num_classes, width, sn)
        self.g_ema = copy.deepcopy(self.g).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for e, p in zip(self.g_ema.parameters(), self.g.parameters()):
            e.lerp_(p, 1 - decay)

    @torch.no_grad()
    def settle(self, n: int = 1024, batch: int = 256) -> None:
        """Batch-norm statistics measured for the averaged weights themselves: the live generator's running
        statistics belong to other weights, and sampling with them made the scores jump between epochs."""
        norms = [m for m in self.g_ema.modules() if isinstance(m, nn.BatchNorm2d)]
        g = torch.Generator().manual_seed(0)
        dev = next(self.parameters()).device
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
        self.g_ema.train()
        for i in range(0, n, batch):
            z = self.latent(batch, g).to(dev)
            labels = torch.randint(0, self.num_classes, (batch,), generator=g).to(dev) if self.num_classes else None
            self.g_ema(z, labels)
        for m in norms:
            m.momentum = 0.1
        self.g_ema.eval()

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, z: torch.Tensor | None = None,
               generator: torch.Generator | None = None, batch: int = 1000) -> torch.Tensor:
        dev = next(self.parameters()).device
        z = self.latent(n, generator) if z is None else z
        if self.num_classes and labels is None:
            labels = torch.randint(0, self.num_classes, (n,), generator=generator)
        was = self.g_ema.training
        self.g_ema.eval()
        out = []
        for i in range(0, n, batch):
            lab = labels[i:i + batch].to(dev) if self.num_classes else None
            out.append(self.g_ema(z[i:i + batch].to(dev), lab).float().add(1).div(2).clamp(0, 1))
        self.g_ema.train(was)
        return torch.cat(out)


@register("dcgan", "DCGAN: upsample+conv generator, strided-conv discriminator (spectral norm)", "generate")
def dcgan(spec: Spec) -> nn.Module:
    return GAN(Spec(spec.in_channels, 0, spec.size, width=spec.width, z_dim=spec.z_dim, sn=spec.sn))


@register("cgan", "conditional DCGAN: label joins the latent; projection discriminator", "generate")
def cgan(spec: Spec) -> nn.Module:
    return GAN(spec)
