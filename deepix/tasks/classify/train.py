"""Image classification: batches of (image, label), cross-entropy family losses,
torchmetrics accuracy / top-k / per-class scores, and confusion and error pictures."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchmetrics.functional.classification as tmc

from ...config import Config
from ...data.augment import Augment, make_augment, make_views
from ...data.labelled import channel_stats, load_data
from ...data.loader import Batches
from ...data.types import Dataset
from ...engine import distributed as dist, machine
from ...engine.checkpoint import load_weights
from ...engine.fit import autocast
from ...engine.optim import backward_step
from ...engine.teach import Taught, alone, frozen
from ...runs import open_run
from ...errors import UserError
from ...models import build_classifier as build, count_params
from ...models.encoder import encoder_file, init_from_encoder
from ...report.plots import image_grid
from ...export import own_data, real_images
from ..base import Exportable, Job, Step
from .explain import report_figures


class Classify(Step):
    """Batches of (image, label), the cross-entropy family of losses, accuracy."""

    def __init__(self, num_classes: int, augment: Augment, loss: str = "cross-entropy",
                 label_smoothing: float = 0.0, channels_last: bool = False):
        self.num_classes, self.augment, self.loss_name = num_classes, augment, loss
        self.label_smoothing, self.channels_last = label_smoothing, channels_last

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        x = x.float().div_(255)
        if train and self.augment.active:
            x = self.augment(x, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def loss(self, out, y):
        out = out.float()
        if self.loss_name == "mse":
            return F.mse_loss(out.softmax(1), F.one_hot(y, self.num_classes).float())
        ce = F.cross_entropy(out, y, label_smoothing=self.label_smoothing,
                             reduction="none" if self.loss_name == "focal" else "mean")
        if self.loss_name == "focal":
            # focal loss (Lin et al. 2017), gamma 2: down-weights the examples already right
            pt = torch.exp(-F.cross_entropy(out, y, reduction="none"))
            return ((1 - pt) ** 2 * ce).mean()
        return ce

    def train_stats(self, out, y) -> dict[str, float]:
        return {"accuracy": (out.argmax(1) == y).sum().item()}

    @torch.no_grad()
    def logits(self, model, batches, dev, bf16):
        model.eval()
        outs, ys = [], []
        for x, y in batches.epoch(0):
            x, y = self.prepare(x.to(dev), y.to(dev), False)
            with autocast(bf16, dev):
                outs.append(model(x).float())
            ys.append(y)
        return torch.cat(outs), torch.cat(ys)

    def evaluate(self, model, batches, dev, bf16) -> dict[str, float]:
        out, y = self.logits(model, batches, dev, bf16)
        return {"loss": self.loss(out, y).item(), "accuracy": (out.argmax(1) == y).float().mean().item()}

    def test_metrics(self, out, y) -> dict:
        k = self.num_classes
        probs = out.softmax(1)
        m = {"loss": self.loss(out, y).item(),
             "accuracy": tmc.multiclass_accuracy(probs, y, k, average="micro").item(),
             "top5": tmc.multiclass_accuracy(probs, y, k, top_k=5, average="micro").item() if k > 5 else None,
             "per_class": {name: fn(probs, y, k, average="none").tolist() for name, fn in
                           (("precision", tmc.multiclass_precision), ("recall", tmc.multiclass_recall),
                            ("f1", tmc.multiclass_f1_score))},
             "confusion": tmc.multiclass_confusion_matrix(probs, y, k).tolist()}
        return m


class SemiClassify(Classify):
    """FixMatch (Sohn et al. 2020): besides each labelled batch, unlabelled images seen twice; where the model
    is sure of a lightly augmented one (>= threshold), that guess is the label of a strongly augmented one."""

    def __init__(self, *args, unlabelled: torch.Tensor, strong: Augment, ratio: int = 3, threshold: float = 0.95,
                 weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.unlabelled, self.strong, self.ratio, self.weight = unlabelled, strong, ratio, weight
        # label smoothing caps what the model may be sure of (0.91 for 10 classes at 0.1): scale the bar with it
        self.threshold = threshold * (1 - self.label_smoothing + self.label_smoothing / self.num_classes)

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        if not train:
            return super().prepare(x, y, train, g)
        pick = torch.randint(0, len(self.unlabelled), (self.ratio * len(x),), generator=g)
        u = self.unlabelled[pick.to(self.unlabelled.device)].to(x.device).float().div_(255)
        weak = self.augment(u, g) if self.augment.active else u
        x, y = super().prepare(x, y, train, g)
        both = torch.cat([x, weak, self.strong(u, g)])
        if self.channels_last:
            both = both.contiguous(memory_format=torch.channels_last)
        return both, y

    mode = "own"

    def train_step(self, model, x, y, opts, autocast_) -> dict[str, float]:
        n = len(y)
        with autocast_():
            out = model(x).float()
        labelled, (weak, strong) = out[:n], out[n:].chunk(2)
        probs = weak.detach().softmax(1)
        conf, guess = probs.max(1)
        sure = (conf >= self.threshold).float()
        loss_l = self.loss(labelled, y)
        loss_u = (F.cross_entropy(strong, guess, reduction="none") * sure).mean()
        loss = loss_l + self.weight * loss_u
        backward_step(opts[""], loss, model.parameters(), self.grad_clip)
        return {"loss": loss.item(), "labelled_loss": loss_l.item(), "unlabelled_loss": loss_u.item(),
                "confident": sure.mean().item(), "accuracy": (labelled.argmax(1) == y).float().mean().item()}


def check(cfg: Config, ds: Dataset) -> None:
    if cfg.loss not in ("cross-entropy", "focal", "mse"):
        raise UserError(f"--loss {cfg.loss} is not a classification loss; classification takes cross-entropy, focal or mse")
    if len(ds.classes) < 2:
        raise UserError(f"{ds.name} has {len(ds.classes)} class; classification needs at least 2")
    if len(ds.train) == 0 or len(ds.val) == 0:
        raise UserError(f"{ds.name}: the train and validation splits need images (have {len(ds.train)} "
                        f"and {len(ds.val)}); add images or raise --val-fraction")
    if cfg.batch > len(ds.train):
        raise UserError(f"--batch {cfg.batch} is larger than the {len(ds.train)} training images; use --batch "
                        f"{max(1, len(ds.train) // 4)} or fewer")


def few_labels(cfg: Config, ds: Dataset) -> Dataset:
    """Only --labels-per-class K (or --label-fraction F) of each class's training images, drawn with the
    seed; an epoch passes over them as often as it takes to see as many images as the whole split."""
    if ds.train.x is None:
        raise UserError("--labels-per-class / --label-fraction need the images in memory (use --imgsz to shrink them)")
    counts = torch.bincount(ds.train.y, minlength=len(ds.classes))
    smallest = int(counts.argmin())
    if cfg.labels_per_class > counts[smallest]:
        raise UserError(f"--labels-per-class {cfg.labels_per_class} is more than the {int(counts[smallest])} training "
                        f"images of class '{ds.classes[smallest]}'; use at most {int(counts[smallest])}")
    g = torch.Generator().manual_seed(cfg.seed)
    keep = []
    for c in range(len(ds.classes)):
        idx = torch.nonzero(ds.train.y == c).flatten()
        k = cfg.labels_per_class or max(1, round(cfg.label_fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    keep = torch.cat(keep).sort().values
    full = len(ds.train)
    size = max(full, len(keep))  # an epoch as long as the whole split's: the kept images, over and over
    repeats = size / len(keep)
    ids = [ds.train.ids[i] for i in keep.tolist()] if ds.train.ids else None
    info = {**ds.info, "labelled": {"images": len(keep), "of": full, "per_class": cfg.labels_per_class or None,
                                    "fraction": cfg.label_fraction or None, "repeats_per_epoch": round(repeats, 2)}}
    order = keep.repeat(math.ceil(repeats))[:size]
    train = type(ds.train)(ds.train.x[order], ds.train.y[order],
                           ids=[ids[i % len(ids)] for i in range(size)] if ids else None)
    if not cfg.quiet:
        print(f"labels: {len(keep)} of the {full} training images ({cfg.labels_per_class or cfg.label_fraction}"
              f"{' per class' if cfg.labels_per_class else ' of each class'}), each seen {repeats:.2g}x per epoch")
    return dataclasses.replace(ds, train=train, info=info)


def scratch_baseline(cfg: Config, ds: Dataset, run: Path) -> dict:
    """The same run without the pretrained encoder or the teacher (same model, labels, augmentation, epochs,
    seed), in RUN/classify/baseline: what the pretraining or the teacher bought."""
    r = alone(cfg, run, ds, "without the teacher" if cfg.teacher else "from scratch", init="", freeze=False)
    return {"accuracy": r["test"]["accuracy"], "seconds": r["train"]["seconds"], "run": "classify/baseline"}


def load_teacher(cfg: Config, ds: Dataset, dev, channels_last: bool):
    """The teacher run's network, frozen, after checking that it answers the student's question: the same
    classes in the same order, the same channels and image size. Returns (network, what the summary records)."""
    from .loaded import Predictor
    run, tcfg, _ = open_run(cfg.teacher)
    if tcfg.task != "classify":
        raise UserError(f"the teacher {cfg.teacher} is a {tcfg.task} run; a classifier learns from a classify run")
    teacher = Predictor(run)
    if list(teacher.classes) != list(ds.classes):
        raise UserError(f"the teacher {cfg.teacher} knows the classes {teacher.classes[:6]}, this data has "
                        f"{ds.classes[:6]}: a teacher must have been trained on the same classes, in the same order")
    if teacher.channels != ds.channels or tuple(teacher.size) != tuple(ds.size):
        raise UserError(f"the teacher {cfg.teacher} takes {teacher.channels}x{teacher.size[0]}x{teacher.size[1]} "
                        f"images, this data is {ds.channels}x{ds.size[0]}x{ds.size[1]}: pass --imgsz to match")
    net = frozen(teacher.model, dev, channels_last)
    summary = run / "summary.json"
    accuracy = (json.loads(summary.read_text()).get("test") or {}).get("accuracy") if summary.is_file() else None
    return net, {"run": str(run), "model": tcfg.model, "params": count_params(net), "accuracy": accuracy,
                 "weight": cfg.distill_weight, "temperature": cfg.temperature}


def init_encoder(cfg: Config, ds: Dataset, net) -> None:
    """Checks what --init names; the run's architecture settings follow the encoder's."""
    if net is not None:
        raise UserError("--init starts a built-in model from a pretrain run's encoder; your own model loads "
                        "its weights itself")
    _, meta = encoder_file(cfg.init)
    if meta:
        if meta["channels"] != ds.channels:
            raise UserError(f"the encoder in {cfg.init} takes {meta['channels']}-channel images but {ds.name} has "
                            f"{ds.channels}; pretrain on images like these")
        for key in ("model", "width", "activation", "kernel_size"):
            setattr(cfg, key, meta[key])


def freeze_encoder(model: torch.nn.Module) -> None:
    """Trains only the last Linear layer: everything before it keeps its weights and its BatchNorm statistics."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not last:
        raise UserError("--freeze trains only the model's last Linear layer, and this model has none")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in last[-1].parameters():
        p.requires_grad_(True)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.train = lambda mode=True, m=m: m  # the engine's model.train() must not wake them


