"""Train the blind grayscale denoiser that ships inside deepix (deepix/weights/denoise-gray.*).

    .venv/bin/python scripts/train_denoiser.py --minutes 25            # a fresh run
    .venv/bin/python scripts/train_denoiser.py --resume runs/restore/denoiser --minutes 180   # train on, to 180 min in all

Recipe: unet-s (bias-free, so it scales across noise levels), blind Gaussian noise with sigma
drawn per patch from 0-55 (noise:0-55), L1 loss, Adam 1e-3 with cosine decay, 48x48 patches
with flips/rotations from ../shared/data/denoise/train400 (the last 8 images held out for
validation), best weights by validation PSNR. The script copies the best weights and a JSON
card (recipe, command, figures) into the package; the run folder keeps the log and the report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "deepix" / "weights"


def main() -> None:
    import deepix
    from restore import evaluate, layout, markdown  # the benchmark's Set12 protocol
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=25)
    p.add_argument("--resume", help="continue this run folder")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    p.add_argument("--epochs", type=int, help="with --resume: the new total (or --minutes: the new total time)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.resume:
            more = {"epochs": a.epochs} if a.epochs else {"time_limit": a.minutes}
            r = deepix.train(task="restore", resume=a.resume, data=str(layout(Path(tmp) / "denoise")),
                             threads=a.threads, quiet=True, **more)
        else:
            r = deepix.train(task="restore", data=str(layout(Path(tmp) / "denoise")), model="unet-s",
                             degrade="noise:0-55", channels=1, epochs=10_000, time_limit=a.minutes, threads=a.threads,
                             project=str(ROOT / "runs"), name="denoiser", quiet=True)
    run = Path(r["run"])
    table = evaluate(run, [15, 25, 50], baselines=False)  # the benchmark measures the classical methods
    OUT.mkdir(exist_ok=True)
    shutil.copy(run / "weights" / "best.safetensors", OUT / "denoise-gray.safetensors")
    card = {"model": "unet-s", "channels": 1, "degrade": "noise:0-55",
            "trained": datetime.date.today().isoformat(), "epochs": r["train"]["epochs_run"],
            "train_seconds": r["train"]["seconds"], "command": " ".join(sys.argv),
            "recipe": __doc__.split("Recipe: ")[1].split("\n\n")[0].replace("\n", " "),
            "set12": {k: {str(s): v for s, v in row.items()} for k, row in table.items()}}
    (OUT / "denoise-gray.json").write_text(json.dumps(card, indent=1))
    print(markdown(table, [15, 25, 50]))
    print(f"wrote {OUT / 'denoise-gray.safetensors'} and its card; run folder {run}")


if __name__ == "__main__":
    main()
