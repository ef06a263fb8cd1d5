"""Self-supervised pretraining: an encoder learns from images alone (SimCLR, BYOL, or masked
reconstruction), watched by k-NN and linear-probe accuracy on labelled images it never trains on;
the encoder is saved so that `train classify --init RUN` starts from it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Config
from ...data.inputs import to_batch
from ...data.types import Dataset, Split
from ...engine import machine
from ...engine.checkpoint import load_weights, save_weights
from ...data.augment import Augment, make_views
from ...data.labelled import channel_stats, load_data as load_labelled
from ...data.loader import Batches
from ...engine.fit import autocast
from ...engine.optim import backward_step
from ...errors import UserError
from ...runs import open_run
from ...models import build_classifier, count_params
from ..base import Job, Loaded, Step
from ...models.ssl import Pretrainer, strip_head
from collections import Counter
from ...data.folder import DEFAULT_SIZE, any_colour, decode_all, is_image_file
from ...models import Spec, build_model, kind_of, with_preprocess
from ...models.ssl import backbone
from ...report.plots import image_grid
from ...report.plots import embedding_map

MIN_SIDE = 16        # the views crop and blur: smaller images leave nothing to learn from
BANK = 10_000        # labelled images whose features the k-NN monitor compares with (the first ones)
LABELS_SHOWN = (1, 10, 100)

class Pretrain(Step):
    """Two views of each image (or a masked one); the task steps its encoder and heads itself."""

    mode = "own"

    def __init__(self, cfg: Config, views: Augment, bank: Split | None, steps: int):
        self.cfg, self.views, self.bank, self.steps = cfg, views, bank, steps

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        x = x.float().div_(255)
        if not train:
            return x, y
        if self.cfg.method == "mae":  # one lightly augmented view; the mask hides the rest
            return self.views(x, g), y
        return torch.cat([self.views(x, g), self.views(x, g)]), y

    def train_step(self, model, x, y, opts, autocast_) -> dict[str, float]:
        opt = opts[""]
        if self.cfg.method == "mae":
            v1, v2 = x, model.mask(len(x)).to(x.device)
        else:
            v1, v2 = x.chunk(2)
        with autocast_():
            loss = model.loss(v1, v2)
        backward_step(opt, loss, model.parameters(), self.cfg.grad_clip)
        if self.cfg.method == "byol":
            # the target follows the online network ever more slowly: 0.99 -> 1 on a cosine (Grill et al. 2020)
            step = int(next(iter(opt.state.values()))["step"])
            total = max(1, self.cfg.epochs * self.steps)
            model.update_momentum(1 - 0.01 * (math.cos(math.pi * min(1.0, step / total)) + 1) / 2)
        return {"loss": loss.item()}

    def evaluate(self, model, val, dev, bf16) -> dict[str, float]:
        if self.bank is None or val is None or not len(val):
            return {}
        fb, yb = features(model, self.bank.x, dev, bf16), self.bank.y
        fv, yv = features(model, val.x, dev, bf16), val.y
        pick = per_class(yb, 10, self.cfg.seed)
        return {"knn": knn_accuracy(fb, yb, fv, yv), "probe": probe_accuracy(fb[pick], yb[pick], fv, yv)}


@torch.no_grad()
def features(model, x: torch.Tensor, dev, bf16: bool, batch: int = 512) -> torch.Tensor:
    """The encoder's features of uint8 images, on the CPU, in float32."""
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        with autocast(bf16, dev):
            out.append(model.embed(x[i:i + batch].to(dev).float().div(255)).float().cpu())
    model.train()
    return torch.cat(out)


