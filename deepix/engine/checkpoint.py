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
        load_fitted(model, state)
        return []
    own = model.state_dict()
    fits = _fitting(state, own)
    if not fits:
        raise UserError(f"no tensor in {path} fits this model; is it the same architecture?")
    model.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))


def load_fitted(model: torch.nn.Module, state: dict) -> None:
    """load_state_dict, where a file with fewer channels than the model (a pruned run's) first resizes the
    model's layers to the file's shapes; any other mismatch fails as load_state_dict does."""
    own = model.state_dict()
    differ = {k for k, v in state.items() if k in own and own[k].shape != v.shape}
    if differ and all(state[k].dim() == own[k].dim() and all(a <= b for a, b in zip(state[k].shape, own[k].shape))
                      for k in differ):
        fit_shapes(model, state)
    model.load_state_dict(state)


def fit_shapes(model: torch.nn.Module, state: dict) -> None:
    """Each convolution, linear and batch-norm layer takes the sizes of its tensors in `state` (their values
    load afterwards), so that a model built from its settings holds a pruned copy's weights."""
    nn = torch.nn
    for name, mod in model.named_modules():
        p = f"{name}." if name else ""
        if not isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            continue
        w = state.get(p + "weight", state.get(p + "running_mean"))
        if w is None:
            continue
        for n, t in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            new = state.get(p + n)
            if new is None or new.shape == t.shape:
                continue
            fresh = torch.empty(new.shape, dtype=t.dtype, device=t.device)
            if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
                fresh = fresh.contiguous(memory_format=torch.channels_last)
            if isinstance(t, nn.Parameter):
                setattr(mod, n, nn.Parameter(fresh, requires_grad=t.requires_grad))
            else:
                setattr(mod, n, fresh)
        if isinstance(mod, nn.Linear):
            mod.out_features, mod.in_features = mod.weight.shape
        elif isinstance(mod, nn.Conv2d):
            depthwise = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            mod.out_channels = mod.weight.shape[0]
            mod.groups = mod.out_channels if depthwise else mod.groups
            mod.in_channels = mod.weight.shape[1] * mod.groups
        elif isinstance(mod, nn.ConvTranspose2d):
            mod.in_channels, mod.out_channels = mod.weight.shape[0], mod.weight.shape[1] * mod.groups
        else:
            mod.num_features = len(w)


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
