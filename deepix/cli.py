"""One entry point: deepix <verb> [task] [options]."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from . import tasks
from .config import Config, make_config, settings_of
from .errors import UserError
from .launch import add_flags as add_launch_flags
from .runs import find_run

HELP = {
    "data": "mnist-5k (default), digits, mnist, fashion-mnist, cifar10, or a folder of class folders",
    "imgsz": "the side images are resized to (0: the data set's own size; images of mixed sizes on disk: "
             "{folder_imgsz})",
    "augment": "augmentation preset: auto (by data set), none, digits, natural, strong",
    "model": "model name (see `deepix models`), tv:NAME or timm:NAME",
    "weights": "start from a local weights file (.safetensors or .pt)",
    "precision": "auto uses bf16 where the CPU/GPU has fast bf16",
    "monitor": "validation metric for best weights and early stopping (val_accuracy, val_loss)",
    "patience": "stop after this many epochs without improvement (0: never)",
    "threads": "CPU threads (0: every core this process may use)",
    "project": "parent folder of runs (runs/<task>/<name>)",
    "name": "run name (default: exp, exp2, ...); an existing run is never overwritten",
    "val_fraction": "share of the data held out for validation (folders without val/)",
    "test_fraction": "share of the data held out for the test metrics (folders without test/)",
    "translate": "largest shift as a fraction of the side (-1: the preset's)",
    "degrees": "largest rotation in degrees (-1: the preset's)",
    "scale": "zoom range 1 +- scale (-1: the preset's)",
    "hflip": "random horizontal flips: auto (the preset's), on, off",
    "brightness": "brightness jitter 1 +- b (-1: the preset's)",
    "contrast": "contrast jitter 1 +- c (-1: the preset's)",
    "strict": "stop at the first corrupt image instead of skipping it",
    "workers": "DataLoader workers for folders too large for memory",
    "activation": "relu, gelu, silu, tanh, sigmoid (built-in models)",
    "kernel_size": "convolution kernel size, odd (built-in models)",
    "width": "channel multiplier (built-in models)",
    "dropout": "dropout rate (-1: the model's default)",
    "epochs": "training epochs",
    "time_limit": "minutes of training: after the first epoch the epochs (and the schedule) are fitted to it",
    "batch": "training batch size",
    "optimizer": "sgd, adam, adamw, rmsprop",
    "lr": "peak learning rate",
    "momentum": "momentum for sgd and rmsprop",
    "nesterov": "Nesterov momentum (sgd)",
    "weight_decay": "weight decay (decoupled for adamw), not applied to biases and norms",
    "schedule": "constant, step (x0.1 at 1/3 and 2/3), cosine, onecycle",
    "warmup_epochs": "linear warm-up length in epochs (may be fractional)",
    "loss": "classify: cross-entropy, focal, mse; restore: l1, mse, charbonnier; generate: hinge, ns",
    "label_smoothing": "label smoothing for cross-entropy",
    "grad_clip": "clip the gradient norm to this (0: off)",
    "channels_last": "auto (classify: on on a CPU and with bf16; detect: on with bf16; measured faster), on, off",
    "sync_bn": "under torchrun on GPUs: BatchNorm statistics over the whole batch of all processes (SyncBatchNorm)",
    "seed": "seeds the split, the initialisation, the batch order and the augmentation",
    "quiet": "no progress bars",
    "mosaic": "detection: probability of a 2x2 mosaic per training image",
    "multiscale": "detection: resize each training batch by up to this fraction (steps of 32 px)",
    "iou": "detection: NMS IoU threshold",
    "conf": "detection: lowest score kept by predict (evaluation scores down to 0.001)",
    "max_det": "detection: most boxes kept per image",
    "z_dim": "generation: GAN latent size",
    "d_lr": "generation: the discriminator's learning rate (0: --lr)",
    "sn": "generation: spectral norm in the discriminator: on, off",
    "gp": "generation: R1 gradient penalty weight on real images (0: off)",
    "diversity": "generation: weight of the mode-seeking term (pairs of latents pushed apart; 0: off)",
    "ema": "generation: moving-average decay of the generator's weights, used for sampling",
    "judge_epochs": "generation: epochs of the classifier whose features measure the samples",
    "judge": "generation: a trained classify run (or another generate run, for its judge) that judges the samples "
             "instead of one trained here: runs that share a judge have FIDs that compare",
    "sample_steps": "generation, ddpm: DDIM steps per sample (25); fewer is faster and coarser",
    "test_samples": "generation: images generated for the final test (FID, KID, precision, recall; default 10,000, "
                    "the field's usual count; fewer is faster and noisier; diffusion samples a fifth)",
    "inception": "generation: also the standard Inception FID on this many samples (pip install deepix[fid])",
    "inception_weights": "generation: a local TorchScript Inception FID network",
    "method": "pretrain: simclr, byol or mae (masked reconstruction)",
    "temperature": "pretrain: the NT-Xent temperature of simclr; classify with --teacher: how soft the targets are (4)",
    "teacher": "classify, restore, detect: a trained run of the same task (same classes) whose outputs the model learns from too",
    "distill_weight": "with --teacher: the share of the loss that follows the teacher (classify 0.9, else 0.5)",
    "mask_ratio": "pretrain: share of the image's patches hidden by mae",
    "init": "start from a pretrain run's encoder (the run folder or its encoder.safetensors); locate: a searcher-cnn run",
    "freeze": "classify: with --init, train only the last layer (a linear probe)",
    "labels_per_class": "classify: keep only this many labelled training images of each class (seeded; 0: all)",
    "baseline": "with --init (classify) or --teacher: also train the same model alone on the same labels (the report compares)",
    "semi": "classify: also learn from the training images whose labels are not used (FixMatch pseudo-labels)",
    "label_fraction": "classify: keep only this share of each class's labelled training images (seeded; 0: all)",
    "bc": "navigate: share of the epochs that clone the optimal planner's moves before PPO (0: PPO alone)",
    "envs": "navigate: environments stepped together in each rollout",
    "rollout": "navigate: steps of each environment per PPO update",
    "ppo_epochs": "navigate: PPO's passes over each rollout",
    "algo": "agents: how they learn by reward after cloning: ppo, or dqn (double DQN with a replay memory)",
    "gamma": "navigate: the discount of future rewards",
    "entropy": "navigate: weight of PPO's entropy bonus (higher keeps exploring)",
    "wall_threshold": "navigate, map images: pixels darker than this (0-255) are walls (-1: Otsu's threshold)",
    "cost": "navigate, map images: read grey levels as the cost of entering each cell (white 1 ... darkest free 10)",
}


def _add_settings(p: argparse.ArgumentParser, task: str) -> None:
    """The settings as flags, with TASK's defaults; those TASK does not read are parsed but not shown,
    so that giving one stops with a line that names the tasks that take it (config.check_used)."""
    defaults = Config(**tasks.get(task).defaults)
    used = settings_of(task)
    for f in fields(Config):
        if f.name in ("task", "extra"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = f.name in used
        words = (tasks.get(task).data_help if f.name == "data" and tasks.get(task).data_help
                 else HELP.get(f.name, "").format(folder_imgsz=tasks.get(task).folder_imgsz))
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=words if shown else argparse.SUPPRESS)
        else:
            p.add_argument(flag, type=type(default), default=None,
                           help=f"{words} (default: {default})".strip() if shown else argparse.SUPPRESS)


def _task_of(argv: list[str]) -> str:
    """The task a `train` or `sweep` command line names (its flags and defaults are that task's)."""
    if argv[:1] == ["pretrain"]:
        return "pretrain"
    if argv[:1] in (["train"], ["sweep"]) and len(argv) > 1 and argv[1] in tasks.names():
        return argv[1]
    return "classify"


def parser(task: str = "classify") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepix", description="Deep learning for images.")
    from . import __version__  # on use: `import deepix` and `deepix --help` stay light
    p.add_argument("--version", action="version", version=f"deepix {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)

    t = sub.add_parser("train", help="train a model and write a run folder with a report")
    t.add_argument("task", nargs="?", default="classify", help=f"{', '.join(tasks.names())} (default classify); the "
                   f"settings and defaults shown are {task}'s; deepix train TASK --help shows TASK's own")
    t.add_argument("--config", help="a config.yaml to start from (flags override it)")
    t.add_argument("--resume", metavar="RUN", help="continue a stopped run, or extend a finished one with --epochs")
    _add_settings(t, task)
    add_launch_flags(t)

    pt = sub.add_parser("pretrain", help="learn an encoder from images without labels (train pretrain)")
    pt.add_argument("--config", help="a config.yaml to start from (flags override it)")
    pt.add_argument("--resume", metavar="RUN", help="continue a stopped run, or extend a finished one with --epochs")
    _add_settings(pt, "pretrain")
    add_launch_flags(pt)

    v = sub.add_parser("val", help="re-evaluate a run's best weights")
    v.add_argument("run")
    v.add_argument("--data", help="evaluate on another data set with the same classes")
    v.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="classify or restore images with a trained run")
    pr.add_argument("run")
    pr.add_argument("source", nargs="+", help="image files or folders")
    pr.add_argument("-o", "--output", help="restoration: the output file (one input) or folder; detection: the "
                    "folder for the images with boxes and predictions.json; classification: the folder for "
                    "predictions.jsonl (one line per image)")
    pr.add_argument("--conf", type=float, default=0.25, help="detection: lowest score kept")
    pr.add_argument("--max-det", type=int, default=100, help="detection: most boxes kept per image")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("--start", help="navigate: the start cell as ROW,COL (default: drawn)")
    pr.add_argument("--goal", help="navigate: the goal cell as ROW,COL (default: drawn)")
    pr.add_argument("--weights", default="best", choices=("best", "last"))
    pr.add_argument("--json", action="store_true", help="one JSON object per image")
    add_launch_flags(pr)

    dn = sub.add_parser("denoise", help="denoise photos with the denoiser that ships inside deepix")
    dn.add_argument("source", nargs="+", help="image files or folders")
    dn.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    dn.add_argument("--sigma", type=float, help="noise level on the 0-255 scale (default: estimated per image)")
    dn.add_argument("--fast", action="store_true", help="one pass instead of averaging the 8 flips/rotations "
                    "(8x faster, about 0.1 dB lower)")

    da = sub.add_parser("data", help="work with data sets on disk")
    dsub = da.add_subparsers(dest="action", required=True)
    cv = dsub.add_parser("convert", help="convert detection (or, with --segment, segmentation) data between "
                         "COCO, YOLO and VOC (images copied)")
    cv.add_argument("src", help="a COCO .json or folder, a YOLO data.yaml or folder, or a VOC folder "
                    "(with --segment also a folder of images/ + masks/)")
    cv.add_argument("dst", help="a new (or empty) folder to write")
    cv.add_argument("--to", required=True, choices=("coco", "yolo", "voc", "masks"),
                    help="masks (images/ + masks/ folder pairs) only with --segment")
    cv.add_argument("--from", dest="fmt", choices=("coco", "yolo", "voc", "masks"),
                    help="the source format (default: told from SRC)")
    cv.add_argument("--segment", action="store_true", help="read SRC as segmentation data (masks, VOC "
                    "SegmentationClass, COCO polygons/RLE, YOLO-seg polygons); --to yolo is lossy (outlines)")

    ge = sub.add_parser("generate", help="make new images with a trained generation run")
    ge.add_argument("run")
    ge.add_argument("-n", type=int, default=64, help="how many images (default 64)")
    ge.add_argument("--class", dest="cls", help="a class name or index (conditional models)")
    ge.add_argument("-o", "--output", default="samples.png", help="a .png for one grid, or a folder for one PNG each")
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--weights", default="best", choices=("best", "last"))

    ex = sub.add_parser("export", help="write a run as an ONNX or TorchScript file, checked against deepix's outputs")
    ex.add_argument("run")
    ex.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    ex.add_argument("-o", "--output", help="the file to write (default: RUN/weights/best.onnx or .torchscript)")
    ex.add_argument("--weights", default="best", choices=("best", "last"))
    ex.add_argument("--data", help="where the run's data now lives (the parity check reads its test images)")
    ex.add_argument("--int8", action="store_true",
                    help="quantise to int8 (ONNX, onnxruntime's static quantisation) and measure what it costs")
    ex.add_argument("--calibrate", type=int, default=256, metavar="N",
                    help="with --int8: the training images that set the activation ranges (default 256)")

    pr = sub.add_parser("prune", help="remove a share of a run's channels, fine-tune, and write a new run beside it")
    pr.add_argument("run")
    pr.add_argument("--ratio", type=float, required=True, help="the share of channels to remove, in (0, 1), e.g. 0.5")
    pr.add_argument("--epochs", type=int, default=5, help="epochs of fine-tuning after the cut (default 5)")
    pr.add_argument("--name", help="the new run's folder name (default: RUN-pruned)")
    pr.add_argument("--threads", type=int, help="CPU threads (default: the run's)")

    sv = sub.add_parser("serve", help="an HTTP API and a web page for trained runs (or exported files)")
    sv.add_argument("runs", nargs="+", help="run folders or exported .onnx / .torchscript files")
    sv.add_argument("--host", default="127.0.0.1", help="another host than 127.0.0.1 needs --api-key")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--api-key", default=os.environ.get("DEEPIX_API_KEY"),
                    help="required on /v1/ as X-API-Key or Authorization: Bearer (default: $DEEPIX_API_KEY)")
    sv.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    sv.add_argument("--max-batch", type=int, default=32, help="images in one forward pass")
    sv.add_argument("--max-upload-mb", type=float, default=10.0)
    sv.add_argument("--max-pixels", type=int, default=40_000_000)

    sw = sub.add_parser("sweep", help="train a grid (or Optuna's choice) of settings and say which pay off")
    sw.add_argument("task", nargs="?", default=None, help=f"{', '.join(tasks.names())} (default classify)")
    sw.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="settings to vary, e.g. kernel=3,5,7 "
                    "activation=relu,gelu optimizer=sgd,adam; with --search random|tpe also ranges: lr=1e-4:1e-2")
    from .sweep import PRESETS  # on use: `import deepix` and `deepix --help` stay light
    sw.add_argument("--preset", choices=list(PRESETS), help="a classic question answered on mnist-5k: "
                    + "; ".join(f"{k}: {v.question}" for k, v in PRESETS.items()))
    sw.add_argument("--search", default="grid", choices=("grid", "random", "tpe"),
                    help="grid: every combination; random or tpe: --trials settings chosen by Optuna, median-pruned")
    sw.add_argument("--trials", type=int, help="random / tpe: how many settings to try")
    sw.add_argument("--seeds", type=int, help="repeat each setting with this many seeds, to measure the noise "
                    "(default 1; presets 2)")
    sw.add_argument("--parallel", type=int, default=0, help="trials at a time (default: the cores this process "
                    "may use); each gets cores / parallel threads")
    _add_settings(sw, task)

    sub.add_parser("models", help="list the registered models")
    r = sub.add_parser("report", help="rewrite a run's report.html")
    r.add_argument("run")
    ad = sub.add_parser("advise", help="overfitting or underfitting, by how much, what to try first; "
                        "--learning-curve: would more data help?")
    ad.add_argument("run")
    ad.add_argument("--learning-curve", action="store_true",
                    help="classify: retrain on shares of the training data and say whether more data would help")
    ad.add_argument("--fractions", default="0.25,0.5,0.75,1",
                    help="shares of the training data for the learning curve (default: 0.25,0.5,0.75,1)")
    ad.add_argument("--deploy", action="store_true",
                    help="measure the run as fp32, bf16 and int8 (and RUN-pruned if there is one) and say which to ship")
    ad.add_argument("--latency-ms", type=float, help="with --deploy: the single-image latency (p95) you need")
    ad.add_argument("--threads", type=int, default=1, help="with --deploy: the CPU threads of the target (default 1)")
    ad.add_argument("--json", action="store_true", help="print the advice as JSON")
    xp = sub.add_parser("explain", help="what a classify or detect run's network looks at: filters, feature maps, "
                        "Grad-CAM (per box for detect), on one HTML page")
    xp.add_argument("run")
    xp.add_argument("images", nargs="+", metavar="IMAGE")
    xp.add_argument("--layer", help="the layer Grad-CAM looks at (default: the last convolution)")
    xp.add_argument("--class", dest="cls", metavar="NAME|INDEX",
                    help="also draw the maps of this class (detect: explain only its boxes)")
    xp.add_argument("-o", "--output", help="folder for explain.html and the PNGs (default: RUN/explain)")
    xp.add_argument("--conf", type=float, default=0.25, help="detect: the least score of a box to explain (0.25)")
    return p


