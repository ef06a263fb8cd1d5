"""deepix: deep learning for images — one package, one command, the whole pipeline."""
__version__ = "0.1.0"

import importlib

from .advise import advise  # noqa: E402,F401
from .errors import UserError  # noqa: E402,F401
from .explain import explain  # noqa: E402,F401
from .sweep import sweep  # noqa: E402,F401

# the rest of the API loads on first use, so that `deepix --help` does not pay for torchvision,
# scikit-learn and matplotlib (advise, explain and sweep above are kept light for the same reason)
_LAZY = {"train": "api", "load": "api", "val": "api", "prune": "api", "denoise": "tasks.restore.denoise",
         "Predictor": "tasks.classify.loaded"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    try:  # submodules as attributes (deepix.export.export(...)), as an eager import would have set them
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'deepix' has no attribute {name!r}") from None
