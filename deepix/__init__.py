"""deepix: deep learning for images — one package, one command, the whole pipeline."""
__version__ = "0.1.0"

from .advise import advise  # noqa: E402,F401
from .api import load, train, val  # noqa: E402,F401
from .tasks.restore.denoise import denoise  # noqa: E402,F401
from .errors import UserError  # noqa: E402,F401
from .tasks.classify.loaded import Predictor  # noqa: E402,F401
from .explain import explain  # noqa: E402,F401
from .sweep import sweep  # noqa: E402,F401