def per_class(y: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k indices of each class (all of a class that has fewer), drawn with the seed."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.cat(out).sort().values


def knn_accuracy(fb, yb, fq, yq, k: int = 20, t: float = 0.07) -> float:
    """Weighted k-NN on cosine similarity (Wu et al. 2018): the usual label-free monitor of an encoder."""
    fb, fq = F.normalize(fb, dim=1), F.normalize(fq, dim=1)
    classes = int(max(yb.max(), yq.max())) + 1
    k = min(k, len(fb))
    right = 0
    for i in range(0, len(fq), 1024):
        sim, idx = (fq[i:i + 1024] @ fb.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), classes).scatter_add_(1, yb[idx], (sim / t).exp())
        right += (votes.argmax(1) == yq[i:i + 1024]).sum().item()
    return right / len(fq)


def probe_accuracy(ft, yt, fq, yq) -> float:
    """A linear classifier (logistic regression) on frozen, standardised features."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn takes ~1 s to import: only this path pays it
    from sklearn.preprocessing import StandardScaler  # scikit-learn takes ~1 s to import: only this path pays it
    if len(torch.unique(yt)) < 2:
        return float("nan")
    scale = StandardScaler().fit(ft.numpy())
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(scale.transform(ft.numpy()), yt.numpy())
    return float((clf.predict(scale.transform(fq.numpy())) == yq.numpy()).mean())


def load_data(cfg: Config) -> Dataset:
    """A built-in set or a folder of class folders (labels kept for the monitor only), or a folder of
    images without classes."""
    path = Path(cfg.data).expanduser()
    if path.is_dir() and not any(p.is_dir() and any(p.iterdir()) for p in path.iterdir() if not p.name.startswith(".")):
        ds = read_unlabelled(path, cfg.imgsz, cfg.strict, cfg.seed)
    else:
        ds = load_labelled(cfg)
    if ds.train.x is None:
        raise UserError(f"{cfg.data} does not fit in memory; pretraining needs its images in memory (use --imgsz to shrink them)")
    if min(ds.size) < MIN_SIDE:
        raise UserError(f"{ds.name}'s images are {ds.size[0]}x{ds.size[1]}, too small for the crops of the views; "
                        f"use images of at least {MIN_SIDE}x{MIN_SIDE} (--imgsz {MIN_SIDE} or more resizes them)")
    if len(ds.train) < 2 * cfg.batch:
        raise UserError(f"{ds.name} has {len(ds.train)} training images; pretraining needs at least two batches "
                        f"(--batch {cfg.batch}): add images or lower --batch")
    return ds


def read_unlabelled(path: Path, imgsz: int, strict: bool, seed: int) -> Dataset:

    base = path.absolute()
    paths = sorted(p for p in base.rglob("*") if p.is_file() and is_image_file(p))
    if not paths:
        raise UserError(f"no images in {base}: put the images there (any tree; class folders give the monitor labels)")
    imgsz = imgsz or DEFAULT_SIZE
    channels = 3 if any_colour(paths) else 1
    corrupt: list[str] = []
    split = decode_all(paths, [-1] * len(paths), channels, imgsz, strict, base, corrupt, Counter())
    if not len(split):
        raise UserError(f"no readable images in {base}")
    empty = Split(split.x[:0], split.y[:0], ids=[])
    return Dataset(base.name, [], split, empty, empty, channels, (imgsz, imgsz), "natural",
                   {"root": str(base), "unlabelled": True, "images": len(split), "corrupt_files": len(corrupt)})


def build(cfg: Config, channels: int, size, mean, std) -> Pretrainer:
    if kind_of(cfg.model) in ("detect", "restore", "upscale"):
        # a detector's or restorer's down-sampling path, on pixels in [0, 1] as those tasks feed it
        net = build_model(cfg.model, Spec(channels, 1, tuple(size), cfg.activation, cfg.kernel_size, cfg.width))
        encoder = with_preprocess(backbone(net), [0.0] * channels, [1.0] * channels)
        with torch.no_grad():
            dim = encoder.eval()(torch.zeros(1, channels, *size)).shape[1]
        encoder.train()
    else:
        encoder = build_classifier(cfg, 2, channels, size, mean, std)
        dim = strip_head(encoder)
    return Pretrainer(encoder, dim, cfg.method, channels, tuple(size), cfg.temperature, cfg.mask_ratio)


def setup(cfg: Config, dataset: Dataset | None, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads the images (labels kept for the monitor only) and builds the encoder with its heads."""
    if net is not None:
        raise UserError("pretraining takes a registry model (--model vgg7, resnet8, ...); own networks are not supported")
    ds = dataset if dataset is not None else load_data(cfg)
    labelled = bool(ds.classes) and len(ds.val) > 0
    if not labelled and cfg.monitor.startswith("val_"):
        cfg.monitor = "train_loss"  # nothing labelled to watch: the loss is all there is
    mean, std = channel_stats(ds)
    model = build(cfg, ds.channels, ds.size, mean, std).to(dev)
    data_info = {"name": ds.name, "classes": ds.classes, "channels": ds.channels, "size": list(ds.size),
                 "kind": ds.kind, "images": {s: len(getattr(ds, s)) for s in ("train", "val", "test")},
                 "labels_used_for_training": False, "info": ds.info}
    batches = Batches(Split(ds.train.x, ds.train.y), cfg.batch, True, cfg.seed, ds.channels, ds.size[0])
    bank = Split(ds.train.x[:BANK], ds.train.y[:BANK]) if labelled else None
    task = Pretrain(cfg, make_views(cfg, ds.kind), bank, len(batches))

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        # the encoder is the last epoch's: k-NN on all labels can peak early (a random network already scores
        # well on digits) while the features keep improving for few labels and fine-tuning; best.safetensors stays
        load_weights(model, run / "weights" / "last.safetensors")
        save_encoder(cfg, model, ds, run)
        test = few_labels(cfg, model, ds, dev, bf16) if labelled else {}
        fields = {"model": {"method": cfg.method, "params": count_params(model.encoder), "features": model.dim,
                            "summary": str(model.encoder)}, "test": test}
        pictures(run, model, ds, task, dev, bf16)
        return test, fields

    about = (f"{ds.name}: {len(ds.train)} images without their labels"
             + (f", {len(ds.val)} labelled val images for the monitor" if labelled else "")
             + f"; {cfg.method} on {cfg.model}")
    return Job(model, task, batches, ds.val if labelled else None, data_info, about, finish)


