"""fit / evaluate / predict: data held as tensors and sliced into batches, bf16 autocast and
channels-last where the CPU pays for them, sums kept on tensors and read once per epoch."""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..engine import machine
from ..engine.fit import autocast
from ..errors import UserError
from . import callbacks as cbs
from . import losses, metrics
from .layers.base import from_keras, unsupported
from .progress import Progress
from .progress import stats as progress_stats

PRECISION = "auto"  # "auto": bf16 where the CPU or GPU is fast at it; "fp32" or "bf16" to force
THREADS = 0         # 0: every core this process may use
_threads_set = False


def _threads() -> None:
    # once, at the first fit or predict, so that a later torch.set_num_threads by the user stands
    global _threads_set
    if not _threads_set:
        machine.set_threads(THREADS)
        _threads_set = True


class Setup:
    """What a model runs with: device, precision, the bound loss and metrics."""

    def __init__(self, model, y_shape):
        _threads()
        if model.loss is None:
            raise UserError("the model is not compiled; call model.compile(optimizer='adam', "
                            "loss='categorical_crossentropy', metrics=['accuracy']) first")
        self.device = machine.device()
        self.bf16 = machine.use_bf16(PRECISION, self.device)
        model.to(self.device)
        if self.bf16:
            # measured on a 2-core AVX-512 CPU: channels-last speeds bf16 convolutions by 25-40%
            model.to(memory_format=torch.channels_last)
        out_shape, head = model.output_shape_, model.head
        self.loss = losses.get(model.loss, y_shape, out_shape)
        self.metrics = [metrics.get(m, y_shape, out_shape) for m in model.metrics_spec]
        self.names = ["loss"] + [m.name for m in self.metrics]
        self.fns = [self.loss.bind(head)] + [m.bind(head) for m in self.metrics]
        self.sparse = isinstance(self.loss, losses.SparseCategoricalCrossentropy)


# -- arrays in

def _tensor(a, what: str) -> torch.Tensor:
    if torch.is_tensor(a):
        t = a.detach()
    else:
        if a is None:
            raise UserError(f"{what} is missing")
        if not isinstance(a, np.ndarray):
            if hasattr(a, "__next__") or (hasattr(a, "__iter__") and not isinstance(a, (list, tuple))):
                raise unsupported(f"{what} as a generator or dataset ({type(a).__name__})",
                                  "pass NumPy arrays (N, H, W, C)")
            a = np.asarray(a)
        if a.dtype == object:
            raise UserError(f"{what} must be a numeric array; got an array of Python objects")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dtype == torch.float64 or t.dtype == torch.bool:
        t = t.float()
    return t


def inputs(model, x) -> torch.Tensor:
    """Images as a Keras-layout tensor (N, H, W, C), the model built for them if it was not."""
    t = _tensor(x, "x")
    if t.ndim < 2:
        raise UserError(f"x must be a batch of samples, e.g. (N, 28, 28, 1); got shape {tuple(t.shape)}")
    if t.dtype not in (torch.float32, torch.uint8, torch.float16, torch.bfloat16):
        t = t.float()
    if not model.built:
        if t.ndim == 3 and len(model.layers) and model.layers[0].takes_images:
            t = t.unsqueeze(-1)  # (N, H, W) grey images for a model starting with image layers
        model.ensure_built(tuple(t.shape[1:]))
    want = tuple(model.input_shape_)
    have = tuple(t.shape[1:])
    if have != want:
        if have == want[:-1] and want[-1] == 1:
            t = t.unsqueeze(-1)
        else:
            raise UserError(f"the model takes inputs of shape {(None, *want)} but x has shape {tuple(t.shape)}; "
                            f"reshape x or change the first layer's input_shape")
    return t


def targets(setup: Setup, model, y, n: int) -> torch.Tensor:
    """Labels as a tensor in the model's internal layout, checked against its output shape."""
    t = _tensor(y, "y")
    if len(t) != n:
        raise UserError(f"x has {n} samples but y has {len(t)}; they must match")
    out = tuple(model.output_shape_)
    if isinstance(setup.loss, losses.Custom):
        return from_keras(t.float())
    if setup.sparse:
        if t.ndim == len(out) + 1 and t.shape[-1] == 1:
            t = t[..., 0]
        if tuple(t.shape[1:]) != out[:-1]:
            raise UserError(f"sparse_categorical_crossentropy wants one integer label per sample "
                            f"(shape {(n, *out[:-1])}); "
                            f"got y of shape {tuple(t.shape)}")
        if t.is_floating_point() and not torch.equal(t, t.round()):
            raise UserError("sparse_categorical_crossentropy wants integer labels; y has fractions")
        t = t.long()
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= out[-1]):
            raise UserError(f"labels run from {int(t.min())} to {int(t.max())} but the last layer has {out[-1]} "
                            f"outputs; give it as many units as there are classes")
        return t
    t = t.float()
    if t.ndim == 1 and out == (1,):
        t = t[:, None]
    if tuple(t.shape[1:]) != out:
        hint = ""
        if t.ndim == 1 and isinstance(setup.loss, losses.CategoricalCrossentropy):
            hint = "; one-hot encode y with to_categorical(y) or use loss='sparse_categorical_crossentropy'"
        raise UserError(f"the model outputs shape {(None, *out)} but y has shape {tuple(t.shape)}{hint}")
    return from_keras(t).contiguous() if t.ndim == 4 else t


