"""Detection on real photographs (a composited proxy) from a few hundred labelled images.

The default recipe from scratch against the levers (strong augmentation, mosaic, multi-scale),
a bigger model, and a start from weights learnt on the synthetic `shapes`, each for the same
wall-clock minutes, scored by COCO's evaluator on coins and scenes the training never saw.

    .venv/bin/python benchmarks/detect_photos.py --minutes 10 --threads 1

No labelled real-photo detection set is available offline, so this builds the closest honest
proxy: the 24 real coins of scikit-image's `coins()` photograph, cut out by a classical
segmentation (Sobel elevation map + watershed from intensity markers, the convex hull of each
region as its mask), pasted onto real photographs (../shared/data/denoise/train400) at random
size, rotation, brightness and contrast, some overlapping, then blurred and noised a little.
Coin instances and background photos are split: 16 coins and 300 photos make the train/val
images, the other 8 coins and 100 photos only the test images, so the test asks for coins the
detector has never seen on backgrounds it has never seen. The set (300 train / 60 val / 100
test, 256x256, one class) is written as COCO under --out and trained with the CLI exactly as
a user's folder would be, one run after another. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parent.parent
BACKGROUNDS = ROOT.parent / "shared" / "data" / "denoise" / "train400"
SIDE = 256
COUNTS = {"train": 300, "val": 60, "test": 100}
RECIPES = {  # name -> the flags added to the default command
    "default (fcos-n)": [],
    "levers (fcos-n)": ["--augment", "strong", "--mosaic", "0.5", "--multiscale", "0.25"],
    "levers (fcos-s)": ["--augment", "strong", "--mosaic", "0.5", "--multiscale", "0.25", "--model", "fcos-s"],
    # the nearest offline stand-in for a pretrained backbone: fcos-n first trained on the synthetic
    # `shapes` set for the same minutes (not counted in the budget), its weights as --weights
    "levers + shapes weights (fcos-n)": ["--augment", "strong", "--mosaic", "0.5", "--multiscale", "0.25",
                                         "--weights", "SHAPES"],
}


def cut_coins() -> list[tuple[np.ndarray, np.ndarray]]:
    """Each coin of skimage's coins() photo as (gray crop float, mask float in [0, 1])."""
    from skimage import data, filters, measure, segmentation
    img = data.coins()
    markers = np.zeros(img.shape, np.uint8)
    markers[img < 30], markers[img > 150] = 1, 2     # sure background, sure coin
    coins = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(img), markers) == 2)
    out = []
    for r in measure.regionprops(measure.label(coins)):
        if r.area < 300:
            continue
        y0, x0, y1, x1 = r.bbox
        out.append((img[y0:y1, x0:x1].astype(np.float32), r.image_convex.astype(np.float32)))
    return out


def paste_coin(canvas: np.ndarray, coin, rng, boxes: list, owner: np.ndarray, areas: list) -> None:
    """Put one coin on canvas at a random size, angle, brightness and place, and append its box;
    owner (which coin is on top at each pixel) keeps every coin at least 60% visible."""
    from skimage.transform import rotate
    crop, mask = coin
    angle = rng.uniform(0, 360)
    crop, mask = rotate(crop, angle, resize=True, mode="edge", preserve_range=True), rotate(mask, angle, resize=True)
    side = np.exp(rng.uniform(np.log(24), np.log(110)))          # log-uniform: as many small as large
    ys, xs = np.nonzero(mask > 0.5)
    k = side / max(np.ptp(ys) + 1, np.ptp(xs) + 1)                 # the coin's own extent, not the canvas
    crop, mask = ndi.zoom(crop, k, order=1), ndi.zoom(mask, k, order=1)
    mask = ndi.gaussian_filter(mask, 0.6).clip(0, 1)               # a soft edge, not a cut-out
    ys, xs = np.nonzero(mask > 0.5)
    h, w = mask.shape
    for _ in range(30):
        y, x = rng.integers(0, SIDE - h + 1), rng.integers(0, SIDE - w + 1)
        hidden = np.bincount(owner[y:y + h, x:x + w][mask > 0.5], minlength=len(areas) + 1)[1:]
        left = np.bincount(owner.ravel(), minlength=len(areas) + 1)[1:] - hidden
        if all(left >= 0.6 * np.array(areas)):
            break
    else:
        return
    crop = (crop - crop.mean()) * rng.uniform(0.7, 1.3) + crop.mean() + rng.uniform(-40, 40)
    area = canvas[y:y + h, x:x + w]
    area[:] = mask * crop + (1 - mask) * area
    owner[y:y + h, x:x + w][mask > 0.5] = len(areas) + 1
    areas.append(int((mask > 0.5).sum()))
    boxes.append([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])


def background(path: Path, rng) -> np.ndarray:
    """A random SIDE x SIDE crop of the photo scaled up 1.45-2x, maybe mirrored."""
    img = np.asarray(Image.open(path).convert("L"), np.float32)
    img = ndi.zoom(img, rng.uniform(1.45, 2.0), order=1)
    y, x = rng.integers(0, img.shape[0] - SIDE + 1), rng.integers(0, img.shape[1] - SIDE + 1)
    img = img[y:y + SIDE, x:x + SIDE]
    return img[:, ::-1].copy() if rng.random() < 0.5 else img