def save_encoder(cfg: Config, model: Pretrainer, ds: Dataset, run: Path) -> None:
    """weights/encoder.safetensors under the classifier's own tensor names, and encoder.json to rebuild it."""
    meta = {"model": cfg.model, "width": cfg.width, "activation": cfg.activation, "kernel_size": cfg.kernel_size,
            "channels": ds.channels, "size": list(ds.size), "features": model.dim, "method": cfg.method,
            "data": ds.name}
    save_weights(model.encoder, run / "weights" / "encoder.safetensors", metadata={k: str(v) for k, v in meta.items()})
    (run / "encoder.json").write_text(json.dumps(meta, indent=1))


def few_labels(cfg: Config, model: Pretrainer, ds: Dataset, dev, bf16: bool) -> dict:
    """k-NN and linear probe on the test split with 1, 10 and 100 labels per class (and all), from the
    pretrained encoder and from the same encoder untrained: what the unlabelled images bought."""
    test = ds.test if len(ds.test) else ds.val
    torch.manual_seed(cfg.seed)
    random = build(cfg, ds.channels, ds.size, *_stats(model)).to(dev)
    rows = {}
    for name, m in (("pretrained", model), ("random", random)):
        ft, fq = features(m, ds.train.x, dev, bf16), features(m, test.x, dev, bf16)
        for k in (*LABELS_SHOWN, None):
            pick = per_class(ds.train.y, k, cfg.seed) if k else torch.arange(len(ds.train))
            if k and k > int(torch.bincount(ds.train.y).min()):
                continue
            key = f"{k}" if k else "all"
            rows.setdefault(key, {"labels": len(pick)})
            rows[key][f"{name}_knn"] = knn_accuracy(ft[pick], ds.train.y[pick], fq, test.y)
            rows[key][f"{name}_probe"] = probe_accuracy(ft[pick], ds.train.y[pick], fq, test.y)
    return {"split": "test" if len(ds.test) else "val", "images": len(test), "few_labels": rows}


