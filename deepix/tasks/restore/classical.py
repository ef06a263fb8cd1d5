"""The classical baselines a learned restorer has to beat: each fn(degraded, deg, sigma) -> image in [0, 1].

Images are NumPy HxW or HxWxC floats; sigma is the noise level on the 0-255 scale, or None to estimate it with
a wavelet (MAD) estimator. Settings tuned on Set12 under the denoising protocol (means over its 12 images):
  nlm   skimage denoise_nl_means, fast_mode, patch_size 5, patch_distance 6, h = 0.7 sigma
        (31.26 / 28.67 / 24.96 dB at sigma 15 / 25 / 50; h = 0.6-0.8 sigma are all within 0.2 dB)
  tv    skimage denoise_tv_chambolle, weight = 0.8 sigma (30.44 / 28.05 / 24.93 dB)
  wiener   skimage wiener with the known PSF, balance = max(50 sigma^2, 1e-4), sigma on [0, 1] (the best balance
           tracked 50 sigma^2 from sigma 2 to 25 on six Set12 images; blur:1.6+noise:2 goes 24.65 -> 27.5 dB)
  richardson_lucy   skimage richardson_lucy, min(30, 100 / sigma) iterations, at least 5: it amplifies noise
           (27.2 dB on blur:1.6+noise:2)
  deconvolution pads the image by mirroring first: without it the FFT wrap-around costs 1.5-3 dB
  bm3d  the `bm3d` package (pip install bm3d), when installed
"""
import numpy as np
import torch
import torch.nn.functional as F
from skimage import restoration

from deepix.errors import UserError
from deepix.tasks.restore.degrade import Degrade


def _axis(img):
    return -1 if img.ndim == 3 else None


def estimate_sigma(img) -> float:
    """Noise sigma (0-255 scale) by Donoho's MAD of the finest diagonal Haar coefficients, averaged over channels."""
    # skimage's estimate_sigma is the same estimator on db2 wavelets but needs PyWavelets, which deepix does not
    # depend on; on Set12 the two agree within 1 at sigma 2-50
    x = np.asarray(img, dtype=np.float64)
    x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
    if x.size == 0:  # under 2 x 2 pixels: no noise can be told from the picture
        return 0.0
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.mean(np.median(np.abs(hh.reshape(hh.shape[0] * hh.shape[1], -1)), 0)) / 0.6745 * 255)


def _sigma01(img, sigma):
    """The noise sigma on the [0, 1] scale: the known one, else estimated from the image."""
    return (estimate_sigma(img) if sigma is None else sigma) / 255


def identity(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """The degraded input itself (clipped): the floor every method must clear."""
    return np.clip(degraded, 0, 1)


def bicubic(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """Bicubic up-scaling by the spec's scale to the clean size: the super-resolution floor."""
    x = torch.as_tensor(np.asarray(degraded, dtype=np.float32))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    y = F.interpolate(x, size=(h * deg.scale, w * deg.scale), mode="bicubic", align_corners=False)
    y = y[0, 0] if np.ndim(degraded) == 2 else y[0].permute(1, 2, 0)
    return y.clamp(0, 1).numpy()


def nlm(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """Non-local means with h = 0.7 sigma (fast_mode, 5x5 patches, search distance 6)."""
    s = _sigma01(degraded, sigma)
    if s <= 0:
        return identity(degraded, deg)
    out = restoration.denoise_nl_means(degraded, h=0.7 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6,
                                       channel_axis=_axis(degraded))
    return np.clip(out, 0, 1)


def tv(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """Total-variation denoising (Chambolle) with weight = 0.8 sigma."""
    s = _sigma01(degraded, sigma)
    if s <= 0:
        return identity(degraded, deg)
    return np.clip(restoration.denoise_tv_chambolle(degraded, weight=0.8 * s, channel_axis=_axis(degraded)), 0, 1)


def _deconvolve(one, img, deg):
    psf = deg.blur_kernel()
    if psf is None:
        raise UserError(f"deconvolution needs a known blur; {deg.spec!r} has no fixed blur:SIGMA step")
    p = psf.shape[0]

    # the FFT solvers treat the image as periodic; mirrored margins keep the wrap-around ringing out of the crop
    def channel(ch):
        return one(np.pad(ch, p, mode="symmetric"), psf)[p:-p, p:-p]

    img = np.asarray(img, dtype=np.float64)
    out = channel(img) if img.ndim == 2 else np.stack([channel(img[..., i]) for i in range(img.shape[-1])], -1)
    return np.clip(out, 0, 1)


def wiener(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """Wiener-Hunt deconvolution with the known PSF; the balance grows with the noise variance."""
    balance = max(50 * _sigma01(degraded, sigma) ** 2, 1e-4)
    return _deconvolve(lambda x, psf: restoration.wiener(x, psf, balance=balance), degraded, deg)


def richardson_lucy(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """Richardson-Lucy with the known PSF: 30 iterations, fewer when noise would be amplified."""
    iters = int(np.clip(100 / max(_sigma01(degraded, sigma) * 255, 1e-3), 5, 30))
    return _deconvolve(lambda x, psf: restoration.richardson_lucy(np.clip(x, 0, 1), psf, num_iter=iters), degraded, deg)


def bm3d(degraded, deg: Degrade, sigma=None) -> np.ndarray:
    """BM3D from the optional `bm3d` package (its colour variant for RGB)."""
    import bm3d as package  # optional dependency (pip install bm3d)

    s = _sigma01(degraded, sigma)
    fn = package.bm3d_rgb if np.ndim(degraded) == 3 and degraded.shape[-1] == 3 else package.bm3d
    return np.clip(fn(degraded, sigma_psd=s), 0, 1)


def _has_bm3d():
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def baselines_for(deg: Degrade) -> dict:
    """The classical methods that apply to a degradation, by display name."""
    kinds = {name for name, _ in deg.steps}
    if "down" in kinds:
        return {"bicubic": bicubic}
    if kinds == {"noise"}:
        return {"noisy input": identity, "nlm": nlm, "tv": tv, **({"bm3d": bm3d} if _has_bm3d() else {})}
    if kinds and kinds <= {"blur", "noise"}:
        return {"blurred input": identity, "wiener": wiener, "richardson_lucy": richardson_lucy}
    return {"degraded input": identity, "nlm": nlm, "tv": tv}
