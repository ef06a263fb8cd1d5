"""Composable, seeded degradations applied to whole batches: what a restoration model learns to undo.

A spec is steps joined by "+", applied left to right:

    noise:25      additive Gaussian noise, sigma on the 0-255 scale (0..255); the result is not clipped
    noise:0-55    blind noise: sigma drawn uniformly per image from the range
    poisson:30    Poisson (shot) noise with a peak of 30 photons at white
    jpeg:20       JPEG compression at quality 1..100
    blur:1.6      Gaussian blur, sigma in pixels
    motion:9      linear motion blur 9 pixels long at a random angle per image
    down:2        bicubic down-scaling by 2, 3 or 4 (super-resolution); the last step, though noise may follow

Examples: noise:25, blur:1.6+noise:2, down:2, jpeg:10, down:4+noise:5.
Every step but Gaussian noise clips to [0, 1], as a sensor or a file would. down first crops H and W to multiples
of the scale (bottom rows and right columns dropped; crop_to_scale does the same to the clean target). Random draws
come from the caller's seeded CPU generator and move to the batch's device, so a run repeats exactly on any device.
"""
import math
import warnings

import numpy as np
from scipy.signal import convolve2d
import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from deepix.errors import UserError

GRAMMAR = ("steps joined by '+': noise:25 | noise:0-55 | poisson:30 | jpeg:1..100 | blur:1.6 | motion:9 | "
           "down:2|3|4 (last; only noise may follow), e.g. blur:1.6+noise:2")


def crop_to_scale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) to multiples of `scale` by dropping bottom rows and right columns, so pairs align."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised 2-D Gaussian PSF of side 2*ceil(3*sigma)+1, float64."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    return torch.outer(k, k)


