"""Denoising on Set12 under the field's protocol: a deepix model trained on train400 at sigma 25
within a fixed CPU budget, against the noisy input, NLM, TV and BM3D measured in the same run,
and the published BM3D and DnCNN-S figures.

    .venv/bin/pip install bm3d                           # optional: BM3D in the table (about 7 s per 256x256 image)
    .venv/bin/python benchmarks/restore.py --minutes 30  # trains, then evaluates; prints a Markdown table
    .venv/bin/python benchmarks/restore.py --run runs/restore/exp3   # evaluate an existing run only

Data: ../shared/data/denoise/train400 (400 gray 180x180 photos; the last 8 held out for
validation) and set12; the protocol (noise drawn with np.random.seed(0) before each image,
noisy input not clipped, PSNR on [0, 1] with the output clipped, SSIM by scikit-image) is
deepix.tasks.restore.degrade.protocol_noise and deepix.tasks.restore.metrics.

Super-resolution and deblurring use the same data with deepix's own seeded degradation of each
Set12 image (the run's test split), scored by the run itself against bicubic (SR) or Wiener and
Richardson-Lucy with the known PSF (deblurring), all measured in the same run:

    .venv/bin/python benchmarks/restore.py --degrade down:2 --minutes 12          # SR x2, edsr-s
    .venv/bin/python benchmarks/restore.py --degrade down:3 --minutes 12          # SR x3
    .venv/bin/python benchmarks/restore.py --degrade blur:1.6+noise:2 --minutes 12  # deblurring, unet-s

SR is scored on the gray Set12 images with `scale` border pixels shaved. For gray images the BT.601
luminance is the image itself mapped to [16, 235] / 255, which shifts every method's PSNR by the same
+1.32 dB; the table gives the plain gray PSNR, so differences between methods are the luminance ones.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "denoise"
PUBLISHED = {"BM3D (published)": {15: 32.37, 25: 29.97, 50: 26.72}, "DnCNN-S (published)": {15: 32.86, 25: 30.44, 50: 27.18}}


def layout(tmp: Path, val: int = 8) -> Path:
    """train400 (less the last `val` for validation) and set12 as the train / val / test folders deepix reads."""
    train400 = sorted((SHARED / "train400").glob("*.png"))
    if not train400:
        sys.exit(f"no images under {SHARED}/train400: this benchmark needs the shared denoising data")
    for split, files in (("train", train400[:-val]), ("val", train400[-val:]), ("test", sorted((SHARED / "set12").glob("*.png")))):
        (tmp / split).mkdir(parents=True)
        for f in files:
            (tmp / split / f.name).symlink_to(f)
    return tmp


def evaluate(run: Path | None, sigmas: list[int], baselines: bool = True, extra: dict | None = None) -> dict:
    """Set12 PSNR / SSIM per sigma for the run, the classical methods, and any `extra` methods
    (name -> fn(noisy HxW float array, degradation, sigma) -> HxW array, as the classical ones)."""
    import torch

    import deepix
    from deepix.tasks.restore import classical, images
    from deepix.tasks.restore.degrade import parse, protocol_noise
    from deepix.tasks.restore.metrics import psnr, ssim
    restorer = deepix.load(run) if run else None
    methods = {"noisy input": classical.identity, "NLM": classical.nlm, "TV": classical.tv} if baselines else {}
    if baselines and classical._has_bm3d():
        methods["BM3D"] = classical.bm3d
    if restorer:
        methods = {f"deepix {restorer.cfg.model}": None, **methods}
    methods = {**(extra or {}), **methods}
    table = {m: {} for m in methods}
    for sigma in sigmas:
        deg = parse(f"noise:{sigma}")
        scores = {m: [] for m in methods}
        seconds = {m: 0.0 for m in methods}
        for path in sorted((SHARED / "set12").glob("*.png")):
            clean = images.read(path, 1)[0][0].double().numpy()
            noisy = protocol_noise(clean, sigma)
            for m, fn in methods.items():
                t = time.perf_counter()
                if fn is None:
                    out = restorer.restore(torch.from_numpy(noisy).float()[None])[0].numpy()
                else:
                    out = fn(noisy, deg, sigma)
                seconds[m] += time.perf_counter() - t
                out = np.clip(out, 0, 1)
                scores[m].append((psnr(out, clean), ssim(out, clean)))
        for m in methods:
            p, s = np.mean(scores[m], axis=0)
            table[m][sigma] = {"psnr": float(p), "ssim": float(s), "seconds_per_image": seconds[m] / len(scores[m])}
        print(f"sigma {sigma} done", file=sys.stderr)
    return table


def markdown(table: dict, sigmas: list[int]) -> str:
    head = "| method | " + " | ".join(f"sigma {s}: PSNR / SSIM" for s in sigmas) + " | s / image (sigma 25) |"
    lines = [head, "|---" * (len(sigmas) + 2) + "|"]
    for m, row in table.items():
        cells = [f"{row[s]['psnr']:.2f} / {row[s]['ssim']:.4f}" if s in row else "-" for s in sigmas]
        sec = f"{row[25]['seconds_per_image']:.2f}" if 25 in row else "-"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {sec} |")
    for m, row in PUBLISHED.items():
        lines.append(f"| {m} | " + " | ".join(f"{row[s]:.2f} / -" for s in sigmas) + " | - |")
    return "\n".join(lines)


def run_table(summary: dict) -> str:
    """The run's own Set12 table: its model against the classical methods measured in the same run."""
    test, train = summary["test"], summary["train"]
    lines = [f"{summary['model']['name']} ({summary['model']['params']:,} parameters), {test['degrade']}, trained "
             f"{train['seconds'] / 60:.1f} min ({train['epochs_run']} epochs, {train['threads']} threads, "
             f"{train['precision']}); Set12 ({len(test['per_image'])} images):", "",
             "| method | PSNR | SSIM | s / image |", "|---|---|---|---|"]
    for m, row in test["methods"].items():
        name = f"deepix {summary['model']['name']}" if m == "deepix" else m
        lines.append(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['seconds_per_image']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30, help="training budget on this machine (default 30)")
    p.add_argument("--model", help="default: edsr-s for down:N, unet-s otherwise")
    p.add_argument("--degrade", default="noise:25", help="noise:25 (the Set12 denoising protocol), down:2, "
                   "down:3, blur:1.6+noise:2, ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for training (0: all)")
    p.add_argument("--run", help="evaluate this run instead of training one")
    p.add_argument("--sigmas", default="15,25,50")
    p.add_argument("--project", default="runs")
    p.add_argument("--settings", default="{}", help="extra deepix.train settings as JSON")
    a = p.parse_args()
    sigmas = [int(s) for s in a.sigmas.split(",")]
    run = Path(a.run) if a.run else None
    model = a.model or ("edsr-s" if a.degrade.startswith("down") else "unet-s")
    if run is None:
        import deepix
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = deepix.train(task="restore", data=str(layout(Path(tmp) / "denoise")), model=model, degrade=a.degrade,
                             epochs=10_000, time_limit=a.minutes, channels=1, project=a.project, threads=a.threads,
                             name="set12-" + a.degrade.replace(":", "").replace("+", "-"), **json.loads(a.settings))
            run = r["run"]
            print(f"trained {run} in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr)
    if a.degrade != "noise:25":  # the run scored itself and the classical methods on Set12
        summary = json.loads((Path(run) / "summary.json").read_text())
        print(run_table(summary))
        return
    table = evaluate(run, sigmas)
    print(markdown(table, sigmas))
    print(json.dumps(table), file=sys.stderr)


if __name__ == "__main__":
    main()
