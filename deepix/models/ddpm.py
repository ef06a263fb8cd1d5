"""A small denoising-diffusion model (Ho et al. 2020): cosine noise schedule (Nichol & Dhariwal 2021),
v-prediction (Salimans & Ho 2022), deterministic DDIM sampling (Song et al. 2021), and
classifier-free guidance (Ho & Salimans 2021) when it has classes."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Spec, register


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the (time + label) embedding added in between, residual."""

    def __init__(self, c: int, emb: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))
        self.emb = nn.Linear(emb, c)
        self.conv2 = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x, e):
        return x + self.conv2(self.conv1(x) + self.emb(e)[:, :, None, None])


class Denoiser(nn.Module):
    """U-Net from (x_t, t, label) to v: one block per level and side, 2x2 stride-2 convs down,
    1x1 conv + pixel-shuffle up, additive skips. Pads H, W to a multiple of 2**(levels-1), crops back."""

    def __init__(self, channels: int, widths: list[int], num_classes: int):
        super().__init__()
        self.factor = 2 ** (len(widths) - 1)
        w0, emb = widths[0], 4 * widths[0]
        self.time = nn.Sequential(nn.Linear(w0, emb), nn.SiLU(), nn.Linear(emb, emb))
        # row num_classes is the "no label" class that classifier-free guidance needs
        self.label = nn.Embedding(num_classes + 1, emb) if num_classes else None
        self.stem = nn.Conv2d(channels, w0, 3, padding=1)
        self.enc = nn.ModuleList(ResBlock(w, emb) for w in widths)
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(b, 4 * a, 1), nn.PixelShuffle(2))
                                 for a, b in zip(widths, widths[1:]))
        self.dec = nn.ModuleList(ResBlock(w, emb) for w in widths)
        self.head = nn.Sequential(nn.GroupNorm(8, w0), nn.SiLU(), nn.Conv2d(w0, channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # starts predicting v = 0: a calm first few hundred steps
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        h, w = x.shape[-2:]
        z = F.pad(x, (0, -w % self.factor, 0, -h % self.factor))
        half = self.time[0].in_features // 2
        angle = 1000 * t.float()[:, None] * torch.exp(-math.log(1e4) / half * torch.arange(half, device=x.device))
        e = self.time(torch.cat([angle.sin(), angle.cos()], 1))
        e = F.silu(e if self.label is None else e + self.label(y))
        skips = []
        for i, block in enumerate(self.enc):
            z = block(self.downs[i - 1](z) if i else self.stem(z), e)
            skips.append(z)
        for i in reversed(range(len(self.dec))):
            z = self.dec[i](z if i == len(self.dec) - 1 else self.ups[i](z) + skips[i], e)
        return self.head(z)[..., :h, :w]


def _frozen_copy(m: nn.Module) -> nn.Module:
    """A copy whose weights are buffers: saved in the state_dict and moved by .to(), but outside
    .parameters(), so optimizers, weight decay and parameter counts see only the live network."""
    m = copy.deepcopy(m)
    for mod in m.modules():
        for name, p in list(mod._parameters.items()):
            del mod._parameters[name]
            mod.register_buffer(name, p.detach().requires_grad_(False))
    return m


class Diffusion(nn.Module):
    """Images x in [0, 1] are mapped to x0 in [-1, 1] and noised as x_t = alpha x0 + sigma noise,
    alpha = cos(phi), sigma = sin(phi), phi = (t + s) / (1 + s) * pi / 2, t in [0, 1]."""

    S = 0.008  # the cosine schedule's offset: a little noise (sigma 0.013) even at t = 0

    def __init__(self, channels: int, size: tuple[int, int], num_classes: int, widths: list[int],
                 label_dropout: float = 0.1):
        super().__init__()
        self.channels, self.size, self.num_classes = channels, tuple(size), num_classes
        self.steps = 25  # DDIM steps per sample unless sample() is told otherwise (the run's --sample-steps)
        self.label_dropout = label_dropout
        self.net = Denoiser(channels, widths, num_classes)
        self.ema = _frozen_copy(self.net)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The live network's v prediction for noised images x in [-1, 1] at times t."""
        return self.net(x, t, y)

    def _schedule(self, t: Tensor) -> tuple[Tensor, Tensor]:
        phi = (t.float() + self.S) / (1 + self.S) * (math.pi / 2)  # float32 even under autocast
        return phi.cos().view(-1, 1, 1, 1), phi.sin().view(-1, 1, 1, 1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """MSE between the network's output and v = alpha noise - sigma x0 at a uniform random t."""
        x0 = x.float() * 2 - 1
        n = len(x0)
        t = torch.rand(n, device=x0.device)
        noise = torch.randn_like(x0)
        alpha, sigma = self._schedule(t)
        if self.num_classes:  # a share of labels dropped to "none" teaches the unconditional model too
            drop = torch.rand(n, device=x0.device) < self.label_dropout
            y = torch.full((n,), self.num_classes, device=x0.device) if y is None else y
            y = y.masked_fill(drop, self.num_classes)
        v = self.net(alpha * x0 + sigma * noise, t, y if self.num_classes else None)
        return F.mse_loss(v.float(), alpha * noise - sigma * x0)

    @torch.no_grad()
    def update_ema(self, decay: float = 0.999) -> None:
        """EMA of the live weights; the decay ramps up as (1 + k) / (10 + k) over the first updates
        so that short runs are not averaged with their random start."""
        k = self.ema_updates.item()
        self.ema_updates += 1
        d = min(decay, (1 + k) / (10 + k))
        ema = self.ema.state_dict()
        for name, p in self.net.state_dict().items():
            ema[name].lerp_(p, 1 - d)

    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The starting noise of sample(), (n, C, H, W)."""
        return torch.randn((n, self.channels, *self.size), generator=generator)  # on the CPU: seeded the same anywhere

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, z: Tensor | None = None,
               generator: torch.Generator | None = None, steps: int | None = None, guidance: float = 2.0) -> Tensor:
        """n images in [0, 1] from the EMA network by DDIM with eta = 0: deterministic given z.
        labels default to 0, 1, 2, ... cyclically; guidance > 1 mixes in the unconditional prediction."""
        x = (self.latent(n, generator) if z is None else z).float().to(self.ema_updates.device)
        steps = steps or self.steps
        guided = self.num_classes and guidance != 1
        y = None
        if self.num_classes:
            y = torch.arange(n, device=x.device) % self.num_classes if labels is None else labels.to(x.device)
            if guided:
                y = torch.cat([y, torch.full_like(y, self.num_classes)])
        ts = torch.linspace(1, 0, steps + 1, device=x.device)
        for i in range(steps):  # counted in Python, not by comparing tensors: export traces it as it is
            t, t_next = ts[i], ts[i + 1]
            alpha, sigma = self._schedule(t.expand(n))
            if guided:
                vc, vu = self.ema(torch.cat([x, x]), t.expand(2 * n), y).float().chunk(2)
                v = vu + guidance * (vc - vu)
            else:
                v = self.ema(x, t.expand(n), y).float()
            x0 = (alpha * x - sigma * v).clamp(-1, 1)
            if i == steps - 1:  # the last step returns the clean estimate itself
                return (x0 + 1) / 2
            eps = (x - alpha * x0) / sigma
            alpha, sigma = self._schedule(t_next.expand(n))
            x = alpha * x0 + sigma * eps


@register("ddpm", "small diffusion U-Net (v-prediction, cosine schedule, DDIM sampling; "
          "class-conditional with guidance when given classes)", kind="generate")
def ddpm(spec: Spec) -> nn.Module:
    base = [32, 64, 128] if max(spec.size) <= 32 else [32, 64, 128, 128]  # 7x7 / 4x4 / 8x8 at the bottom
    return Diffusion(spec.in_channels, spec.size, spec.num_classes,
                     [max(8, 8 * round(c * spec.width / 8)) for c in base])