def check_output(model: torch.nn.Module, ds: Dataset) -> None:
    """A model must take this data's images and give one score per class."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, ds.channels, *ds.size))
    except RuntimeError as e:
        raise UserError(f"the model does not take {ds.channels}x{ds.size[0]}x{ds.size[1]} images: "
                        f"{str(e).splitlines()[0][:160]}") from None
    finally:
        model.train(was)
    if out.shape != (2, len(ds.classes)):
        raise UserError(f"the model gives outputs of shape {tuple(out.shape[1:])} but {ds.name} has "
                        f"{len(ds.classes)} classes; make its last layer output {len(ds.classes)}")


def model_summary(model: torch.nn.Module, channels: int, size) -> str:
    """A Keras-like table: layer, output shape, parameters."""
    lines = [f"{'layer':<40}{'output shape':<22}{'params':>10}"]
    x = torch.zeros(1, channels, *size, device=next(model.parameters()).device)
    net = model[1] if isinstance(model, torch.nn.Sequential) and len(model) == 2 else model
    if isinstance(net, torch.nn.Sequential):
        with torch.no_grad():
            x = model[0](x)
            for i, layer in enumerate(net):
                x = layer(x) if not isinstance(layer, torch.nn.BatchNorm1d) or x.ndim == 2 else x
                p = sum(q.numel() for q in layer.parameters())
                lines.append(f"{f'{i}: {type(layer).__name__}':<40}{str(tuple(x.shape[1:])):<22}{p:>10,}")
    lines.append(f"total parameters: {count_params(model):,}")
    return "\n".join(lines)


def setup(cfg: Config, dataset: Dataset | None, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads the data, builds the classifier (the registry's or the user's own `net`) and its step."""
    ds = whole = dataset if dataset is not None else load_data(cfg)
    unlabelled = ds.train.x if cfg.semi else None  # FixMatch learns from every training image, labels or not
    if cfg.labels_per_class or cfg.label_fraction:
        ds = few_labels(cfg, ds)
    check(cfg, ds)
    if cfg.semi and cfg.teacher:
        raise UserError("--teacher and --semi do not go together yet: give one")
    if cfg.semi and unlabelled is None:
        raise UserError("--semi needs the training images in memory (use --imgsz to shrink them)")
    mean, std = channel_stats(ds)
    if cfg.init:
        init_encoder(cfg, ds, net)
    model = build(cfg, len(ds.classes), ds.channels, ds.size, mean, std, net)
    if cfg.init:
        init_from_encoder(model, cfg, standardised=True)
    if cfg.freeze:
        freeze_encoder(model)
    check_output(model, ds)
    # measured on 2-core AVX-512 CPUs (benchmarks/cpu_choices.py): channels-last trains bf16 2.4x as fast, and
    # fp32 1.26x (vgg7) to 1.6x (seed-cnn), so on a CPU it is on in either precision
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and (bf16 or dev.type == "cpu"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(dev)
    if dev.type == "cuda":  # small data lives on the GPU: batches are slices, no copies per step
        for split in (ds.train, ds.val, ds.test):
            split.x = split.x.to(dev) if split.x is not None else None
            split.y = split.y.to(dev)
    augment = make_augment(cfg.augment, ds.kind, translate=cfg.translate, degrees=cfg.degrees, scale=cfg.scale,
                           hflip=cfg.hflip, brightness=cfg.brightness, contrast=cfg.contrast)
    if cfg.semi:
        task = SemiClassify(len(ds.classes), augment, cfg.loss, cfg.label_smoothing, channels_last,
                            unlabelled=unlabelled.to(dev), strong=make_views(cfg, ds.kind))
        task.grad_clip = cfg.grad_clip
    elif cfg.teacher:
        with torch.random.fork_rng(devices=[]):  # building the teacher draws no number the student's run would
            teacher, taught = load_teacher(cfg, ds, dev, channels_last)
        t = cfg.temperature  # T^2 keeps the soft part's gradients on the scale of the labels' part
        task = Taught(Classify(len(ds.classes), augment, cfg.loss, cfg.label_smoothing, channels_last), teacher,
                      cfg.distill_weight, lambda out, soft: t * t * F.kl_div(
                          F.log_softmax(out / t, 1), F.log_softmax(soft / t, 1), reduction="batchmean",
                          log_target=True), bf16)
    else:
        task = Classify(len(ds.classes), augment, cfg.loss, cfg.label_smoothing, channels_last)
    data_info = {"name": ds.name, "classes": ds.classes, "channels": ds.channels, "size": list(ds.size),
                 "kind": ds.kind, "counts": {s: ds.counts(getattr(ds, s)) for s in ("train", "val", "test")},
                 "info": ds.info}
    # which images went where: indices into a built-in set, or paths under the folder
    files = {"split.json": json.dumps({s: getattr(ds, s).ids for s in ("train", "val", "test")})}
    if net is not None and hasattr(net, "get_config"):  # lets `deepix.load` rebuild a Keras-front model
        files["model.json"] = json.dumps({"framework": "deepix.keras", "config": net.get_config()})

    def begin(run: Path) -> None:
        if cfg.weights and not resume:
            skipped = load_weights(model[1], Path(cfg.weights), strict=False)
            if skipped and not cfg.quiet:
                print(f"weights: {len(skipped)} tensors did not fit and start fresh (e.g. {skipped[0]})")

    mk = lambda split, shuffle: Batches(split, cfg.batch if shuffle else max(cfg.batch, 256), shuffle, cfg.seed,  # noqa: E731
                                        ds.channels, ds.size[0], cfg.workers)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        test = ds.test if len(ds.test) else ds.val
        out, y = task.logits(model, mk(test, False), dev, bf16)
        metrics = task.test_metrics(out, y)
        metrics["split"] = "test" if len(ds.test) else "val"
        fields = {"model": {"summary": model_summary(model, ds.channels, ds.size)}, "test": metrics}
        if cfg.teacher:
            fields["teacher"] = {**taught, "student_params": count_params(model)}
        if (cfg.init or cfg.teacher) and cfg.baseline and dist.world() == 1:  # the other ranks have gone on
            fields["baseline"] = scratch_baseline(cfg, whole, run)
        pictures(run, ds, test, out, y)
        report_figures(run, model, ds.classes, test.x, out, y)
        return metrics, fields

    about = (f"{ds.name}: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test images, "
             f"{len(ds.classes)} classes; {cfg.model}")
    return Job(model, task, mk(ds.train, True), mk(ds.val, False), data_info, about, finish, begin, files)


def pictures(run: Path, ds: Dataset, test, out, y) -> None:
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    out, y = out.cpu(), y.cpu()

    def as_hwc(x):
        x = x.cpu().numpy()
        return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)

    if ds.train.x is not None:
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(ds.train), generator=g)[:32]
        image_grid(as_hwc(ds.train.x[pick.to(ds.train.x.device)]), [ds.classes[i] for i in ds.train.y[pick].tolist()],
                   plots / "samples.png")
    pred = out.argmax(1)
    wrong = torch.nonzero(pred != y).flatten()[:32]
    if test.x is not None:
        titles = [f"true {ds.classes[y[i]]} / pred {ds.classes[pred[i]]}" for i in wrong]
        image_grid(as_hwc(test.x[wrong.to(test.x.device)]), titles, plots / "misclassified.png",
                   title_colors=["crimson"] * len(titles))


