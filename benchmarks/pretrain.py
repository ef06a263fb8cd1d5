"""Learning without labels on mnist-5k: each pretraining method in the same wall-clock budget, its features
read by k-NN and a linear probe with 1, 10 and 100 labels per class, and fine-tuned on 10 labels per class,
against the same network trained from scratch on the same labels with the same augmentation.

    python benchmarks/pretrain.py --minutes 10 --threads 2 [--methods simclr byol mae] [--semi]

Prints two markdown tables; the figures go to docs/benchmarks.md."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def deepix(out: Path, name: str, *args) -> dict:
    """One CLI run named `name` under `out`; its summary.json."""
    subprocess.run([sys.executable, "-m", "deepix", *map(str, args), "--name", name, "--project", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    task = "pretrain" if args[0] == "pretrain" else args[1]
    return json.loads((out / task / name / "summary.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10.0, help="pretraining budget per method")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=["simclr", "byol", "mae"], choices=["simclr", "byol", "mae"])
    p.add_argument("--semi", action="store_true", help="also FixMatch on 10 labels per class (from scratch and "
                   "from the first method's encoder; about 7x a fine-tune's compute)")
    p.add_argument("--no-scratch", action="store_true", help="skip the from-scratch rows (measured in another run)")
    p.add_argument("--out", default="")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="deepix-pretrain-bench-"))
    common = ["--threads", a.threads]
    rows, first = [], None
    for method in a.methods:
        s = deepix(out, method, "pretrain", "--method", method, "--time-limit", a.minutes, *common)
        run = out / "pretrain" / method
        first = first or run
        fl = s["test"]["few_labels"]
        ft = deepix(out, f"ft-{method}", "train", "classify", "--init", run, "--labels-per-class", 10,
                    "--no-baseline", *common)
        rows.append([method, f"{s['train']['epochs_run']}", f"{s['train']['seconds'] / 60:.1f}"]
                    + [f"{fl[k]['pretrained_knn']:.1%}" for k in ("1", "10", "100")]
                    + [f"{fl[k]['pretrained_probe']:.1%}" for k in ("1", "10", "100")]
                    + [f"**{ft['test']['accuracy']:.1%}**", f"{ft['train']['seconds']:.0f} s"])
        if method == a.methods[0]:
            rows.append(["same network untrained", "", ""] + [f"{fl[k]['random_knn']:.1%}" for k in ("1", "10", "100")]
                        + [f"{fl[k]['random_probe']:.1%}" for k in ("1", "10", "100")] + ["", ""])
    scratch = {} if a.no_scratch else {
        k: deepix(out, f"scratch-{k}", "train", "classify", "--labels-per-class", k, *common) for k in (1, 10, 100)}
    semi = {}
    if a.semi:
        semi["scratch"] = deepix(out, "semi-scratch", "train", "classify", "--labels-per-class", 10, "--semi", *common)
        semi[a.methods[0]] = deepix(out, f"semi-{a.methods[0]}", "train", "classify", "--labels-per-class", 10, "--semi",
                                    "--init", first, "--no-baseline", *common)

    print(f"\nmnist-5k: 3,500 training images without labels, {a.threads} threads, {a.minutes:g} min of pretraining "
          f"each; accuracy on the 1,000 test digits; runs in {out}\n")
    head = ["method", "epochs", "pretrain min", "k-NN 1/class", "k-NN 10", "k-NN 100", "probe 1/class", "probe 10",
            "probe 100", "fine-tune 10/class", "fine-tune time"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nfrom scratch (vgg7, the same augmentation and recipe as the fine-tunes):\n")
    print("| labels per class | accuracy | time |\n|---|---|---|")
    for k, s in scratch.items():
        print(f"| {k} | {s['test']['accuracy']:.1%} | {s['train']['seconds']:.0f} s |")
    for name, s in semi.items():
        print(f"| 10, with --semi (FixMatch), {'from scratch' if name == 'scratch' else 'from the ' + name + ' encoder'} "
              f"| {s['test']['accuracy']:.1%} | {s['train']['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
