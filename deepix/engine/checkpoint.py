"""Weights as safetensors, and the rest of the training state (optimizer, scheduler, epoch,
RNG) in a file read back with weights_only=True: nothing loaded here can run code."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError


def _atomic(path: Path, write) -> None:
    # a run killed mid-write must leave the previous good file, never a torn one
    tmp = path.with_suffix(path.suffix + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, lambda p: save_file(state, str(p), metadata=metadata))


def load_weights(model: torch.nn.Module, path: Path, strict: bool = True) -> list[str]:
    """Loads matching tensors; returns the names skipped for a shape mismatch (strict=False)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"cannot read weights {path}: {str(e).splitlines()[0][:200]}") from None
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    if strict:
        model.load_state_dict(state)
        return []
    own = model.state_dict()
    fits = _fitting(state, own)
    if not fits:
        raise UserError(f"no tensor in {path} fits this model; is it the same architecture?")
    model.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))


def _fitting(state: dict, own: dict) -> dict:
    """The file's tensors that fit the model, under the prefix where most of them fit: a whole model's
    file loads as it is, a backbone's (e.g. torchvision's resnet50 weights) into the detector's backbone."""
    counts: dict[str, int] = {}
    for k in own:
        for s in state:
            if (k == s or k.endswith("." + s)) and own[k].shape == state[s].shape:
                prefix = k[:len(k) - len(s)]
                counts[prefix] = counts.get(prefix, 0) + 1
    if not counts:
        return {}
    best = max(counts, key=lambda p: (counts[p], p == ""))
    return {best + s: v for s, v in state.items() if best + s in own and own[best + s].shape == v.shape}


def save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, lambda p: torch.save(state, p))


def load_state(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no training state at {path}: the run never finished an epoch, start it again")
    return torch.load(path, map_location="cpu", weights_only=True)