def _stats(model: Pretrainer):
    pre = model.encoder[0]
    return pre.mean.flatten().tolist(), pre.std.flatten().tolist()


def pictures(run: Path, model: Pretrainer, ds: Dataset, task: Pretrain, dev, bf16: bool) -> None:
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(task.cfg.seed)
    x = ds.train.x[torch.randperm(len(ds.train), generator=g)[:8]].float().div(255)  # a spread of the data
    v1, v2 = task.views(x, g), task.views(x, g)
    both = torch.stack([x, v1, v2], 1).flatten(0, 1)
    image_grid(_hwc(both), ["image", "view 1", "view 2"] * 8, plots / "views.png", cols=6)
    if task.cfg.method == "mae":
        model.eval()
        with torch.no_grad():
            m = model.mask(8, g)
            m = F.interpolate(m, size=x.shape[2:], mode="nearest")
            out = model.reconstruct(x.to(dev), m.to(dev)).float().cpu()
        pre = model.encoder[0]
        out = (out * pre.std.cpu() + pre.mean.cpu()).clamp(0, 1)
        image_grid(_hwc(torch.stack([x, x * (1 - m), out], 1).flatten(0, 1)), ["image", "visible", "rebuilt"] * 8,
                   plots / "reconstruction.png", cols=6)
    test = ds.test if len(ds.test) else ds.val
    if ds.classes and len(test) >= 20:
        embedding_map(features(model, test.x[:2000], dev, bf16), test.y[:2000], ds.classes, plots / "embedding.png",
                      "t-SNE of the encoder's features (test images, coloured by class)")


def _hwc(x: torch.Tensor) -> np.ndarray:
    x = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def val(run: Path) -> dict:
    """The few-label figures of a run's encoder again, on its own data's test split."""
    run, cfg, _ = open_run(run)
    ds = load_data(cfg)
    if not ds.classes:
        raise UserError(f"{run} was pretrained on images without labels: there is nothing to measure it with")
    dev = machine.device()
    bf16 = machine.use_bf16(cfg.precision, dev)
    model = build(cfg, ds.channels, ds.size, *channel_stats(ds)).to(dev)
    load_weights(model, run / "weights" / "last.safetensors")  # the epoch the encoder was saved from
    return few_labels(cfg, model, ds, dev, bf16)


class Encoder(Loaded):
    """A pretrain run's encoder, ready to use: `deepix.load(run).features(images)` gives (N, D) features;
    `predict` is the same."""

    task = "pretrain"
    batching = True

    def __init__(self, run: Path):
        self.run, self.cfg, meta = open_run(run)
        cfg = self.cfg
        self.channels, self.size, self.classes = meta["channels"], tuple(meta["size"]), None
        self.labelled = bool(meta.get("classes"))
        self.model = build(cfg, self.channels, self.size, [0.0] * self.channels, [1.0] * self.channels)
        load_weights(self.model.encoder, self.run / "weights" / "encoder.safetensors")
        self.model.eval()

    @torch.no_grad()
    def features(self, images) -> torch.Tensor:
        """Paths, PIL images or arrays in, as a classifier's Predictor takes them."""
        return self.model.embed(to_batch(images, self.channels, self.size)).float()

    def predict(self, images, **options) -> torch.Tensor:
        return self.features(images)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        raise UserError(f"{self.run} holds an encoder, not a predictor: fine-tune it with deepix train classify "
                        f"--init {self.run} (or detect / restore)")

    def answer(self, images: list, options: dict) -> list[dict]:
        return [{"features": [round(v, 6) for v in f.tolist()]} for f in self.features(list(images))]
