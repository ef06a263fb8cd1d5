"""Seeing what a network learned: first-layer filters, feature maps stage by stage with their receptive
fields, Grad-CAM and integrated gradients (by captum) for classifiers, per-box maps for detectors."""
from __future__ import annotations

from pathlib import Path

from ..config import make_config
from ..errors import UserError
from ..runs import find_run
from ..tasks import get


def explain(run, images, layer: str | None = None, cls=None, out=None, conf: float = 0.25) -> dict:
    """Explain a classify, detect or segment run's predictions for `images` (paths; for classify also PIL images or
    arrays): writes OUT/explain.html (one self-contained page) and its PNGs, OUT defaulting to RUN/explain.
    `layer` names the layer Grad-CAM looks at (default: the last convolution), `cls` a class (name or index)
    whose maps are drawn beside the predicted one's (detect: whose boxes alone are explained; `conf` is the
    least score of a box explained). Returns the predictions, the PNGs, the page and the
    conversions made to fit the model's input."""
    from .page import write_page  # here, not at the top: `import deepix` stays light
    found = find_run(run)
    cfg = make_config(found / "config.yaml")
    out = Path(out) if out else found / "explain"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}; pass another folder with -o") from None
    result = get(cfg.task).explain(found, images, layer, cls, out, conf)
    result["page"] = write_page(out, found, result, cfg.model, result.pop("html"))
    return result
