"""Keras callbacks: the hooks fit() calls, History, and EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, LearningRateScheduler, CSVLogger, LambdaCallback, TerminateOnNaN."""
from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

from ..errors import UserError


class Callback:
    """Subclass and override any on_* method; `self.model` is the model being trained."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...


def overrides(cb: Callback, hook: str) -> bool:
    """Whether a callback has its own `hook`: per-batch hooks cost a sync per step, so only then."""
    return hook in vars(cb) or getattr(type(cb), hook, None) is not getattr(Callback, hook)


class History(Callback):
    """What fit() returns: `.history` maps each logged name to its value per epoch."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class _Monitor(Callback):
    """A callback watching one logged value for improvement (mode 'auto' decides by its name)."""

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0, baseline=None):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise UserError(f"{type(self).__name__} mode {mode!r}: use 'auto', 'min' or 'max'")
        self.monitor, self.mode, self.min_delta, self.baseline = monitor, mode, abs(min_delta), baseline
        self.best = baseline

    @property
    def higher(self) -> bool:
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_")
        if name == "loss" or "error" in name or name in ("mse", "mae"):
            return False
        if "acc" in name or "auc" in name:
            return True
        raise UserError(f"{type(self).__name__} cannot tell whether {self.monitor!r} should go up or down; "
                        f"pass mode='max' or mode='min'")

    def improved(self, value, reference) -> bool:
        if reference is None:
            return True
        return value - self.min_delta > reference if self.higher else value + self.min_delta < reference

    def value(self, logs):
        v = (logs or {}).get(self.monitor)
        if v is None:
            warnings.warn(f"{type(self).__name__} watches {self.monitor!r}, which is not logged; the logged "
                          f"values are {', '.join(logs or {})}", stacklevel=3)
        return v


class EarlyStopping(_Monitor):
    """Stops after `patience` epochs without improvement; restore_best_weights restores the best epoch's."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience, self.verbose, self.start_from_epoch = patience, verbose, start_from_epoch
        self.restore_best_weights = restore_best_weights
        self.best_weights, self.best_epoch, self.stopped_epoch, self.wait = None, 0, 0, 0

    def on_train_begin(self, logs=None):
        self.best, self.best_weights, self.best_epoch, self.stopped_epoch, self.wait = None, None, 0, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        value = self.value(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.snapshot(), epoch
        self.wait += 1
        if self.improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.snapshot()
            if self.baseline is None or self.improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.restore(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Saves the model (or weights) each epoch, or on improvement; filepath may use {epoch:02d}, {val_loss}."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0.0, initial_value_threshold)
        if save_freq != "epoch":
            raise UserError(f"deepix.keras does not support ModelCheckpoint(save_freq={save_freq!r}) yet; remove it")
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        if self.filepath.endswith(".h5"):
            fix = "name it *.weights.safetensors" if save_weights_only else "name it *.keras"
            raise UserError(f"deepix.keras does not write HDF5 ({self.filepath}); {fix}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self.value(logs)
            if value is None or not self.improved(value, self.best):
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best} to {value:.5f}, saving model "
                      f"to {path}")
            self.best = value
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when `monitor` stops improving for `patience` epochs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kw):
        super().__init__(monitor, mode, min_delta)
        if factor >= 1.0:
            raise UserError(f"ReduceLROnPlateau factor must be below 1; got {factor}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait, self.cooldown_counter = 0, 0

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter, self.best = 0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = opt.learning_rate
        value = self.value(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value, self.best):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and opt.learning_rate > self.min_lr:
                new = max(opt.learning_rate * self.factor, self.min_lr)
                opt.learning_rate = new
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start to schedule(epoch, lr)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.optimizer.learning_rate))
        if not math.isfinite(lr) or lr <= 0:
            raise UserError(f"the LearningRateScheduler schedule gave learning rate {lr} at epoch {epoch + 1}; "
                            f"it must be a positive number")
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = str(filename), separator, append
        self._keys = None

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append:
            Path(self.filename).unlink(missing_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new = not Path(self.filename).is_file()
        self._keys = self._keys or sorted(logs)
        with open(self.filename, "a", newline="") as f:
            w = csv.writer(f, delimiter=self.separator)
            if new:
                w.writerow(["epoch", *self._keys])
            w.writerow([epoch, *(logs.get(k, "") for k in self._keys)])


class LambdaCallback(Callback):
    """Callbacks from plain functions: on_epoch_end=lambda epoch, logs: ..., and so on."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kw):
        super().__init__()
        for name, fn in dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                             on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                             on_train_batch_end=on_train_batch_end, **kw).items():
            if fn is not None:
                setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Epoch {epoch + 1}: invalid loss, terminating training")
            self.model.stop_training = True
