"""Image generation: GANs (two optimizers, stepped by the task) or a small diffusion model learn to
make images like the training set; a classifier trained on the same data judges them (FID/KID in
its features, precision/recall, class coverage, conditional accuracy)."""
from __future__ import annotations

import json
import shutil
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...config import Config, make_config
from ...engine import distributed as dist, machine
from ...engine.checkpoint import load_weights
from ...data.labelled import load_data as load_labelled
from ...data.loader import Batches
from ...engine.run import train as run_task
from ...engine.optim import backward_step
from ...errors import UserError
from ...runs import open_run
from ...models import REGISTRY, Spec, build_model, count_params, kind_of
from .. import get
from ..base import Job, Loaded, Step
from .metrics import Evaluator
from .pictures import grid, save_grid
from ...engine.fit import autocast
from . import pictures as pic
from .metrics import Features
from .metrics import inception_fid

EVAL_SAMPLES = 1000     # generated images scored after every epoch (the test: --test-samples, 10,000)


def conditional(model_name: str) -> bool:
    return model_name in ("cgan", "ddpm")


class Generate(Step):
    """Real batches in; the task steps its own generator and discriminator (or its denoiser)."""

    mode = "own"

    def __init__(self, cfg: Config, num_classes: int, evaluator, bf16: bool = False):
        self.cfg, self.num_classes, self.evaluator, self.bf16 = cfg, num_classes, evaluator, bf16

    def ema_decay(self, opt: torch.optim.Optimizer) -> float:
        # early on the average would be mostly the random start: let it follow closely, then settle to --ema;
        # the step count is the optimizer's own, so a resumed run goes on with the same decay
        steps = int(next(iter(opt.state.values()))["step"])
        return min(self.cfg.ema, (1 + steps) / (10 + steps))

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        x = x.float().div_(255)
        if train and self.cfg.hflip == "on":
            flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, y

    def optimizers(self, cfg: Config, model) -> dict[str, torch.optim.Optimizer]:
        if not hasattr(model, "d"):
            params = [p for p in model.parameters() if p.requires_grad]
            return {"": torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)}
        # beta1 0 and beta2 0.9: the usual Adam settings for GANs with spectral norm (Miyato et al. 2018)
        return {"g": torch.optim.Adam(model.g.parameters(), lr=cfg.lr, betas=(0.0, 0.9)),
                "d": torch.optim.Adam(model.d.parameters(), lr=cfg.d_lr or cfg.lr, betas=(0.0, 0.9))}

    def train_step(self, model, x, y, opts, autocast) -> dict[str, float]:
        labels = y if model.num_classes else None
        if not hasattr(model, "d"):
            with autocast():
                loss = model.loss(x, labels)
            backward_step(opts[""], loss, model.parameters(), self.cfg.grad_clip)
            model.update_ema(self.ema_decay(opts[""]))
            return {"loss": loss.item()}
        return self._gan_step(model, x * 2 - 1, labels, opts, autocast)

    def _gan_step(self, model, real, labels, opts, autocast) -> dict[str, float]:
        n, dev = len(real), real.device
        z = torch.randn(n, model.z_dim, device=dev)
        asked = torch.randint(0, model.num_classes, (n,), device=dev) if model.num_classes else None
        half = n // 2
        if self.cfg.diversity and asked is not None:
            asked[half:2 * half] = asked[:half]  # pairs of latents asked for the same class
        hinge = self.cfg.loss == "hinge"
        model.d.requires_grad_(True)
        if self.cfg.gp:
            real.requires_grad_(True)
        with autocast():
            fake = model.g(z, asked)
            d_real, d_fake = model.d(real, labels).float(), model.d(fake.detach(), asked).float()
            if hinge:
                d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            else:  # the non-saturating loss of Goodfellow et al. 2014, written with softplus
                d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if self.cfg.gp:  # R1: penalise D's gradient on real images (Mescheder et al. 2018)
            grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            d_loss = d_loss + self.cfg.gp / 2 * grad.float().pow(2).flatten(1).sum(1).mean()
        backward_step(opts["d"], d_loss, model.d.parameters())

        model.d.requires_grad_(False)  # G's step needs gradients through D, not into it
        with autocast():
            score = model.d(fake, asked).float()
            g_loss = -score.mean() if hinge else F.softplus(-score).mean()
        if self.cfg.diversity and half:
            # mode seeking (Mao et al. 2019): two latents should not give the same image
            ratio = ((fake[:half] - fake[half:2 * half]).float().abs().mean((1, 2, 3))
                     / (z[:half] - z[half:2 * half]).abs().mean(1))
            g_loss = g_loss + self.cfg.diversity / (ratio.mean() + 1e-5)
        backward_step(opts["g"], g_loss, model.g.parameters(), self.cfg.grad_clip)
        model.d.requires_grad_(True)
        model.update_ema(self.ema_decay(opts["g"]))
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": d_real.mean().item(),
                "d_fake": d_fake.mean().item()}

    def sample(self, model, n: int, seed: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        g = torch.Generator().manual_seed(seed)
        if model.num_classes and labels is None:
            labels = torch.arange(n) % model.num_classes  # every class equally often
        return sample(model, n, labels, g, bf16=self.bf16), labels

    def evaluate(self, model, val, dev, bf16) -> dict[str, float]:
        if hasattr(model, "settle"):
            model.settle()  # before the weights are saved: the file holds the statistics sampling uses
        fake, asked = self.sample(model, eval_count(model, EVAL_SAMPLES), self.cfg.seed + 1)
        m = self.evaluator(fake, asked)
        out = {k: m[k] for k in ("fid", "kid", "precision", "recall", "coverage_min")}
        if m.get("class_accuracy") is not None:
            out["class_accuracy"] = m["class_accuracy"]
        return out


def eval_count(model, n: int) -> int:
    # a diffusion model samples through --sample-steps (25) network passes: score fewer of its images (the count is reported)
    return n if hasattr(model, "d") else max(100, n // 5)


def sample(model, n: int, labels: torch.Tensor | None, g: torch.Generator, z: torch.Tensor | None = None,
           batch: int = 500, bf16: bool = False) -> torch.Tensor:
    """n images in [0, 1] on the CPU, from the model's averaged weights."""
    z = model.latent(n, g) if z is None else z
    dev = next(model.parameters()).device
    out = []
    with autocast(bf16, dev):
        for i in range(0, n, batch):
            lab = labels[i:i + batch].to(dev) if labels is not None else None
            out.append(model.sample(len(z[i:i + batch]), labels=lab, z=z[i:i + batch].to(dev)).float().cpu())
    return torch.cat(out)


def load_data(cfg: Config):
    ds = load_labelled(cfg)
    if ds.train.x is None:
        raise UserError(f"{cfg.data} does not fit in memory; generation needs its images in memory (use --imgsz to shrink them)")
    if len(ds.train) < cfg.batch:
        raise UserError(f"{ds.name} has {len(ds.train)} training images, fewer than --batch {cfg.batch}; lower --batch")
    return ds


def train_classifier(cfg: Config, ds, run: Path):
    """The judge: a classifier trained on the generator's own training split, saved with the run."""
    found = run / "classify" / "classifier"
    if cfg.judge and not dist.broadcast((found / "summary.json").is_file()):
        judge = given_judge(cfg, ds)
        if dist.is_main():  # copied: the run keeps its judge, as it keeps one it trained
            shutil.copytree(judge, found, dirs_exist_ok=True)
        dist.barrier()
    if not dist.broadcast((found / "summary.json").is_file()):  # every rank trains it, or none
        if dist.is_main() and found.exists():  # killed while it trained: it trains again, from its start
            shutil.rmtree(found)
        dist.barrier()
        ccfg = make_config(task="classify", data=cfg.data, imgsz=cfg.imgsz, model="vgg7", epochs=cfg.judge_epochs,
                           batch=min(128, max(8, len(ds.train) // 4)),
                           seed=cfg.seed, threads=cfg.threads, precision=cfg.precision, project=str(run),
                           name="classifier", quiet=True, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
        if not cfg.quiet and dist.is_main():
            print(f"training the judge: vgg7 classifier, {ccfg.epochs} epochs on the same training split")
        run_task(get("classify"), ccfg, dataset=ds)
    pred = get("classify").load(found)
    acc = json.loads((found / "summary.json").read_text())["test"]["accuracy"]
    return pred.model, acc


def given_judge(cfg: Config, ds) -> Path:
    """The classify run that --judge names (a generate run stands for its own judge), once it has been checked to
    read this data's images and classes."""
    run, jcfg, _ = open_run(cfg.judge)
    if jcfg.task == "generate":
        run = run / "classify" / "classifier"
        run, jcfg, _ = open_run(run)
    if jcfg.task != "classify" or not (run / "summary.json").is_file():
        raise UserError(f"--judge {cfg.judge} is a {jcfg.task} run; pass a finished classify run, or a generate run "
                        f"for its judge")
    judge = get("classify").load(run)
    if list(judge.classes) != list(ds.classes) or judge.channels != ds.channels or tuple(judge.size) != tuple(ds.size):
        raise UserError(f"--judge {cfg.judge} reads {judge.channels}x{judge.size[0]}x{judge.size[1]} images of the "
                        f"classes {list(judge.classes)[:6]}; this data has {ds.channels}x{ds.size[0]}x{ds.size[1]} "
                        f"images of {list(ds.classes)[:6]}: a judge must know the same classes at the same size")
    return run


def build(cfg: Config, channels: int, size, classes: int) -> torch.nn.Module:
    if kind_of(cfg.model) != "generate":
        names = ", ".join(n for n, (_, _, k) in REGISTRY.items() if k == "generate")
        raise UserError(f"{cfg.model} does not generate images; use one of {names}")
    spec = Spec(channels, classes if conditional(cfg.model) else 0, tuple(size), width=cfg.width, z_dim=cfg.z_dim,
                sn=cfg.sn == "on")
    model = build_model(cfg.model, spec)
    if hasattr(model, "steps"):  # a diffusion model: DDIM steps per sample
        model.steps = cfg.sample_steps
    return model


def setup(cfg: Config, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads the images, builds the generator (and discriminator); the judge is trained in the run folder."""
    if net is not None:
        raise UserError("generation trains its own models (--model dcgan, cgan or ddpm); own networks are not supported")
    ds = dataset if dataset is not None else load_data(cfg)
    if cfg.loss not in ("hinge", "ns"):
        raise UserError(f"--loss {cfg.loss} is not a GAN loss; use hinge or ns (non-saturating)")
    model = build(cfg, ds.channels, ds.size, len(ds.classes)).to(dev)
    resized = (f"images read at {ds.size[0]}x{ds.size[1]} (--imgsz)" if Path(cfg.data).exists() else None)
    data_info = {"name": ds.name, "classes": ds.classes, "channels": ds.channels, "size": list(ds.size),
                 "images": {s: len(getattr(ds, s)) for s in ("train", "val", "test")}, "resized": resized}
    val_real = ds.val.x.float().div(255) if len(ds.val) else ds.train.x[:1000].float().div(255)
    task = Generate(cfg, len(ds.classes), None, bf16)  # its evaluator comes with the judge, in begin
    judged = {}
    fixed = fixed_batch(model, len(ds.classes), cfg.seed)

    def begin(run: Path) -> None:
        judge, judged["accuracy"] = train_classifier(cfg, ds, run)
        # the judge's training draws from the global generator, or not when a restarted run finds it trained:
        # the GAN's own draws start from one place either way
        torch.manual_seed(cfg.seed + 1)
        judged["judge"] = judge.to(dev)
        task.evaluator = Evaluator(judged["judge"], val_real, len(ds.classes), seed=cfg.seed)
        (run / "samples").mkdir(exist_ok=True)
        judged["run"] = run

    def snapshot(row, m):
        save_grid(sample(m, len(fixed[0]), fixed[1], torch.Generator(), z=fixed[0]),
                  judged["run"] / "samples" / f"epoch_{int(row['epoch']):03d}.png", nrow=10)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        model.eval()
        test = test_metrics(cfg, model, ds, judged["judge"], judged["accuracy"], run, bf16)
        fields = {"model": {"params": count_params(model) - count_params(model.g_ema if hasattr(model, "g") else model.ema),
                            "params_g": count_params(model.g) if hasattr(model, "g") else None,
                            "params_d": count_params(model.d) if hasattr(model, "d") else None,
                            "conditional": bool(model.num_classes), "summary": str(model)},
                  "classifier": {"model": open_run(run / "classify" / "classifier")[1].model,
                                 "test_accuracy": judged["accuracy"], "from": cfg.judge or None,
                                 "weights": "classify/classifier/weights/best.safetensors"},
                  "test": test}
        pictures(run, model, ds, task, judged["judge"])
        return test, fields

    about = f"{ds.name}: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test images; {cfg.model}"
    batches = Batches(ds.train, cfg.batch, True, cfg.seed, ds.channels, ds.size[0])
    return Job(model, task, batches, val_real, data_info, about, finish, begin, callbacks=(snapshot,))


def fixed_batch(model, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The latent batch drawn at every epoch: 10 rows, one class per row for a conditional model."""
    z = model.latent(100, torch.Generator().manual_seed(seed + 7))
    labels = (torch.arange(100) // 10) % classes if model.num_classes else None
    return z, labels


def test_metrics(cfg: Config, model, ds, judge, judge_acc: float, run: Path, bf16: bool = False) -> dict:
    real = (ds.test if len(ds.test) else ds.val).x.float().div(255)
    ev = Evaluator(judge, real, len(ds.classes), seed=cfg.seed)
    t0 = time.perf_counter()
    count = eval_count(model, cfg.test_samples)
    fake, asked = Generate(cfg, len(ds.classes), ev, bf16).sample(model, count, cfg.seed + 2)
    seconds = time.perf_counter() - t0
    m = ev(fake, asked)
    floor = ev.floor()
    train_ref = ev(ds.train.x[:cfg.test_samples].float().div(255))  # what a model that copied its training images scores
    test = {"samples": count, "real_images": len(real),
            "feature_space": f"penultimate layer of the run's vgg7 classifier ({ev.features.num_features}-d, "
                             f"test accuracy {judge_acc:.1%})",
            "evaluator": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance with a custom feature network",
            **m, "fid_floor": floor["fid"], "kid_floor": floor["kid"], "fid_train": train_ref["fid"],
            "precision_train": train_ref["precision"], "recall_train": train_ref["recall"],
            "sample_seconds": round(seconds, 2), "inception_fid": None, "inception_samples": None}
    if cfg.inception:
        n = min(cfg.inception, len(real), count)
        test["inception_fid"] = inception_fid(real[:n], fake[:n], cfg.inception_weights or None)
        test["inception_samples"] = n
    (run / "test.json").write_text(json.dumps(test, indent=1))
    return test


def pictures(run: Path, model, ds, task: Generate, judge) -> None:
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    z, labels = fixed_batch(model, len(ds.classes), task.cfg.seed)
    final = sample(model, 100, labels, torch.Generator(), z=z)
    pic.save_grid(final, plots / "samples.png", nrow=10)
    frames = sorted((run / "samples").glob("epoch_*.png"))
    if len(frames) > 1:
        pic.progress_gif(frames, plots / "progress.gif")
    test = json.loads((run / "test.json").read_text())
    pic.plot_coverage(test["coverage"], ds.classes, plots / "coverage.png")
    feats = Features(judge, ds.channels, tuple(ds.size))
    train = ds.train.x[:4000].float().div(255)
    some = final[::10]  # one sample of each row of the grid: a class each for a conditional model
    pic.neighbours(some, train, feats.embed(some)[0], feats.embed(train)[0], plots / "neighbours.png",
                   n=len(some), space="the judge classifier's features")
    pic.interpolation(interpolate(model, task.cfg.seed), plots / "interpolation.png")


def interpolate(model, seed: int, rows: int = 6, steps: int = 10) -> list[torch.Tensor]:
    """Images along great-circle paths between pairs of latents (one class per row when conditional)."""
    g = torch.Generator().manual_seed(seed + 11)
    a, b = model.latent(rows, g), model.latent(rows, g)
    out = []
    for r in range(rows):
        u, v = a[r].flatten(), b[r].flatten()
        omega = torch.arccos((u @ v / (u.norm() * v.norm())).clamp(-1, 1))
        t = torch.linspace(0, 1, steps)[:, None]
        path = (torch.sin((1 - t) * omega) * u + torch.sin(t * omega) * v) / torch.sin(omega).clamp_min(1e-6)
        labels = torch.full((steps,), r % model.num_classes) if model.num_classes else None
        out.append(sample(model, steps, labels, g, z=path.view(steps, *a.shape[1:])))
    return out


def val(run: Path) -> dict:
    """The test figures of a run's best weights, measured again (its --test-samples against the test split)."""
    run, cfg, _ = open_run(run)
    ds = load_data(cfg)
    sampler = Sampler(run)
    judge_run = run / "classify" / "classifier"
    judge = get("classify").load(judge_run).model
    acc = json.loads((judge_run / "summary.json").read_text())["test"]["accuracy"]
    dev = machine.device()
    return test_metrics(cfg, sampler.model.to(dev), ds, judge.to(dev), acc, run, machine.use_bf16(cfg.precision, dev))


class Sampler(Loaded):
    """A trained generation run, ready to make images: `deepix generate RUN -n 64 --class 7`;
    `predict(n, asked, seed)` is the same as `generate`."""

    task = "generate"
    makes_images = True

    def __init__(self, run: Path, weights: str = "best"):
        self.run, self.cfg, meta = open_run(run)
        self.classes = meta["classes"]
        self.model = build(self.cfg, meta["channels"], meta["size"], len(self.classes))
        load_weights(self.model, run / "weights" / f"{weights}.safetensors")
        self.model.eval()

    def label(self, asked: str | None) -> int | None:
        if asked is None:
            return None
        if not self.model.num_classes:
            raise UserError(f"{self.cfg.model} is unconditional: it cannot be asked for a class; train --model cgan")
        if asked in self.classes:
            return self.classes.index(asked)
        if asked.isdigit() and int(asked) < len(self.classes):
            return int(asked)
        raise UserError(f"class {asked!r} is not one of this model's classes: {', '.join(self.classes)}")

    def generate(self, n: int, asked: str | None = None, seed: int = 0) -> torch.Tensor:
        if n <= 0:
            raise UserError(f"-n must be at least 1 (got {n})")
        k = self.label(asked)
        labels = torch.full((n,), k) if k is not None else (
            torch.arange(n) % self.model.num_classes if self.model.num_classes else None)
        return sample(self.model, n, labels, torch.Generator().manual_seed(seed))

    def predict(self, n: int = 64, asked: str | None = None, seed: int = 0, **options) -> torch.Tensor:
        return self.generate(n, asked, seed)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        raise UserError(f"{self.run} makes images rather than reading them: use deepix generate {self.run} -n 64 "
                        "-o grid.png")

    def make_files(self, n: int, asked: str | None, seed: int, out: Path) -> list[Path]:
        """n images: a grid when OUT is an image file name, else one PNG each in the folder OUT."""
        return write_images(self.generate(n, asked, seed), out)

    def grid(self, n: int, asked: str | None, seed: int) -> torch.Tensor:
        """n images as one (C, H, W) grid in [0, 1], for the service."""
        g = torch.from_numpy(np.ascontiguousarray(grid(self.generate(n, asked, seed), min(n, 8))))
        return g.permute(2, 0, 1).float() / 255 if g.ndim == 3 else g[None].float() / 255


def write_images(images: torch.Tensor, out: Path) -> list[Path]:
    """A grid when OUT is an image file name, else one PNG per image in the folder OUT."""
    if out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        out.parent.mkdir(parents=True, exist_ok=True)
        return [save_grid(images, out, nrow=max(1, math.ceil(math.sqrt(len(images)))))]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        a = (im.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        path = out / f"sample_{i:05d}.png"
        Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(path)
        paths.append(path)
    return paths
