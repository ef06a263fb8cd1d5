"""deepix's default segmenter beside segmentation_models_pytorch's U-Net (ResNet-18 encoder, no pretrained
weights) trained by a standard loop: the same built-in shapes (2,000 train / 200 val / 500 test, 128x128), the
same threads and minutes, each in its own process, both scored by the same torchmetrics code
(deepix.tasks.segment.metrics). The peer keeps its best epoch by validation mIoU, as deepix does; the test
split is read once, at the end.

    pip install segmentation-models-pytorch
    python benchmarks/segment.py --minutes 10            # one row each: deepix, smp (bf16), smp (fp32)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peer(minutes: float, bf16: bool, threads: int) -> dict:
    import numpy as np
    import segmentation_models_pytorch as smp
    import torch
    import torch.nn.functional as F

    from deepix.data.masks import load_shapes_masks
    from deepix.tasks.segment.data import SHAPES, tensors
    from deepix.tasks.segment.metrics import PixelCounts

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ds = load_shapes_masks(*SHAPES, size=128, seed=0)
    x, y = tensors(ds.splits["train"], 128)
    vx, vy = tensors(ds.splits["val"], 128)
    tx, ty = tensors(ds.splits["test"], 128)
    k = len(ds.classes)
    model = smp.Unet("resnet18", encoder_weights=None, classes=k)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    dice = smp.losses.DiceLoss("multiclass")

    def figures(xs, ys):
        model.eval()
        counts = PixelCounts(k, 255)
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            for i in range(0, len(xs), 64):
                counts.update(model(xs[i:i + 64].float() / 255).float().argmax(1), ys[i:i + 64])
        model.train()
        return counts.figures(ds.classes)

    t0, best, best_state, epochs, seen = time.time(), -1.0, None, 0, 0
    while time.time() - t0 < minutes * 60:
        order = torch.randperm(len(x))
        for i in range(0, len(x) - 15, 16):
            if time.time() - t0 >= minutes * 60:
                break
            idx = order[i:i + 16]
            xb, yb = x[idx].float() / 255, y[idx].long()
            flip = torch.rand(len(idx)) < 0.5   # the standard loop's augmentation: horizontal flips
            xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = model(xb).float()
            loss = F.cross_entropy(out, yb) + dice(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
        epochs += 1
        v = figures(vx, vy)["miou"]
        if v > best:
            best, best_state = v, {n: t.clone() for n, t in model.state_dict().items()}
    seconds = time.time() - t0
    model.load_state_dict(best_state)
    t1 = time.time()
    f = figures(tx, ty)
    speed = len(tx) / (time.time() - t1)
    params = sum(p.numel() for p in model.parameters())
    return {"row": f"smp U-Net resnet18 ({'bf16' if bf16 else 'fp32'})", "miou": f["miou"],
            "pixel_accuracy": f["pixel_accuracy"], "dice": f["dice"], "val_miou": best, "epochs": epochs,
            "train_images_per_s": seen / seconds, "test_images_per_s": speed, "params": params, "seconds": seconds}


def deepix_row(minutes: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "deepix", "train", "segment", "--time-limit", str(minutes),
                        "--threads", str(threads), "--project", tmp, "--quiet"], check=True)
        run = Path(tmp) / "segment" / "exp1"
        s = json.loads((run / "summary.json").read_text())
    t, tr = s["test"], s["train"]
    return {"row": f"deepix unet-seg ({tr['precision']})", "miou": t["miou"], "pixel_accuracy": t["pixel_accuracy"],
            "dice": t["dice"], "val_miou": tr["best"], "epochs": tr["epochs_run"], "train_images_per_s": tr["images_per_s"],
            "test_images_per_s": t["images_per_s"], "params": s.get("model", {}).get("params"),
            "seconds": tr["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default="deepix,smp-bf16,smp-fp32")
    ap.add_argument("--peer", choices=("bf16", "fp32"), help=argparse.SUPPRESS)   # the peer's own process
    a = ap.parse_args()
    if a.peer:
        print(json.dumps(peer(a.minutes, a.peer == "bf16", a.threads)))
        return
    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    flags = " ".join(f for f in ("amx_bf16", "avx512_bf16") if f in cpu) or "neither amx_bf16 nor avx512_bf16"
    rows = []
    for name in a.rows.split(","):
        if name == "deepix":
            rows.append(deepix_row(a.minutes, a.threads))
        else:
            out = subprocess.run([sys.executable, __file__, "--minutes", str(a.minutes), "--threads", str(a.threads),
                                  "--peer", name.split("-")[1]], check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nshapes 2,000 / 200 / 500 at 128x128, {a.minutes:g} minutes each, {a.threads} threads, host: {flags}\n")
    print("| model | test mIoU | pixel accuracy | mean Dice | epochs | train images/s | test images/s | parameters |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['miou']:.4f} | {r['pixel_accuracy']:.4f} | {r['dice']:.4f} | {r['epochs']} | "
              f"{r['train_images_per_s']:.0f} | {r['test_images_per_s']:.0f} | {r['params'] or '-':,} |")


if __name__ == "__main__":
    main()