def _settings(args) -> dict:
    """The run's settings among the parsed flags (what api.train takes)."""
    return {k: v for k, v in vars(args).items()
            if k not in ("verb", "task", "config", "resume", "nproc", "nnodes", "rdzv_endpoint", "rdzv_id")
            and v is not None}


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(_task_of(argv)).parse_args(argv)
    if getattr(args, "nproc", None):
        from .engine.distributed import under_torchrun  # on use: `import deepix` and `deepix --help` stay light
        if not under_torchrun():  # start the processes; each runs this same command without --nproc
            from .launch import check_settings, launch  # on use: `import deepix` and `deepix --help` stay light
            if args.verb in ("train", "pretrain") and not args.resume:  # a bad flag: one line, not one per rank
                check_settings(getattr(args, "task", "pretrain"), args.config, _settings(args))
            return launch(argv, args.nproc, args.nnodes, args.rdzv_endpoint, args.rdzv_id, getattr(args, "resume", None))
    from rich.console import Console  # on use: `deepix --help` stays light
    console = Console()
    if args.verb in ("train", "pretrain"):
        from . import api  # on use: `import deepix` and `deepix --help` stay light
        settings = _settings(args)
        result = api.train(getattr(args, "task", "pretrain"), config=args.config, resume=args.resume, **settings)
        if result["report"] is not None:  # under torchrun, rank 0 speaks for all
            tasks.get(make_config(Path(result["run"]) / "config.yaml").task).print_result(result, console)
    elif args.verb == "val":
        from . import api  # on use: `import deepix` and `deepix --help` stay light
        m = api.val(args.run, args.data)
        if args.json:
            print(json.dumps(m))
        else:
            tasks.get(make_config(find_run(args.run) / "config.yaml").task).print_val(m, console)
    elif args.verb == "predict":
        from . import api  # on use: `import deepix` and `deepix --help` stay light
        from .engine import distributed  # on use: `import deepix` and `deepix --help` stay light
        distributed.init()  # under torchrun: each process takes a share of the images
        if distributed.world() > 1:
            from .engine import machine  # on use: `import deepix` and `deepix --help` stay light
            machine.set_threads(0)  # the processes share this machine's cores
        pred = api.load(args.run, args.weights)
        pred.predict_files(args.source, args.output, {"conf": args.conf, "max_det": args.max_det,
                                                      "top_k": args.top_k, "json": args.json,
                                                      "start": args.start, "goal": args.goal})
        distributed.close()
    elif args.verb == "denoise":
        from .tasks.restore.denoise import denoise_files  # on use: `import deepix` and `deepix --help` stay light
        denoise_files(args.source, args.output, args.sigma, ensemble=not args.fast)
    elif args.verb == "data" and getattr(args, "segment", False):
        from .data.seg_write import convert_segmentation  # on use: `import deepix` and `deepix --help` stay light
        ds = convert_segmentation(args.src, args.dst, args.to, args.fmt)
        splits = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
        print(f"converted {ds.info['format']} segmentation -> {args.to}: {len(ds.images())} images, "
              f"{len(ds.classes)} classes, splits {splits} -> {args.dst}")
    elif args.verb == "data":
        if "masks" in (args.to, args.fmt):
            raise UserError("the masks format (images/ + masks/) is segmentation data: add --segment")
        from .data.detection import convert  # on use: `import deepix` and `deepix --help` stay light
        ds = convert(args.src, args.dst, args.to, args.fmt)
        images = ds.images()
        splits = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
        print(f"converted {ds.info['format']} -> {args.to}: {len(images)} images, "
              f"{sum(len(im.labels) for im in images)} boxes, {len(ds.classes)} classes, splits {splits}; "
              f"{ds.info['clipped']} boxes clipped, {ds.info['dropped']} dropped -> {args.dst}")
    elif args.verb == "generate":
        from . import api  # on use: `import deepix` and `deepix --help` stay light
        sampler = api.load(args.run, args.weights)
        if not sampler.makes_images:
            raise UserError(f"{args.run} is a {sampler.task} run; deepix generate takes runs that make images "
                            f"(deepix train generate)")
        paths = sampler.make_files(args.n, args.cls, args.seed, Path(args.output))
        console.print(f"{args.n} images -> {paths[0] if len(paths) == 1 else Path(args.output)}")
    elif args.verb == "prune":
        from .api import prune  # on use: `deepix --help` stays light
        r = prune(args.run, args.ratio, args.epochs, name=args.name, threads=args.threads)
        from .tasks import get
        summary = json.loads((Path(r["run"]) / "summary.json").read_text())
        p, (name, value) = summary["pruned"], get(summary["task"]).main_figure(r["test"])
        was = p["source_figure"]["value"]
        console.print(f"{r['run']}: {p['params_after']:,} parameters ({p['params_after'] / p['params_before']:.0%} of "
                      f"{p['params_before']:,}); {name} {value:.4f}"
                      + (f" against {was:.4f} before pruning" if was is not None else ""))
    elif args.verb == "export":
        from .export import export  # on use: `import deepix` and `deepix --help` stay light
        r = export(args.run, args.format, args.output, args.weights, args.data, args.int8, args.calibrate)
        par = r["parity"]
        if args.int8:
            return int8_lines(r, console)
        # figures the task's own parity check added (a classifier's top1_agreement), as fractions
        agree = "".join(f", {k.replace('_', ' ')} {v:.1%}" for k, v in par.items()
                        if k not in ("inputs", "max_abs_diff", "tolerance", "ok"))
        console.print(f"{r['format']}: {r['file']} ({r['bytes'] / 1e6:.1f} MB, {r['export_seconds']:.1f} s)")
        console.print(f"parity with deepix on {par['inputs']}: max |difference| {par['max_abs_diff']:.2e} "
                      f"(tolerance {par['tolerance']:.0e}){agree}: {'ok' if par['ok'] else 'FAILED'}")
        console.print(f"input: {r['input']}")
        if not par["ok"]:
            return 1
    elif args.verb == "serve":
        from .serve.app import Limits, serve  # on use: `import deepix` and `deepix --help` stay light
        serve(args.runs, args.host, args.port, args.api_key, not args.no_batching,
              Limits(max_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels, max_batch=args.max_batch))
    elif args.verb == "models":
        from rich.table import Table  # on use: `deepix --help` stays light
        from .models import list_models  # on use: `import deepix` and `deepix --help` stay light
        table = Table("model", "task", "parameters", "what it is")
        for name, kind, desc, n in list_models():
            table.add_row(name, "restore (x2)" if kind == "upscale" else kind, f"{n:,}", desc)
        table.caption = ("parameters for gray input: 28x28 with 10 classes (classify), or images in and out (restore); "
                         "detectors: RGB 128x128, 5 classes")
        table.add_row("tv:NAME", "classify", "", "any torchvision classifier, e.g. tv:resnet18 (no download; --weights PATH)")
        table.add_row("timm:NAME", "classify", "", "any timm classifier (pip install timm)")
        table.add_row("tv:NAME", "detect", "", "a torchvision detector, e.g. tv:fcos_resnet50_fpn, "
                      "tv:ssdlite320_mobilenet_v3_large (from scratch; --weights PATH)")
        console.print(table)
    elif args.verb == "sweep":
        from .sweep import sweep  # on use: `import deepix` and `deepix --help` stay light
        given = {k: v for k, v in vars(args).items() if k != "verb" and v is not None}
        _print_sweep(console, sweep(**given))
    elif args.verb == "report":
        from .report.html import write_report  # on use: `import deepix` and `deepix --help` stay light
        console.print(f"report: {write_report(find_run(args.run))}")
    elif args.verb == "advise":
        if args.deploy:
            from .deploy import deploy  # on use: `deepix --help` stays light
            return _print_deploy(console, deploy(args.run, args.latency_ms, args.threads), args.json)
        from .advise import advise, parse_fractions  # on use: `import deepix` and `deepix --help` stay light
        a = advise(args.run, args.learning_curve, parse_fractions(args.fractions))
        if args.json:
            print(json.dumps(a, default=str))
        else:
            _print_advice(console, a)
    elif args.verb == "explain":
        from .explain import explain  # on use: `import deepix` and `deepix --help` stay light
        r = explain(args.run, args.images, args.layer, args.cls, args.output, args.conf)
        for note in r["notes"]:
            print(f"note: {note}")
        for line in r["lines"]:
            print(line)
        print(f"maps at layer {r['layer']}; {len(r['pngs'])} PNGs and the page: {r['page']}")
    return 0


