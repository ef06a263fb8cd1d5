"""Train the blind grayscale denoiser that ships inside deepix (deepix/tasks/restore/weights/denoise-gray.*).

    .venv/bin/python scripts/train_denoiser.py --minutes 25            # a fresh run
    .venv/bin/python scripts/train_denoiser.py --resume runs/restore/denoiser --minutes 180   # train on, to 180 min in all
    .venv/bin/python scripts/train_denoiser.py --evaluate --bm3d   # re-measure the shipped weights beside BM3D

Recipe: RECIPE below. The script copies the best weights by validation and a JSON card (recipe,
the history of the commands that trained it, figures) into the package; the run folder keeps
the log and the report. Set12 is the test split: it is scored once the weights are chosen, and
nothing is chosen by it.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "deepix" / "tasks" / "restore" / "weights"
VAL = 40  # the last 40 of train400's 400 photographs, never trained on and never reported
RECIPE = (f"unet-s (bias-free, so it scales across noise levels), blind Gaussian noise with sigma drawn per patch "
          f"from 0-55 (noise:0-55), L1 loss, Adam 1e-3 with cosine decay to the end of the time budget, 48x48 "
          f"patches with flips/rotations from the first {400 - VAL} photographs of ../shared/data/denoise/train400; "
          f"the weights of the epoch with the best PSNR on the last {VAL} (each with its own fixed blind noise "
          f"level and seed, the same every epoch)")


def main() -> None:
    import deepix
    from restore import evaluate, layout, markdown  # the benchmark's Set12 protocol
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=25)
    p.add_argument("--resume", help="continue this run folder")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    p.add_argument("--bm3d", action="store_true", help="also measure NLM, TV and BM3D (needs `pip install bm3d`)")
    p.add_argument("--evaluate", action="store_true", help="only measure the shipped weights and rewrite the card's figures")
    p.add_argument("--epochs", type=int, help="with --resume: the new total (or --minutes: the new total time)")
    a = p.parse_args()
    if a.evaluate:
        card = json.loads((OUT / "denoise-gray.json").read_text())
    else:
        r = train(deepix, layout, a)
        run = Path(r["run"])
        OUT.mkdir(exist_ok=True)
        shutil.copy(run / "weights" / "best.safetensors", OUT / "denoise-gray.safetensors")
        old = json.loads((OUT / "denoise-gray.json").read_text()) if (OUT / "denoise-gray.json").exists() else {}
        t = r["train"]
        step = {"date": datetime.date.today().isoformat(), "command": " ".join(sys.argv), "threads": a.threads or "all",
                "epochs_in_all": t["epochs_run"], "train_seconds_in_all": round(t["seconds"], 1)}
        name = os.path.relpath(run, ROOT)
        history = old.get("history", []) if a.resume and old.get("run") == name else []
        card = {"model": "unet-s", "channels": 1, "degrade": "noise:0-55", "trained": step["date"],
                "epochs": t["epochs_run"], "train_seconds": round(t["seconds"], 1), "run": name, "recipe": RECIPE,
                "weights": f"best by validation: epoch {t['best_epoch']} of {t['epochs_run']}, val PSNR "
                           f"{t['best']:.3f} dB on the {VAL} held-back train400 photographs",
                "history": history + [step]}
    table = set12(a.bm3d, evaluate)
    card["set12"] = {k: {str(s): v for s, v in row.items()} for k, row in table.items()}
    card["set12_protocol"] = ("deepix.denoise as users call it: blind (sigma neither given nor estimated by the "
                              "net), the DESIGN.md protocol (noise seeded per image, input not clipped)")
    (OUT / "denoise-gray.json").write_text(json.dumps(card, indent=1))
    print(markdown(table, [15, 25, 50]))
    print(f"wrote {OUT / 'denoise-gray.safetensors'} and its card")


def train(deepix, layout, a) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = str(layout(Path(tmp) / "denoise", VAL))
        if a.resume:
            more = {"epochs": a.epochs} if a.epochs else {"time_limit": a.minutes}
            return deepix.train(task="restore", resume=a.resume, data=data, threads=a.threads, quiet=True, **more)
        return deepix.train(task="restore", data=data, model="unet-s", degrade="noise:0-55", channels=1,
                            epochs=10_000, time_limit=a.minutes, threads=a.threads, project=str(ROOT / "runs"),
                            name="denoiser", quiet=True)


def set12(bm3d: bool, evaluate) -> dict:
    """Set12 for the shipped weights through deepix.denoise, with and without the 8-view self-ensemble."""
    import torch

    import deepix
    importlib.import_module("deepix.tasks.restore.denoise")._model = None  # read the weights file afresh

    def shipped(ensemble):
        return lambda noisy, deg, sigma: deepix.denoise(torch.from_numpy(noisy).float()[None],
                                                        ensemble=ensemble)[0][0].numpy()
    return evaluate(None, [15, 25, 50], baselines=bm3d,
                    extra={"deepix.denoise (8-view ensemble)": shipped(True), "deepix.denoise (one pass)": shipped(False)})


if __name__ == "__main__":
    main()
