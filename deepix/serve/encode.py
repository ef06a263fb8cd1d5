"""Images as the service sends them: base64 PNG inside the JSON answer."""
from __future__ import annotations

import base64
import io

import torch
from PIL import Image


def png_base64(img: torch.Tensor) -> str:
    """(C, H, W) in [0, 1] as a base64 PNG."""
    a = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    a = a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