def _print_sweep(console, s: dict) -> None:
    """The trials best first, the advice per setting, the best setting's command, the report."""
    from rich.markup import escape  # on use: `deepix --help` stays light
    from rich.table import Table  # on use: `deepix --help` stays light
    factors = list(s["factors"])
    # narrow enough for an 80-column terminal: short headings, the status only where a trial did not finish
    short = lambda name: (name.replace("val_", "val ").replace("test_", "test ").replace("_size", "")  # noqa: E731
                          .replace("accuracy", "acc"))
    shown = any(r["status"] != "done" for r in s["trials"])
    table = Table("#", *(["status"] if shown else []), *map(short, factors), "seed", short(s["monitor"]),
                  short(s["test_name"]), "s", "ep", title=f"{s['folder']}" + (f": {s['question']}" if s["question"] else ""))
    num = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    for r in s["trials"]:
        table.add_row(str(r["trial"]), *([r["status"]] if shown else []),
                      *[str(r["labels"].get(k, "")) for k in factors], str(r["seed"]), num(r["val"]), num(r["test"]),
                      f"{r['seconds']:.1f}", str(r["epochs"]))
    console.print(table)
    for r in s["trials"]:
        if r["status"] == "failed":
            console.print(f"trial{r['trial']} failed: {escape(r['error'])}")
    a = s["analysis"]
    noise = a["noise"]
    console.print("noise: " + (noise["source"] if noise["sd"] is None else
                               f"sd {noise['sd_shown']:.2g} {noise['unit']} per trial ({noise['source']})"))
    for line in a["lines"]:
        console.print(line, markup=False)
    if a["best"]:
        console.print(a["best"]["text"], markup=False)
    console.print(f"report: {s['report']}")


