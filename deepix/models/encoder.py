"""Starting a model from a pretrain run's encoder (--init): which file, and its tensors loaded by name."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import UserError


def encoder_file(init: str) -> tuple[Path, dict]:
    """The encoder that --init names (a pretrain run folder or its encoder.safetensors) and its encoder.json."""
    path = Path(init)
    file = path / "weights" / "encoder.safetensors" if path.is_dir() else path
    if not file.is_file() or file.suffix != ".safetensors":
        raise UserError(f"--init {init}: no encoder there; give a pretrain run folder (deepix pretrain writes "
                        f"runs/pretrain/NAME) or its weights/encoder.safetensors")
    meta = file.parent.parent / "encoder.json"
    return file, json.loads(meta.read_text()) if meta.is_file() else {}


def init_from(model: torch.nn.Module, init: str, standardised: bool) -> int:
    """Loads the encoder's tensors into `model` by name; returns how many. `standardised`: the model is a
    classifier with its Preprocess in front (as the encoder is); detectors and restorers take raw pixels."""
    file, meta = encoder_file(init)
    state = load_file(str(file))
    if not standardised:
        state = {k[2:]: v for k, v in state.items() if k.startswith("1.")}
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise UserError(f"the encoder in {init} ({meta.get('model', '?')}, width {meta.get('width', '?')}, "
                        f"{meta.get('channels', '?')} channels) does not fit this model; pretrain with the same "
                        f"--model and --width on images with as many channels")
    model.load_state_dict(fits, strict=False)
    return len(fits)


def init_from_encoder(model: torch.nn.Module, cfg, standardised: bool) -> None:
    """--init: the encoder's tensors into `model`, said in one line unless quiet."""
    n = init_from(model, cfg.init, standardised)
    if not cfg.quiet:
        print(f"init: {n} tensors from the encoder of {cfg.init}" + (" (frozen: a linear probe)" if cfg.freeze else ""))


def start_from(model: torch.nn.Module, cfg, resume: str | None, standardised: bool = False) -> None:
    """A new run's starting weights: --weights FILE (the tensors that fit) and --init RUN (a pretrain run's encoder),
    each said in one line unless quiet; a resumed run keeps its own."""
    if resume:
        return
    if cfg.weights:
        from ..engine.checkpoint import load_weights  # the engine's reader: safetensors or a plain state dict
        skipped = load_weights(model, Path(cfg.weights), strict=False)
        if not cfg.quiet:
            own = len(model.state_dict())
            print(f"weights: {own - len(skipped)} of {own} tensors from {cfg.weights} (the rest start fresh)")
    if cfg.init:
        init_from_encoder(model, cfg, standardised)