def build(out: Path, seed: int = 0) -> dict:
    """Write the composited set as COCO under out; returns the counts."""
    from deepix.data.boxes import DetDataset, DetImage
    from deepix.data.coco import write_coco
    rng = np.random.default_rng(seed)
    coins, photos = cut_coins(), sorted(BACKGROUNDS.glob("*.png"))
    if len(photos) < 400:
        sys.exit(f"expected 400 photos in {BACKGROUNDS}, found {len(photos)}")
    ci, pi = rng.permutation(len(coins)), rng.permutation(len(photos))
    n_coin = round(len(coins) * 2 / 3)
    pools = {"fit": ([coins[i] for i in ci[:n_coin]], [photos[i] for i in pi[:300]]),
             "test": ([coins[i] for i in ci[n_coin:]], [photos[i] for i in pi[300:]])}
    splits = {}
    for split, n in COUNTS.items():
        pool_coins, pool_photos = pools["test" if split == "test" else "fit"]
        images = []
        for k in range(n):
            canvas, boxes, areas = background(pool_photos[rng.integers(len(pool_photos))], rng), [], []
            owner = np.zeros((SIDE, SIDE), np.int64)
            for _ in range(0 if rng.random() < 0.06 else rng.integers(1, 7)):
                paste_coin(canvas, pool_coins[rng.integers(len(pool_coins))], rng, boxes, owner, areas)
            canvas = ndi.gaussian_filter(canvas, rng.uniform(0, 1.0)) + rng.normal(0, rng.uniform(0, 6), canvas.shape)
            px = torch.from_numpy(canvas.clip(0, 255).round().astype(np.uint8))[None]
            images.append(DetImage("", (SIDE, SIDE), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                   torch.zeros(len(boxes), dtype=torch.long), image=px, id=f"{split}_{k:04d}"))
        splits[split] = images
    write_coco(DetDataset("coin-photos", ["coin"], splits), out)
    return {"coins": {"train/val": n_coin, "test": len(coins) - n_coin},
            "boxes": {s: sum(len(im.labels) for im in v) for s, v in splits.items()}}


def train(data: Path, name: str, flags: list[str], a) -> dict:
    """One CLI run; returns its summary.json, its metrics rows and the report's findings."""
    from deepix.tasks.detect.report import findings
    from deepix.report.plots import read_metrics
    where = ["--data", str(data), "--imgsz", str(SIDE)] if data else []   # no data: the built-in shapes
    cmd = [str(Path(sys.executable).parent / "deepix"), "train", "detect", *where, "--time-limit", str(a.minutes),
           "--threads", str(a.threads), "--project", str(a.out / "runs"), "--name", name, "--quiet", *flags]
    print(" ".join(cmd[1:]), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    run = max((a.out / "runs" / "detect").glob(f"{name}*"), key=lambda p: p.stat().st_mtime)
    summary = json.loads((run / "summary.json").read_text())
    rows = read_metrics(run / "metrics.csv")
    return {"run": str(run), "summary": summary, "findings": findings(rows, summary)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5, help="training budget of each run (wall clock)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("/tmp/deepix-detect-photos"), help="data set and runs go here")
    p.add_argument("--recipes", nargs="*", type=int, default=list(range(len(RECIPES))),
                   help="which rows to run (0: default, 1: levers, 2: levers with fcos-s, 3: levers from shapes weights)")
    a = p.parse_args()
    data = a.out / "coin-photos"
    if not (data / "annotations" / "instances_test.json").is_file():
        print(f"writing the data set to {data}: {json.dumps(build(data))}", file=sys.stderr)
    results, shapes = {}, None
    for i, (name, flags) in enumerate(RECIPES.items()):
        if i not in a.recipes:
            continue
        if "SHAPES" in flags:
            shapes = shapes or train(None, "shapes-fcos-n", [], a)
            flags = [f.replace("SHAPES", str(Path(shapes["run"]) / "weights" / "best.safetensors")) for f in flags]
        results[name] = train(data, f"{i}-" + re.sub(r"\W+", "-", name).strip("-"), flags, a)
    if shapes:
        results["(pretraining on shapes)"] = shapes
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(results, a))


def table(results: dict, a) -> str:
    lines = [f"coins composited on photos (300 train / 60 val / 100 test, {SIDE}x{SIDE}, test coins and backgrounds "
             f"unseen), {a.minutes:g} min of training each, {a.threads} thread(s); pycocotools COCOeval on the test "
             "images", "", "| recipe | params | epochs (best) | test mAP@[.5:.95] | mAP@.5 | mAP@.75 | AR@100 | "
             "AP small / medium / large | train img/s |", "|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    shown = {k: v for k, v in results.items() if not k.startswith("(")}
    for name, r in shown.items():
        s = r["summary"]
        t, tr = s["test"], s["train"]
        lines.append(f"| {name} | {s['model']['params'] / 1e6:.1f}M | {tr['epochs_run']} ({tr['best_epoch']}) | "
                     f"{f(t['map'])} | {f(t['map50'])} | {f(t['map75'])} | {f(t.get('mar_100'))} | "
                     f"{f(t.get('map_small'))} / {f(t.get('map_medium'))} / {f(t.get('map_large'))} | "
                     f"{tr['images_per_s']:.0f} |")
    if "(pretraining on shapes)" in results:
        s = results["(pretraining on shapes)"]["summary"]
        lines.append(f"\nshapes weights: fcos-n trained {s['train']['epochs_run']} epochs on `shapes` "
                     f"(test mAP@.5 {s['test']['map50']:.3f}) in {a.minutes:g} more minutes")
    lines.append("")
    for name, r in shown.items():
        for x in r["findings"]:
            lines.append(f"- {name}: **{x['finding']}** ({x['evidence']}); " + "; ".join(x["remedies"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