def weights(sample_weight, class_weight, y: torch.Tensor, sparse: bool, n: int):
    """Per-sample weights from sample_weight and/or class_weight ({class index: weight}), or None."""
    if sample_weight is None and class_weight is None:
        return None
    w = torch.ones(n) if sample_weight is None else _tensor(sample_weight, "sample_weight").float().reshape(n)
    if class_weight is not None:
        if sparse:
            labels = y
        elif y.ndim == 2 and y.shape[1] > 1:
            labels = y.argmax(1)
        else:
            labels = (y.reshape(len(y), -1)[:, 0] > 0.5).long()
        if labels.ndim != 1:
            raise unsupported("class_weight with per-pixel labels", "pass sample_weight instead")
        table = torch.ones(max(int(labels.max()), *(int(k) for k in class_weight)) + 1)
        for k, v in class_weight.items():
            table[int(k)] = float(v)
        w = w * table[labels]
    return w


def _batch(x: torch.Tensor, dev) -> torch.Tensor:
    # (N, H, W, C) storage seen as (N, C, H, W): channels-last memory with no copy
    x = from_keras(x.to(dev, non_blocking=True))
    return x if x.dtype == torch.float32 else x.float()


def _eval_batch(batch_size: int | None, x: torch.Tensor) -> int:
    # results do not depend on it; larger batches only cut the per-call overhead
    per_sample = max(1, x[0].numel() * 4)
    return max(batch_size or 32, min(1024, 2 ** 23 // per_sample))


# -- the loops

@torch.no_grad()
def _score(model, setup: Setup, x, y, w, batch: int) -> dict[str, float]:
    model.eval()
    sums = torch.zeros(len(setup.fns), device=setup.device)
    for i in range(0, len(x), batch):
        xb, yb = _batch(x[i:i + batch], setup.device), y[i:i + batch].to(setup.device)
        with autocast(setup.bf16, setup.device):
            z = model.forward_logits(xb)
        z = z.float()
        vals = torch.stack([fn(z, yb) for fn in setup.fns])
        if w is not None:
            vals = vals * w[i:i + batch].to(setup.device)
        sums += vals.sum(1)
    total = float(len(x)) if w is None else float(w.sum())
    values = (sums / max(total, 1e-12)).tolist()
    if w is not None:  # Keras divides the weighted loss by the sample count, metrics by the weight
        values[0] *= total / len(x)
    return dict(zip(setup.names, values))


def _validation(setup, model, xs, ys, ws, validation_split, validation_data):
    """(train arrays, validation arrays or None) from validation_data, or the last fraction of x."""
    if validation_data is not None:
        if len(validation_data) not in (2, 3):
            raise UserError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
        xv = inputs(model, validation_data[0])
        yv = targets(setup, model, validation_data[1], len(xv))
        wv = None if len(validation_data) == 2 else weights(validation_data[2], None, yv, setup.sparse, len(xv))
        return (xs, ys, ws), (xv, yv, wv)
    if not validation_split:
        return (xs, ys, ws), None
    if not 0 < validation_split < 1:
        raise UserError(f"validation_split must be between 0 and 1; got {validation_split}")
    # Keras holds out the last fraction, before any shuffling
    n = len(xs)
    cut = int(math.floor(n * (1 - validation_split)))
    if cut in (0, n):
        raise UserError(f"validation_split={validation_split} of {n} samples leaves one side empty")
    part = lambda a, s: None if a is None else a[s]  # noqa: E731
    return (xs[:cut], ys[:cut], part(ws, slice(None, cut))), (xs[cut:], ys[cut:], part(ws, slice(cut, None)))


def _train_epoch(model, setup: Setup, data, batch: int, shuffle: bool, hooks, progress) -> dict[str, float]:
    """One pass over the data; the sums stay on tensors and are read once, at the end."""
    xs, ys, ws = data
    n, dev, fns = len(xs), setup.device, setup.fns
    opt, step_fn = model.optimizer.torch, model.optimizer.step_fn()
    model.train()
    order = torch.randperm(n) if shuffle else None
    sums = torch.zeros(len(fns), device=dev)
    for step in range(math.ceil(n / batch)):
        pick = slice(step * batch, (step + 1) * batch) if order is None else order[step * batch:(step + 1) * batch]
        xb, yb, wb = xs[pick], ys[pick], None if ws is None else ws[pick].to(dev)
        for cb in hooks:
            cb.on_train_batch_begin(step, {})
        xb, yb = _batch(xb, dev), yb.to(dev, non_blocking=True)
        with autocast(setup.bf16, dev):
            z = model.forward_logits(xb)
        z = z.float()
        per = fns[0](z, yb) if wb is None else fns[0](z, yb) * wb
        loss = per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        step_fn()
        with torch.no_grad():
            z = z.detach()
            others = [fn(z, yb) if wb is None else fn(z, yb) * wb for fn in fns[1:]]
            sums += torch.stack([per.detach().sum(), *(v.sum() for v in others)])
        if hooks:
            logs = {"loss": float(loss)}
            for cb in hooks:
                cb.on_train_batch_end(step, logs)
        progress.step(step)
    total = float(n) if ws is None else float(ws.sum())
    values = (sums / total).tolist()
    if ws is not None:  # Keras divides the weighted loss by the sample count, metrics by the weight
        values[0] *= total / n
    return dict(zip(setup.names, values))


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, initial_epoch, validation_batch_size, validation_freq):
    xs = inputs(model, x)
    setup = Setup(model, (len(xs), *_tensor(y, "y").shape[1:]))
    ys = targets(setup, model, y, len(xs))
    ws = weights(sample_weight, class_weight, ys, setup.sparse, len(xs))
    train, val = _validation(setup, model, xs, ys, ws, validation_split, validation_data)
    batch = int(batch_size or 32)
    if batch < 1:
        raise UserError(f"batch_size must be at least 1; got {batch_size}")
    model.optimizer.build(model.parameters())

    verbose = 1 if verbose == "auto" else int(verbose)
    steps = math.ceil(len(train[0]) / batch)
    history = cbs.History()
    cb_list = [history] + list(callbacks or [])
    for cb in cb_list:
        cb.set_model(model)
        cb.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
    hooks = [cb for cb in cb_list
             if cbs.overrides(cb, "on_train_batch_begin") or cbs.overrides(cb, "on_train_batch_end")]
    stop_on_nan = any(isinstance(cb, cbs.TerminateOnNaN) for cb in cb_list)
    progress = Progress(epochs, steps, verbose)
    model.stop_training, model.history = False, history
    for cb in cb_list:
        cb.on_train_begin({})
    for epoch in range(initial_epoch, epochs):
        for cb in cb_list:
            cb.on_epoch_begin(epoch, {})
        progress.start(epoch)
        t0 = time.perf_counter()
        logs = _train_epoch(model, setup, train, batch, shuffle, hooks, progress)
        if not math.isfinite(logs["loss"]) and not stop_on_nan:
            raise UserError(f"the loss became {logs['loss']} in epoch {epoch + 1}; lower the optimizer's "
                            f"learning_rate (now {model.optimizer.learning_rate:g}) or scale the inputs to [0, 1]")
        if val is not None and (epoch + 1) % validation_freq == 0:
            scored = _score(model, setup, *val, _eval_batch(validation_batch_size or batch, val[0]))
            logs.update({f"val_{k}": v for k, v in scored.items()})
        for cb in cb_list[1:]:
            cb.on_epoch_end(epoch, logs)
        history.on_epoch_end(epoch, logs)  # last, so it records what the callbacks added (learning_rate)
        progress.end(logs, time.perf_counter() - t0)
        if model.stop_training:
            break
    for cb in cb_list:
        cb.on_train_end({})
    return history


def evaluate(model, x, y, batch_size, sample_weight, verbose) -> dict[str, float]:
    t0 = time.perf_counter()
    xs = inputs(model, x)
    setup = Setup(model, (len(xs), *_tensor(y, "y").shape[1:]))
    ys = targets(setup, model, y, len(xs))
    ws = weights(sample_weight, None, ys, setup.sparse, len(xs))
    logs = _score(model, setup, xs, ys, ws, _eval_batch(batch_size, xs))
    if verbose == "auto" or verbose:
        steps = math.ceil(len(xs) / (batch_size or 32))  # Keras counts steps of the given batch size
        print(f"{steps}/{steps} - {time.perf_counter() - t0:.0f}s - {progress_stats(logs)}", flush=True)
    return logs


@torch.no_grad()
def predict(model, x, batch_size) -> np.ndarray:
    _threads()
    xs = inputs(model, x)
    dev = machine.device()
    bf16 = machine.use_bf16(PRECISION, dev)
    model.to(dev)
    if bf16:
        model.to(memory_format=torch.channels_last)
    model.eval()
    batch = _eval_batch(batch_size, xs)
    outs = []
    for i in range(0, len(xs), batch):
        with autocast(bf16, dev):
            outs.append(model(_batch(xs[i:i + batch], dev)).float())
    out = torch.cat(outs) if outs else torch.zeros(0, *model.output_shape_)
    return (out.permute(0, 2, 3, 1) if out.ndim == 4 else out).cpu().numpy()
