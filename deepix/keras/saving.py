"""Saving without pickle: config.json (architecture and compile settings) and model.safetensors
(weights). 'name.keras' is a zip of the two, like Keras's own .keras files; any other name
is a folder holding them. The optimizer's state is not saved."""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ..errors import UserError

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def _no_h5(path: Path, weights_only: bool) -> None:
    if path.suffix == ".h5":
        fix = "use a name ending in .weights.safetensors" if weights_only else "use a name ending in .keras"
        raise UserError(f"deepix.keras does not write or read HDF5 ({path}); {fix}")


def _weights(model) -> bytes:
    return save_bytes({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})


def _check_built(model, what: str) -> None:
    if not model.built:
        raise UserError(f"{what}: the model is not built yet; fit it or give the first layer input_shape=... first")


def save_model(model, filepath, overwrite: bool = True) -> None:
    path = Path(filepath)
    _no_h5(path, False)
    _check_built(model, f"cannot save to {path}")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass overwrite=True or choose another name")
    config = {"format": "deepix.keras", "version": 1, "class_name": type(model).__name__,
              "config": model.get_config(), "compile_config": model.compile_config}
    text, weights = json.dumps(config, indent=1), _weights(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".keras":
        tmp = path.with_name(path.name + ".tmp")  # a crash mid-write leaves the previous file whole
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            z.writestr(CONFIG, text)
            z.writestr(WEIGHTS, weights)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
        return
    if path.exists() and not path.is_dir():
        path.unlink()
    path.mkdir(exist_ok=True)
    (path / CONFIG).write_text(text)
    (path / WEIGHTS).write_bytes(weights)


def read(path: Path) -> tuple[dict, bytes]:
    _no_h5(path, False)
    try:
        if path.is_dir():
            return json.loads((path / CONFIG).read_text()), (path / WEIGHTS).read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read(CONFIG)), z.read(WEIGHTS)
    except (KeyError, FileNotFoundError):
        pass
    if not path.exists():
        raise UserError(f"no saved model at {path}")
    raise UserError(f"{path} is not a model saved by deepix.keras (it needs {CONFIG} and {WEIGHTS})")


def save_weights(model, filepath, overwrite: bool = True) -> None:
    path = Path(filepath)
    _no_h5(path, True)
    _check_built(model, f"cannot save weights to {path}")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass overwrite=True or choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(_weights(model))
    os.replace(tmp, path)


def load_weights(model, filepath) -> None:
    """Weights from save_weights' file, or from a whole saved model."""
    path = Path(filepath)
    _no_h5(path, True)
    _check_built(model, f"cannot load {path}")
    if path.is_dir() or zipfile.is_zipfile(path):
        weights = read(path)[1]
    elif path.is_file():
        weights = path.read_bytes()
    else:
        raise UserError(f"no weights file at {path}")
    try:
        state = load_bytes(weights)
    except Exception:  # safetensors raises its own error types for foreign files
        raise UserError(f"{path} is not a safetensors weights file") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"the weights in {path} do not fit this model (another architecture?): "
                        f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}") from None