def _print_advice(console, a: dict) -> None:
    """The verdict and its evidence, the remedies in order with their flags, other findings, the learning curve."""
    from rich.table import Table  # on use: `deepix --help` stays light
    say = lambda text="", style=None: console.print(text, style=style, markup=False, highlight=False)  # noqa: E731
    v = a["verdict"]
    say(f"{a['run']}: {v['verdict']}", "bold")
    say(v["headline"])
    for line in v["evidence"]:
        say(f"  - {line}")
    if v["remedies"]:
        say("what to try, in order:", "bold")
        for i, r in enumerate(v["remedies"], 1):
            say(f"  {i}. {r['remedy']}: {r['flag']}")
            say(f"     {('first, because ' + v['first_because']) if i == 1 and v['first_because'] else r['why']}")
    fit = ("Overfitting", "Underfitting", "Healthy", "Fit:")
    others = [f for f in a["findings"] if not f["finding"].startswith(fit)]
    if others:
        say("also found:", "bold")
        for f in others:
            say(f"  - {f['finding']}: {f['evidence']}")
            if f["remedies"]:
                say(f"    try: {f['remedies'][0]}")
    curve = a.get("learning_curve")
    if curve:
        table = Table("share of the data", "images", "accuracy", "epochs", "seconds", title="learning curve")
        for p in curve["points"]:
            table.add_row(f"{100 * p['fraction']:g}%", f"{p['images']:,}", f"{100 * p['accuracy']:.1f}%",
                          str(p.get("epochs", "")), f"{p['seconds']:.1f}")
        console.print(table)
        say(curve["answer"][0].upper() + curve["answer"][1:])
    say(f"report: {a['report']}")


