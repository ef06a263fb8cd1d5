"""A restoration run as an exported file, and an exported file used like the run."""
from __future__ import annotations

import torch

from ...errors import UserError
from ...export import photos
from ..base import Exportable, Loaded
from . import images as imgio
from .files import answer_images, write_restored
from .train import load_data


def exportable(r, data: str | None = None) -> Exportable:
    """The restorer (a loaded run), checked on two photographs degraded the run's way; for int8, calibrated
    on its training images and scored (PSNR) on its test images, both degraded as in training and testing."""
    if data:
        r.cfg.data = data
    clean = photos(r.channels)
    x = r.degrade(clean, torch.Generator().manual_seed(0)).clamp(0, 1) if r.degrade.steps else clean
    info = dict(channels=r.channels, scale=r.degrade.scale, degrade=r.cfg.degrade,
                input="image: float32 (N, C, H, W) in [0, 1], any H and W",
                output=f"restored: float32 (N, C, {r.degrade.scale}H, {r.degrade.scale}W); clip to [0, 1]")
    images = {}

    def split(name: str) -> list:
        if not images:
            try:
                images.update(load_data(r.cfg)[0])
            except UserError as e:
                raise UserError(f"int8 export reads the run's own images, and they could not be read ({e}); "
                                f"pass --data to point at them") from None
        return images[name] or images["val"]

    def calibration(n: int) -> list[tuple]:
        out = []  # a corner of each degraded training image, its sides a multiple of 16 as the U-Nets need
        for i, (_, clean, given) in enumerate(split("train")[:n]):
            d = r.step.degraded_image(clean, i, given)
            h, w = (min(128, side - side % 16) for side in d.shape[2:])
            if h and w:
                out.append((d[..., :h, :w].contiguous(),))
        return out

    def score(module) -> tuple[dict, None]:
        test = split("test")
        figures = r.step.evaluate(module, test, torch.device("cpu"), False)
        return {"psnr": figures["psnr"], "split": "test" if images["test"] else "val", "images": len(test)}, None

    return Exportable(r.model, (x,), ["image"], ["restored"], {"image": {0: "batch", 2: "height", 3: "width"}}, info,
                      f"{len(x)} photographs (scikit-image's camera and astronaut, 96x96) degraded by {r.cfg.degrade}",
                      calibration=calibration, score=score, int8_budget=("psnr", 0.2))


class ExportedRestorer(Loaded):
    """An exported restorer file: `deepix predict model.onnx noisy.png -o out.png`."""

    task = "restore"

    def __init__(self, file):
        self.file, self.channels = file, int(file.meta.get("channels", 3))

    def restore(self, path) -> torch.Tensor:
        x = imgio.read(path, self.channels)[0]
        return torch.from_numpy(self.file.run({"image": x[None]}))[0].clamp(0, 1)

    def predict(self, images, **options):
        return [self.restore(im) for im in images] if isinstance(images, (list, tuple)) else self.restore(images)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        write_restored(self.restore, sources, output)

    def answer(self, images: list, options: dict) -> list[dict]:
        return answer_images(self.restore, images)
