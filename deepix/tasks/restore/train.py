"""Image restoration: learn to undo a degradation (noise, blur, JPEG, down-scaling) from clean
images degraded on the fly; PSNR/SSIM against the classical methods, panels to see the gain."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Config
from ...data.loader import epoch_generator
from ...engine import distributed as dist, machine
from ...engine.checkpoint import load_weights
from ...engine.teach import Taught, alone, frozen
from ...errors import UserError
from ...runs import open_run
from ...models import REGISTRY, Spec, build_model, count_params, kind_of
from ...models.encoder import init_from_encoder
from ..base import Job, Loaded, Step
from . import images as imgio
from .files import answer_images, write_restored
from .degrade import Degrade, crop_to_scale, parse, protocol_noise
from .metrics import psnr, ssim
from .classical import baselines_for
from .classical import bicubic
from ...engine.tiles import predict_tiled
from ...engine.distributed import shard as part
from ...report.plots import restore_panel

EVAL_SEED = 12345   # the degradation of validation and test images is fixed across epochs and runs


def _dihedral(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    x = torch.where(r[:, 0, None, None, None], x.flip(3), x)
    x = torch.where(r[:, 1, None, None, None], x.flip(2), x)
    return torch.where(r[:, 2, None, None, None], x.transpose(2, 3), x)


class Restore(Step):
    """Clean patches in, degraded on the fly; the model learns to undo the degradation."""

    def __init__(self, degrade: Degrade, loss: str, dihedral: bool, channels_last: bool, tile: int,
                 paired: bool = False):
        self.degrade, self.loss_name, self.dihedral = degrade, loss, dihedral
        self.channels_last, self.tile, self.paired = channels_last, tile, paired

    def prepare(self, x, y, train: bool, g: torch.Generator | None = None):
        """x: degraded patches of paired data, or the clean ones (then degraded here); y: the clean patches."""
        clean, degraded = y, (x if self.paired else None)
        if train and self.dihedral:
            # the 8 flips/rotations of a square patch, drawn per patch, applied to the whole batch
            r = torch.rand(clean.shape[0], 3, generator=g).to(clean.device) < 0.5
            clean, degraded = (_dihedral(t, r) if t is not None else None for t in (clean, degraded))
        if degraded is None:
            degraded = self.degrade(clean, g)
        if self.channels_last:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        return degraded, clean

    def loss(self, out, clean):
        out = out.float()
        if self.loss_name == "l1":
            return F.l1_loss(out, clean)
        if self.loss_name == "charbonnier":  # a smooth L1 (Lai et al. 2017), eps 1e-3
            return torch.sqrt((out - clean) ** 2 + 1e-6).mean()
        return F.mse_loss(out, clean)

    def train_stats(self, out, y) -> dict[str, float]:
        return {}

    def degraded_image(self, clean: torch.Tensor, index: int, given: torch.Tensor | None = None) -> torch.Tensor:
        """The fixed degradation of an evaluation image (the given partner of a pair; the field's protocol
        for plain Gaussian noise)."""
        if given is not None:
            return given[None]
        clean = crop_to_scale(clean[None], self.degrade.scale)
        if self.degrade.sigma is not None and all(n == "noise" for n, _ in self.degrade.steps):
            a = clean[0].permute(1, 2, 0).double().numpy()
            return torch.from_numpy(protocol_noise(a, self.degrade.sigma)).permute(2, 0, 1)[None].float()
        return self.degrade(clean, torch.Generator().manual_seed(EVAL_SEED + index))

    @torch.no_grad()
    def restore(self, model, degraded: torch.Tensor, dev, bf16) -> torch.Tensor:
        return predict_tiled(model, degraded.to(dev), self.degrade.scale, self.tile, 32, bf16).float().cpu()

    def evaluate(self, model, images, dev, bf16) -> dict[str, float]:
        model.eval()
        losses, scores = [], []
        for i, (_, clean, given) in enumerate(images):
            target = crop_to_scale(clean[None], self.degrade.scale)
            out = self.restore(model, self.degraded_image(clean, i, given), dev, bf16)
            losses.append(self.loss(out, target).item())
            scores.append(psnr(out[0].clamp(0, 1).numpy().transpose(1, 2, 0), target[0].numpy().transpose(1, 2, 0),
                               shave=self.degrade.scale if self.degrade.scale > 1 else 0))
        return {"loss": float(np.mean(losses)), "psnr": float(np.mean(scores))}


class Patches:
    """Random patches of the clean training images, drawn afresh every epoch (seeded by epoch)."""

    def __init__(self, images: list[torch.Tensor], patch: int, count: int, batch: int, seed: int,
                 inputs: list[torch.Tensor] | None = None, scale: int = 1):
        self.images, self.patch, self.count, self.batch, self.seed = images, patch, count, batch, seed
        self.inputs, self.scale = inputs, scale  # paired data: the degraded partner of each image
        areas = np.array([im.shape[1] * im.shape[2] for im in images], dtype=np.float64)
        self.weights = torch.from_numpy(areas / areas.sum())  # big photos give more patches

    def __len__(self) -> int:
        return self.count // self.batch

    def epoch(self, epoch: int, shard: bool = False):
        g = epoch_generator(self.seed, epoch, stream=2)
        n, p = len(self) * self.batch, self.patch
        which = torch.multinomial(self.weights, n, replacement=True, generator=g)
        s, q = self.scale, p // self.scale
        out = torch.empty(n, self.images[0].shape[0], p, p, device=self.images[0].device)
        low = torch.empty(n, out.shape[1], q, q, device=out.device) if self.inputs else out
        for i, k in enumerate(which.tolist()):  # once per epoch, not per step
            im = self.images[k]
            top = int(torch.randint(0, (im.shape[1] - p) // s + 1, (1,), generator=g)) * s
            left = int(torch.randint(0, (im.shape[2] - p) // s + 1, (1,), generator=g)) * s
            out[i] = im[:, top:top + p, left:left + p]
            if self.inputs:
                low[i] = self.inputs[k][:, top // s:top // s + q, left // s:left // s + q]
        for i in range(0, n, self.batch):
            mine = torch.arange(i, i + self.batch)
            mine = part(mine) if shard else mine
            yield low[mine[0]:mine[-1] + 1], out[mine[0]:mine[-1] + 1]


def load_data(cfg: Config) -> tuple[dict[str, list[tuple[str, torch.Tensor, torch.Tensor | None]]], Degrade]:
    """{split: [(name, clean, degraded partner or None)]} and the degradation (pairs bring their own)."""
    if Path(cfg.data).exists() and imgio.is_pairs(cfg.data):
        data, scale = imgio.pairs(cfg.data, cfg.channels, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        deg = Degrade((), "pairs")
        deg.scale = scale
        return data, deg
    if cfg.data == "photos":
        data = imgio.photos(cfg.channels)
    elif Path(cfg.data).exists() or "/" in cfg.data:
        data = imgio.folder(cfg.data, cfg.channels, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    else:
        raise UserError(f"unknown restoration data {cfg.data!r}: use photos (built in), a folder of clean images, "
                        f"or a folder of pairs (input/ and target/ with the same file names)")
    return {s: [(n, im, None) for n, im in v] for s, v in data.items()}, parse(cfg.degrade)


def check(cfg: Config, data, deg: Degrade) -> int:
    if cfg.loss not in ("l1", "mse", "charbonnier"):
        raise UserError(f"--loss {cfg.loss} is not a restoration loss; restoration takes l1, mse or charbonnier")
    patch = cfg.patch - cfg.patch % deg.scale  # a clean patch must shrink to whole pixels
    for name, im, _ in data["train"]:
        if min(im.shape[1:]) < patch:
            raise UserError(f"training image {name} is {im.shape[2]}x{im.shape[1]}, smaller than --patch {patch}; "
                            f"lower --patch or remove the image")
    for split in ("val", "test"):
        for name, im, _ in data[split]:
            if min(im.shape[1:]) < 2 * deg.scale + 1:
                raise UserError(f"{split} image {name} is too small ({im.shape[2]}x{im.shape[1]}) for {cfg.degrade}")
    if not data["val"]:
        raise UserError("restoration needs validation images: add a val/ folder or raise --val-fraction")
    return patch


def build(cfg: Config, channels: int, scale: int) -> torch.nn.Module:
    spec = Spec(channels, channels, (cfg.patch, cfg.patch), cfg.activation, cfg.kernel_size, cfg.width, cfg.dropout,
                scale)
    kind = kind_of(cfg.model)
    names = lambda k: ", ".join(n for n, (_, _, kk) in REGISTRY.items() if kk == k)  # noqa: E731
    if kind == "classify":
        raise UserError(f"{cfg.model} is a classifier; restoration models are {names('restore')}, {names('upscale')}")
    if scale > 1 and kind != "upscale":
        raise UserError(f"{cfg.degrade} needs a super-resolution model ({names('upscale')}), not {cfg.model}")
    if scale == 1 and kind == "upscale":
        raise UserError(f"{cfg.model} up-scales; for {cfg.degrade} use one of {names('restore')}")
    return build_model(cfg.model, spec)


def setup(cfg: Config, dataset, net, dev, bf16: bool, resume: str | None) -> Job:
    """Reads the images, builds the restorer and the patches it trains on."""
    if dataset is not None or net is not None:
        raise UserError("restoration takes --data photos or a folder; arrays and own models are not supported yet")
    data, deg = load_data(cfg)
    paired = deg.spec == "pairs"
    if paired:
        cfg.degrade = "pairs"
    patch = check(cfg, data, deg)
    channels = data["train"][0][1].shape[0]
    model = build(cfg, channels, deg.scale)
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and bf16)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(dev)
    task = Restore(deg, cfg.loss, cfg.augment != "none", channels_last, cfg.tile, paired)
    if cfg.teacher:  # the student follows the teacher's output on each degraded patch, beside the clean target
        with torch.random.fork_rng(devices=[]):  # building the teacher draws no number the student's run would
            teacher, taught = load_teacher(cfg, channels, deg.scale, dev, channels_last)
        task = Taught(task, teacher, cfg.distill_weight, F.l1_loss, bf16)

    def begin(run: Path) -> None:
        if cfg.weights and not resume:
            load_weights(model, Path(cfg.weights), strict=False)
        if cfg.init and not resume:
            init_from_encoder(model, cfg, standardised=False)

    data_info = {"name": cfg.data, "channels": channels, "degrade": cfg.degrade, "scale": deg.scale,
                 "images": {s: [n for n, _, _ in v] for s, v in data.items()},
                 "sizes": {s: [list(im.shape[1:]) for _, im, _ in v] for s, v in data.items()}}
    count = cfg.patches or 64 * cfg.batch
    train_patches = Patches([im.to(dev) for _, im, _ in data["train"]], patch, count, cfg.batch, cfg.seed,
                            [d.to(dev) for _, _, d in data["train"]] if paired else None, deg.scale)

    def finish(run: Path, result: dict) -> tuple[dict, dict]:
        load_weights(model, run / "weights" / "best.safetensors")
        test = data["test"] or data["val"]
        table = evaluate_table(task, model, test, dev, bf16, run / "plots")
        table["split"] = "test" if data["test"] else "val"
        fields = {"model": {"summary": str(model)}, "test": table}
        if cfg.teacher:
            fields["teacher"] = {**taught, "student_params": count_params(model),
                                 "teacher_psnr": task.evaluate(teacher, test, dev, bf16)["psnr"]}
            if cfg.baseline and dist.world() == 1:
                r = alone(cfg, run)
                fields["baseline"] = {"psnr": r["test"]["methods"]["deepix"]["psnr"], "run": "restore/baseline"}
        return table, fields

    about = (f"{cfg.data}: {len(data['train'])} train / {len(data['val'])} val / {len(data['test'])} test images, "
             f"{count} patches of {patch}x{patch} per epoch; {cfg.model}, {cfg.degrade}")
    return Job(model, task, train_patches, data["val"], data_info, about, finish, begin)


def load_teacher(cfg: Config, channels: int, scale: int, dev, channels_last: bool):
    """The teacher restorer, frozen, after checking that it undoes the same degradation at the same scale."""
    run, tcfg, _ = open_run(cfg.teacher)
    if tcfg.task != "restore":
        raise UserError(f"the teacher {cfg.teacher} is a {tcfg.task} run; a restorer learns from a restore run")
    teacher = Restorer(run)
    if teacher.channels != channels or teacher.degrade.scale != scale or tcfg.degrade != cfg.degrade:
        raise UserError(f"the teacher {cfg.teacher} undoes {tcfg.degrade} on {teacher.channels}-channel images; this "
                        f"run undoes {cfg.degrade} on {channels}-channel images: a teacher must do the same job")
    net = frozen(teacher.model, dev, channels_last)
    return net, {"run": str(run), "model": tcfg.model, "params": count_params(net), "weight": cfg.distill_weight}


def evaluate_table(task: Restore, model, images, dev, bf16, plots: Path | None = None, panels: int = 3) -> dict:
    """PSNR / SSIM per image and mean for the model and each classical method, measured here."""
    deg = task.degrade
    shave = deg.scale if deg.scale > 1 else 0
    methods = {"deepix": None, **(baselines_for(deg) if deg.steps or deg.scale == 1 else {"bicubic": bicubic})}
    per_image, seconds = [], {m: 0.0 for m in methods}
    model.eval()
    for i, (name, clean, given) in enumerate(images):
        target = crop_to_scale(clean[None], deg.scale)[0]
        degraded = task.degraded_image(clean, i, given)
        clean_np = target.numpy().transpose(1, 2, 0)
        deg_np = degraded[0].numpy().transpose(1, 2, 0)
        row = {"image": name}
        for m, fn in methods.items():
            t = time.perf_counter()
            if fn is None:
                out = task.restore(model, degraded, dev, bf16)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
            else:
                out = fn(deg_np[..., 0] if deg_np.shape[2] == 1 else deg_np, deg, deg.sigma)
                out = out[..., None] if out.ndim == 2 else out
            seconds[m] += time.perf_counter() - t
            row[m] = {"psnr": psnr(out, clean_np, shave=shave), "ssim": ssim(out, clean_np, shave=shave)}
            if m == "deepix":
                restored = out
        per_image.append(row)
        if plots is not None and i < panels:
            first = next(iter(m for m in methods if m != "deepix"), None)
            restore_panel(deg_np, restored, clean_np, plots / f"panel_{i + 1}.png", name,
                          f"{row['deepix']['psnr']:.2f} dB", scale=deg.scale,
                          input_psnr=row[first]["psnr"] if first else None)
    means = {m: {"psnr": float(np.mean([r[m]["psnr"] for r in per_image])),
                 "ssim": float(np.mean([r[m]["ssim"] for r in per_image])),
                 "seconds_per_image": seconds[m] / max(1, len(per_image))} for m in methods}
    return {"degrade": deg.spec, "methods": means, "per_image": per_image}


class Restorer(Loaded):
    """A trained restoration run: `deepix.load(run).restore("noisy.png")` gives the restored image."""

    task = "restore"

    def __init__(self, run: Path, weights: str = "best"):
        self.run, self.cfg, meta = open_run(run)
        self.channels = meta["channels"]
        if self.cfg.degrade == "pairs":
            self.degrade = Degrade((), "pairs")
            self.degrade.scale = meta["scale"]
        else:
            self.degrade = parse(self.cfg.degrade)
        self.model = build(self.cfg, self.channels, self.degrade.scale)
        load_weights(self.model, self.run / "weights" / f"{weights}.safetensors")
        self.model.eval()
        self.bf16 = machine.use_bf16(self.cfg.precision, torch.device("cpu"))
        self.step = Restore(self.degrade, self.cfg.loss, False, False, self.cfg.tile)

    def restore(self, image) -> torch.Tensor:
        """A path, PIL image, NumPy array (HxW[xC], uint8/uint16/float) or (C,H,W) tensor in; (C,H,W) in [0,1] out."""
        if isinstance(image, (str, Path)):
            x = imgio.read(image, self.channels)[0]
        elif isinstance(image, torch.Tensor):
            x = image.float()
        else:
            a, _ = imgio.as_float(np.asarray(image))
            x = torch.from_numpy(np.ascontiguousarray(imgio.to_channels(a, self.channels).transpose(2, 0, 1)))
        if x.shape[0] != self.channels:
            x = torch.from_numpy(np.ascontiguousarray(
                imgio.to_channels(x.numpy().transpose(1, 2, 0), self.channels).transpose(2, 0, 1)))
        return self.step.restore(self.model, x[None], torch.device("cpu"), self.bf16)[0].clamp(0, 1)

    def predict(self, images, **options):
        """One image in, its restoration out; a list of images in, a list out."""
        if isinstance(images, (list, tuple)):
            return [self.restore(im) for im in images]
        return self.restore(images)

    def predict_files(self, sources: list[str], output: str | None, options: dict) -> None:
        write_restored(self.restore, sources, output)

    def answer(self, images: list, options: dict) -> list[dict]:
        return answer_images(self.restore, images)


def val(run: Path, data: str | None = None) -> dict:
    """Re-measure a run's best weights (and the classical methods) on its test images, or another folder's."""
    r = Restorer(run)
    cfg = r.cfg
    if data:
        cfg.data = data
    images, _ = load_data(cfg)
    return evaluate_table(r.step, r.model, images["test"] or images["val"], torch.device("cpu"), r.bf16)