def motion_kernels(length: int, angles: torch.Tensor) -> torch.Tensor:
    """Normalised line PSFs `length` pixels long, one per angle in radians: (N, k, k) float64, k odd."""
    k = length // 2 * 2 + 1
    c = k // 2
    # dense samples along the segment, splatted bilinearly, give a line without gaps at any angle
    t = torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length, dtype=torch.float64)
    xs = (c + t * torch.cos(angles)[:, None]).clamp(0, k - 1)
    ys = (c - t * torch.sin(angles)[:, None]).clamp(0, k - 1)
    x0, y0 = xs.floor(), ys.floor()
    fx, fy = xs - x0, ys - y0
    out = torch.zeros(len(angles), k * k, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0.long() + dx, y0.long() + dy
        inside = (xi < k) & (yi < k)  # only zero-weight corners fall outside
        out.scatter_add_(1, yi.clamp(max=k - 1) * k + xi.clamp(max=k - 1), w * inside)
    return (out / out.sum(1, keepdim=True)).view(-1, k, k)


def _filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of x with its kernel (one kernel broadcasts), reflect-padded, clipped to [0, 1]."""
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    p = k // 2
    if p >= min(h, w):
        raise UserError(f"degrade: a {k}x{k} blur kernel needs images over {p} pixels on a side, got {h}x{w}; "
                        "use a smaller blur/motion or larger images")
    weight = kernels.to(x).expand(b, k, k).repeat_interleave(c, 0)[:, None]
    # one grouped convolution blurs every channel of every image with its own kernel at once
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (p, p, p, p), mode="reflect"), weight, groups=b * c)
    return y.view(b, c, h, w).clamp(0, 1)


def _noise(x, span, g):
    lo, hi = span
    sigma = (lo + (hi - lo) * torch.rand(x.shape[0], 1, 1, 1, generator=g)) / 255
    return x + (sigma * torch.randn(x.shape, generator=g)).to(x)


def _poisson(x, peak, g):
    # drawn on the CPU generator so a GPU run repeats a CPU run
    counts = torch.poisson(x.detach().clamp(0, 1).float().cpu() * peak, generator=g)
    return (counts / peak).clamp(0, 1).to(x)


def _jpeg(x, quality, g):
    if x.shape[1] not in (1, 3):
        raise UserError(f"degrade: jpeg needs 1 or 3 channels, got {x.shape[1]}; use --channels 1 or 3")
    u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for torchcodec; they still work
        warnings.simplefilter("ignore", DeprecationWarning)
        out = decode_jpeg(encode_jpeg(list(u8), quality=int(quality)))
    return torch.stack(out).to(x) / 255


def _blur(x, sigma, g):
    return _filter(x, gaussian_kernel(sigma)[None])


def _motion(x, length, g):
    # a line is symmetric, so angles in [0, pi) cover every direction
    angles = torch.rand(x.shape[0], generator=g, dtype=torch.float64) * math.pi
    return _filter(x, motion_kernels(int(length), angles))


def _down(x, s, g):
    # antialiased bicubic approximates MATLAB imresize, which super-resolution papers use to make their inputs;
    # an explicit size avoids floor(H * (1/3)) landing one pixel short
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // s, w // s), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


_APPLY = dict(noise=_noise, poisson=_poisson, jpeg=_jpeg, blur=_blur, motion=_motion, down=_down)


class Degrade:
    """A parsed degradation spec; call it on a clean batch with a seeded CPU generator."""

    def __init__(self, steps, spec: str = ""):
        self.steps = tuple(steps)
        self.spec = spec or "+".join(f"{n}:{v}" for n, v in self.steps)
        self.scale = next((int(v) for n, v in self.steps if n == "down"), 1)
        noise = [v for n, v in self.steps if n == "noise"]
        self.sigma = noise[0][0] if len(noise) == 1 and noise[0][0] == noise[0][1] else None

    def __repr__(self):
        return f"Degrade({self.spec!r})"

    def __call__(self, clean: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Degrade a float batch (B, C, H, W) in [0, 1] into (B, C, H // scale, W // scale); draws come from g."""
        if clean.ndim != 4 or not clean.is_floating_point():
            raise UserError(f"degrade: expected a float batch (B, C, H, W) in [0, 1], got {tuple(clean.shape)} "
                            f"{clean.dtype}; convert with x.float() / 255 and add a batch dimension")
        x = crop_to_scale(clean, self.scale)
        for name, value in self.steps:
            x = _APPLY[name](x, value, g)
        return x

    def blur_kernel(self) -> np.ndarray | None:
        """The known PSF of the Gaussian blur steps (composed), or None without one (motion angles are random)."""
        kernels = [gaussian_kernel(v).numpy() for n, v in self.steps if n == "blur"]
        if not kernels or any(n in ("motion", "down") for n, _ in self.steps):
            return None
        psf = kernels[0]
        for k in kernels[1:]:
            psf = convolve2d(psf, k)  # blurs in a row blur once by the full convolution of their PSFs
        return psf / psf.sum()


def _bad(spec, why):
    raise UserError(f"degradation spec {spec!r}: {why}; a spec is {GRAMMAR}")


def _number(spec, what, arg, lo, hi, integer=False):
    try:
        v = float(arg)
    except ValueError:
        _bad(spec, f"{what} {arg!r} is not a number")
    if not lo <= v <= hi or (integer and v != int(v)):
        _bad(spec, f"{what} {arg} must be {'an integer' if integer else 'a number'} in {lo}..{hi}")
    return int(v) if integer else v


def _parse_noise(spec, arg):
    lo, sep, hi = arg.partition("-")
    lo = _number(spec, "noise sigma", lo, 0, 255)
    hi = _number(spec, "noise sigma", hi, 0, 255) if sep else lo
    if lo > hi:
        _bad(spec, f"noise range {arg} runs backwards")
    return lo, hi


def _parse_positive(what):
    def parse_one(spec, arg):
        v = _number(spec, what, arg, 0, 1e6)
        if v <= 0:
            _bad(spec, f"{what} must be above 0")
        return v
    return parse_one


_PARSE = dict(
    noise=_parse_noise,
    poisson=_parse_positive("poisson peak"),
    jpeg=lambda spec, arg: _number(spec, "jpeg quality", arg, 1, 100, integer=True),
    blur=_parse_positive("blur sigma"),
    motion=lambda spec, arg: _number(spec, "motion length", arg, 1, 1000, integer=True),
    down=lambda spec, arg: _number(spec, "down scale", arg, 2, 4, integer=True),
)


def parse(spec: str) -> Degrade:
    """Read a spec such as 'blur:1.6+noise:2' into a Degrade; a bad one raises UserError."""
    if not str(spec).strip():
        _bad(spec, "it is empty")
    steps = []
    for part in str(spec).replace(" ", "").split("+"):
        name, _, arg = part.partition(":")
        if name not in _PARSE or not arg:
            _bad(spec, f"unknown step {part!r}" if name not in _PARSE else f"step {name!r} needs a value")
        steps.append((name, _PARSE[name](spec, arg)))
    down = [i for i, (n, _) in enumerate(steps) if n == "down"]
    if len(down) > 1 or (down and any(n != "noise" for n, _ in steps[down[0] + 1:])):
        _bad(spec, "down must be the last step (only noise may follow it)")
    return Degrade(steps, str(spec).replace(" ", ""))


def protocol_noise(img: np.ndarray, sigma: float) -> np.ndarray:
    """The benchmark protocol's noisy image: np.random.seed(0), then img + N(0, sigma/255), float64, not clipped."""
    img = np.asarray(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise UserError(f"protocol_noise: the image is {img.dtype}; scale it to floats in [0, 1] first (img / 255)")
    np.random.seed(0)  # the published protocol reseeds NumPy's global generator before every image
    return img + np.random.normal(0, sigma / 255, img.shape)