def val(pred, data: str | None, split: str) -> dict:
    """The loaded run's test metrics on its own data's `split`, or on another data set with its classes."""
    cfg = pred.cfg
    if data:
        cfg.data = data
    ds = load_data(cfg)
    if ds.classes != pred.classes:
        raise UserError(f"{cfg.data} has classes {ds.classes[:5]}... but the run was trained on {pred.classes[:5]}...")
    task = Classify(len(ds.classes), None, cfg.loss, cfg.label_smoothing)
    part = getattr(ds, split)
    out, y = task.logits(pred.model, Batches(part, 256, False, channels=ds.channels, imgsz=ds.size[0]),
                         torch.device("cpu"), machine.use_bf16(cfg.precision, torch.device("cpu")))
    return task.test_metrics(out, y)


def exportable(pred, data: str | None) -> Exportable:
    """The classifier with its standardisation, checked on the run's own test images."""
    if data:
        pred.cfg.data = data
    ds = own_data(pred.cfg)
    x, about = real_images(pred.cfg, 64, ds)
    grey = "gray" if pred.channels == 1 else "RGB"
    info = dict(classes=pred.classes, channels=pred.channels, size=list(pred.size),
                input=f"images: float32 (N, C, H, W), pixels scaled to [0, 1], {grey}, {pred.size[0]}x{pred.size[1]}; "
                      "the standardisation is inside the graph",
                output="logits (N, classes): softmax gives the probabilities")
    def calibration(n: int) -> list[tuple]:
        pick = torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(0))[:n]
        cal = ds.train.x[pick].float().div(255)
        return [(cal[i:i + 64],) for i in range(0, len(cal), 64)]

    def score(module) -> tuple[dict, object]:
        split, name = (ds.test, "test") if len(ds.test) else (ds.val, "val")
        with torch.no_grad():
            top1 = torch.cat([module(split.x[i:i + 256].float().div(255)).argmax(1) for i in range(0, len(split), 256)])
        return {"accuracy": float((top1 == split.y).float().mean()), "split": name, "images": len(split)}, top1.numpy()

    return Exportable(pred.model, (x,), ["images"], ["logits"], {"images": {0: "batch"}}, info, about,
                      parity=lambda got, want: {"top1_agreement": float((got.argmax(1) == want.argmax(1)).mean())},
                      calibration=calibration, score=score, int8_budget=("accuracy", 0.01))
