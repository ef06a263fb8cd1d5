"""The denoiser that ships inside deepix: `deepix denoise photo.png -o clean.png` and `deepix.denoise(image)`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from .files import write_restored
from ...engine import machine
from . import images as imgio
from .classical import estimate_sigma
from ...engine.tiles import predict_ensemble, predict_tiled
from ...engine.checkpoint import load_weights
from ...models import Spec, build_model

WEIGHTS = Path(__file__).parent / "weights" / "denoise-gray.safetensors"
_model = None


def _load():
    global _model
    if _model is None:
        if not WEIGHTS.is_file():
            raise UserError(f"the shipped denoiser is missing ({WEIGHTS}); reinstall deepix or train one with "
                            f"scripts/train_denoiser.py")
        card = json.loads(WEIGHTS.with_suffix(".json").read_text())
        _model = build_model(card["model"], Spec(1, 1, (48, 48)))
        load_weights(_model, WEIGHTS)
        _model.eval()
    return _model


def denoise(image, sigma: float | None = None, tile: int = 256, ensemble: bool = True) -> tuple[torch.Tensor, float]:
    """Denoise a path, NumPy image (uint8 / uint16 / float in [0, 1], gray or RGB) or (C,H,W) tensor.
    Returns the (C, H, W) image in [0, 1] and the noise sigma (0-255 scale) used: the given one or, when
    None, estimated from the image. Colour images are denoised channel by channel. `ensemble` averages
    the 8 flips/rotations (about +0.1-0.2 dB for 8x the time); False is one pass."""
    if isinstance(image, (str, Path)):
        x = imgio.read(image)[0]
    elif isinstance(image, torch.Tensor):
        x = image.float()
    else:
        a, _ = imgio.as_float(np.asarray(image))
        x = torch.from_numpy(np.ascontiguousarray(imgio.to_channels(a, 0 if a.ndim == 2 else 3).transpose(2, 0, 1)))
    if sigma is None:
        sigma = estimate_sigma(x.numpy().transpose(1, 2, 0))
    if not 0 <= sigma <= 75:
        raise UserError(f"sigma {sigma:g} is outside what the shipped denoiser knows (0-75 on the 0-255 scale)")
    model = _load()
    bf16 = machine.use_bf16("auto", torch.device("cpu"))
    # the bias-free net scales with its input, so it is applied to each channel as a gray image
    out = (predict_ensemble if ensemble else predict_tiled)(model, x[:, None], 1, tile, 32, bf16)[:, 0]
    return out.clamp(0, 1), float(sigma)


def denoise_files(sources: list[str], output: str, sigma: float | None, ensemble: bool = True) -> None:
    """`deepix denoise FILES -o OUT`: each image denoised into OUT, its sigma said."""
    def one(path):
        out, used = denoise(path, sigma, ensemble=ensemble)
        print(f"{path}: sigma {used:.1f}{' (estimated)' if sigma is None else ''}")
        return out
    write_restored(one, sources, output)
