"""Generation on mnist-5k: the default conditional GAN, the unconditional DCGAN and the small diffusion
model, and the DCGAN of PyTorch's examples (written here from its published architecture and settings),
each trained in the same wall-clock budget, judged by the same classifier's features.

    python benchmarks/generate.py --minutes 10 --threads 2 [--models cgan dcgan ddpm pytorch-dcgan] [--inception 1000]
    python benchmarks/generate.py --models dcgan pytorch-dcgan-32 --minutes 10 --peer-minutes 15 --every 3

Prints a markdown table (FID, KID, precision, recall, smallest class share, asked-class accuracy, the
real-vs-real floor, epochs, wall time); the figures go to docs/benchmarks.md."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"cgan": [], "dcgan": [], "ddpm": ["--lr", "0.001", "--batch", "128"]}
PEER = "pytorch-dcgan"
PEER32 = "pytorch-dcgan-32"   # the same recipe one layer shallower, at 32x32: near MNIST's own 28x28


def peer_nets(nz: int = 100, ngf: int = 64, ndf: int = 64, nc: int = 1, size: int = 64):
    """The DCGAN of pytorch/examples (dcgan/main.py) at 64x64: transposed convolutions in G, strided ones in D,
    batch norm in both, N(0, 0.02) initialisation. At size 32 G and D lose their widest layer (4x4 -> 32x32 in
    three doublings), as DCGANs for 32x32 images are usually built."""
    from torch import nn

    def up(a, b, first=False):
        return [nn.ConvTranspose2d(a, b, 4, 1 if first else 2, 0 if first else 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]

    def down(a, b, norm=True):
        return [nn.Conv2d(a, b, 4, 2, 1, bias=False)] + ([nn.BatchNorm2d(b)] if norm else []) + [nn.LeakyReLU(0.2, True)]

    if size == 64:
        g = nn.Sequential(*up(nz, ngf * 8, True), *up(ngf * 8, ngf * 4), *up(ngf * 4, ngf * 2), *up(ngf * 2, ngf),
                          nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
        d = nn.Sequential(*down(nc, ndf, False), *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4), *down(ndf * 4, ndf * 8),
                          nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    else:
        g = nn.Sequential(*up(nz, ngf * 4, True), *up(ngf * 4, ngf * 2), *up(ngf * 2, ngf),
                          nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
        d = nn.Sequential(*down(nc, ndf, False), *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4),
                          nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return g, d


def run_peer(minutes: float, threads: int, judge_run: Path, grid: Path, samples: int = 10_000, size: int = 64,
             every: float = 0.0) -> dict:
    """Trains the examples' DCGAN as its script does (Adam 2e-4, betas (0.5, 0.999), BCE, batch 64, 64x64,
    fp32) for the budget on the same training split, then scores it like deepix's runs. `every` minutes of
    training it is also scored on 2,000 samples (time not counted in the budget): its curve, to see whether
    the budget lets it converge."""
    import torch
    import torch.nn.functional as F
    from deepix import Predictor
    from deepix.data.builtin import load_builtin
    from deepix.tasks.generate.metrics import Evaluator
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ds = load_builtin("mnist-5k", 0.1, 0.2, 0)
    x = F.interpolate(ds.train.x.float().div(255), size=size, mode="bilinear", antialias=True) * 2 - 1
    g, d = peer_nets(size=size)
    ev = Evaluator(Predictor(judge_run).model, ds.test.x.float().div(255), 10)
    curve, next_score, scoring = [], every * 60, 0.0

    def score(n: int) -> float:
        with torch.no_grad():
            fake = torch.cat([g(torch.randn(500, 100, 1, 1)) for _ in range(n // 500)])
        return ev(F.interpolate(fake.add(1).div(2), size=28, mode="bilinear", antialias=True).clamp(0, 1))["fid"]
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce, t0, epochs = torch.nn.BCELoss(), time.perf_counter(), 0
    done = False
    while not done:
        for i in torch.randperm(len(x)).split(64):
            trained = time.perf_counter() - t0 - scoring
            if every and trained >= next_score:
                t2 = time.perf_counter()
                curve.append((round(trained / 60, 1), round(score(2000), 2)))
                print(f"the DCGAN peer at {size}x{size}: FID {curve[-1][1]} after {curve[-1][0]} min", file=sys.stderr, flush=True)
                scoring += time.perf_counter() - t2
                next_score += every * 60
            if trained >= minutes * 60:  # the budget ends mid-epoch, as --time-limit's nearly does
                done = True
                break
            real, z = x[i], torch.randn(len(i), 100, 1, 1)
            fake = g(z)
            loss_d = bce(d(real).view(-1), torch.ones(len(i))) + bce(d(fake.detach()).view(-1), torch.zeros(len(i)))
            od.zero_grad()
            loss_d.backward()
            od.step()
            loss_g = bce(d(fake).view(-1), torch.ones(len(i)))
            og.zero_grad()
            loss_g.backward()
            og.step()
        epochs += 0 if done else 1
    train_s = time.perf_counter() - t0 - scoring
    t1 = time.perf_counter()  # sampled in training mode (batch statistics), as the examples' script draws its grids
    with torch.no_grad():
        fake = torch.cat([g(torch.randn(500, 100, 1, 1)) for _ in range(samples // 500)])
    sample_s = time.perf_counter() - t1
    fake = F.interpolate(fake.add(1).div(2), size=28, mode="bilinear", antialias=True).clamp(0, 1)
    from deepix.tasks.generate.pictures import save_grid
    save_grid(fake[:100], grid, nrow=10)
    m = ev(fake)
    m.update(fid_floor=ev.floor()["fid"], samples=samples, epochs=epochs, train_s=train_s,
             samples_per_s=samples / sample_s, curve=curve)
    return m


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per model (the judge and tests come on top)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=[*SETTINGS, PEER], choices=[*SETTINGS, PEER, PEER32])
    p.add_argument("--peer-minutes", type=float, default=0, help="the peers' budget (default: --minutes)")
    p.add_argument("--every", type=float, default=0, help="score the peers every this many minutes of training")
    p.add_argument("--inception", type=int, default=0, help="also Inception FID on this many samples")
    p.add_argument("--out", default="")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="deepix-generate-bench-"))
    rows = []
    for model in [m for m in a.models if m not in (PEER, PEER32)]:
        cmd = [sys.executable, "-m", "deepix", "train", "generate", "--model", model, "--epochs", "1000",
               "--time-limit", str(a.minutes), "--threads", str(a.threads), "--project", str(out), "--name", model,
               "--quiet", "--inception", str(a.inception), *SETTINGS[model]]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        shutil.copy(out / "generate" / model / "plots" / "samples.png", out / f"grid-{model}.png")
        s = json.loads((out / "generate" / model / "summary.json").read_text())
        t, tr = s["test"], s["train"]
        rows.append([model, f"{t['fid']:.2f}", f"{t['fid_floor']:.2f}", f"{t['kid']:.4f}", f"{t['precision']:.3f}",
                     f"{t['recall']:.3f}", f"{t['coverage_min']:.1%}",
                     "-" if t["class_accuracy"] is None else f"{t['class_accuracy']:.1%}",
                     "-" if t["inception_fid"] is None else f"{t['inception_fid']:.1f} ({t['inception_samples']})",
                     f"{t['samples']:,}", f"{t['samples'] / t['sample_seconds']:,.0f}", str(tr["epochs_run"]),
                     f"{tr['seconds'] / 60:.1f}", f"{wall / 60:.1f}"])
    for peer, size in ((PEER, 64), (PEER32, 32)):
        if peer not in a.models:
            continue
        judges = sorted(out.glob("generate/*/classify/classifier"))
        if not judges:
            sys.exit("the PyTorch-examples DCGAN is judged by a deepix run's classifier: include a deepix model")
        t0 = time.perf_counter()
        m = run_peer(a.peer_minutes or a.minutes, a.threads, judges[0], out / f"grid-{peer}.png", size=size,
                     every=a.every)
        rows.append([peer, f"{m['fid']:.2f}", f"{m['fid_floor']:.2f}", f"{m['kid']:.4f}", f"{m['precision']:.3f}",
                     f"{m['recall']:.3f}", f"{m['coverage_min']:.1%}", "-", "-", f"{m['samples']:,}",
                     f"{m['samples_per_s']:,.0f}", str(m["epochs"]), f"{m['train_s'] / 60:.1f}",
                     f"{(time.perf_counter() - t0) / 60:.1f}"])
        if m["curve"]:
            print(f"{peer}: FID on 2,000 samples by minutes of training: "
                  + ", ".join(f"{t:g} min {f:.2f}" for t, f in m["curve"]), file=sys.stderr)
    head = ["model", "FID (judge)", "floor", "KID", "precision", "recall", "smallest class", "asked class",
            "Inception FID (n)", "samples", "samples/s", "epochs", "train min", "wall min"]
    print(f"\nmnist-5k, {a.threads} threads, {a.minutes:g} min of training each; runs and grid-MODEL.png in {out}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