def _print_deploy(console, d: dict, as_json: bool) -> int:
    """`deepix advise RUN --deploy`: the table and the row to ship."""
    if as_json:
        print(json.dumps(d))
        return 0
    from rich.table import Table
    t = Table("form", "parameters", "file", "p50 / p95 ms", "images/s", d["metric"],
              title=f"{d['run']} on {d['threads']} thread(s)")
    for r in d["rows"]:
        mark = " <-" if r["row"] == d["pick"] else ""
        t.add_row(r["row"] + mark, f"{r['params']:,}", f"{r['bytes'] / 1e6:.2f} MB",
                  f"{r['p50_ms']:.3f} / {r['p95_ms']:.3f}", f"{r['images_per_s']:,.0f}",
                  "-" if r["figure"] is None else f"{r['figure']:.4f}")
    console.print(t)
    console.print(f"ship: {d['pick']} ({d['why']})" if d["pick"] else d["why"])
    if d["missing"]:
        console.print(f"note: {d['missing']}")
    return 0


def int8_lines(r: dict, console) -> int:
    """What `deepix export --int8` prints: the file, and what int8 costs on the test split."""
    par, m = r["parity"], r["parity"]["metric"]
    agree = f", agreement {par['agreement']:.1%}" if "agreement" in par else ""
    console.print(f"int8 onnx: {r['file']} ({r['bytes'] / 1e6:.2f} MB against {r['float_bytes'] / 1e6:.2f} MB in float, "
                  f"{r['export_seconds']:.1f} s, calibrated on {r['calibration']})")
    console.print(f"{m} on {par['images']} {par['split']} images: float {par['float'][m]:.4f}, int8 {par['int8'][m]:.4f}"
                  f"{agree}: {'ok' if par['ok'] else 'TOO MUCH LOST'}")
    if not par["ok"]:
        console.print(f"int8 loses {par['loss']:.4f} of {m}, more than the {par['allowed']} allowed: serve the float "
                      f"file for this run (deepix export without --int8)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    # a file name that is not UTF-8 reaches Python with surrogates in it: print it as the bytes it is (as ls
    # does) rather than fail on a terminal that takes only UTF-8
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        code = run(argv)
    except UserError as e:
        from .engine.distributed import rank  # on use: `import deepix` and `deepix --help` stay light
        print(f"deepix: error: {f'rank {rank()}: ' if rank() else ''}{e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("deepix: interrupted", file=sys.stderr)
        code = 130
    except RuntimeError as e:
        from .engine.distributed import lost_peer, rank  # on use: `import deepix` and `deepix --help` stay light
        if not lost_peer(e):
            raise
        if "DEEPIX_RUN_FILE" not in os.environ:  # under --nproc the launcher names the rank that failed
            print(f"deepix: error: rank {rank()} lost contact with another process, which must have failed: "
                  f"{str(e).splitlines()[0][:160]}", file=sys.stderr)
        code = 1
    sys.exit(code)
