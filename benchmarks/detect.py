"""deepix's detector against Ultralytics YOLO on the built-in `shapes` set, same images, same
image size, same wall-clock training budget, both scored by the same COCO evaluator.

    .venv/bin/python benchmarks/detect.py --minutes 8          # builds benchmarks/.venv-ultralytics on first use

The shapes set (load_shapes(): 2,000 train / 500 val / 500 test, 128x128) is written once as YOLO
txt with its data.yaml; deepix trains from that folder, Ultralytics from the same data.yaml (its
smallest model from its own model YAML, no pretrained weights, in its own venv). Each trains in its
own process with the same threads for the same minutes (deepix: --time-limit; Ultralytics: its
`time` argument), then predicts the test images at conf 0.001, at most 100 boxes per image. Both
sets of predictions are scored here by deepix.data.coco_eval (pycocotools COCOeval) against the
same ground truth. Prints a Markdown table. This file also runs in the Ultralytics venv, so it
imports only the standard library at the top.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-ultralytics"


def worker(framework: str, data: Path, minutes: float, threads: int, imgsz: int, model: str, out: Path) -> None:
    """Train, then predict the test images; writes predictions, timings and peak memory as JSON."""
    import torch
    torch.set_num_threads(threads)
    test = sorted((data / "images" / "test").iterdir())
    if framework == "deepix":
        import deepix
        t0 = time.perf_counter()
        r = deepix.train(task="detect", data=str(data / "data.yaml"), model=model, imgsz=imgsz, epochs=10_000,
                         time_limit=minutes, threads=threads, test_fraction=0.0, project=str(out.parent / "runs"),
                         quiet=True)
        train_s = time.perf_counter() - t0
        det = deepix.load(r["run"])
        det.detect(test[:16], conf=0.001)  # warm-up
        t0 = time.perf_counter()
        preds = det.detect(test, conf=0.001, max_dets=100)
        infer_s = time.perf_counter() - t0
        # the same work as YOLO's figure below: each epoch's training and its validation (metrics.csv's seconds)
        import csv
        n_train = len(list((data / "images" / "train").iterdir()))
        epoch_s = sum(float(row["seconds"]) for row in csv.DictReader(open(Path(r["run"]) / "metrics.csv")))
        info = {"epochs": r["train"]["epochs_run"],
                "train_images_per_s": round(r["train"]["epochs_run"] * n_train / epoch_s, 1),
                "train_only_images_per_s": r["train"]["images_per_s"],
                "versions": {"deepix": deepix.__version__, "torch": torch.__version__}, "model": model}
        rows = [{"boxes": p["boxes"].tolist(), "scores": p["scores"].tolist(), "labels": p["labels"].tolist()}
                for p in preds]
    else:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        import ultralytics
        from ultralytics import YOLO
        yolo = YOLO(model)
        t0 = time.perf_counter()
        yolo.train(data=str(data / "data.yaml"), imgsz=imgsz, epochs=10_000, time=minutes / 60, batch=16, workers=0,
                   device="cpu", pretrained=False, amp=False, plots=False, project=str(out.parent / "ul"),
                   name="run", exist_ok=True, seed=0, verbose=False)
        train_s = time.perf_counter() - t0
        trainer = yolo.trainer
        best = YOLO(str(trainer.best))
        best.predict([str(p) for p in test[:16]], imgsz=imgsz, conf=0.001, device="cpu", verbose=False)
        t0 = time.perf_counter()
        results = []
        for i in range(0, len(test), 32):
            results += best.predict([str(p) for p in test[i:i + 32]], imgsz=imgsz, conf=0.001, iou=0.7, max_det=100,
                                    device="cpu", verbose=False)
        infer_s = time.perf_counter() - t0
        epochs = trainer.epoch + 1
        n_train = len(list((data / "images" / "train").iterdir()))
        # each epoch's training and validation: results.csv's running "time" where this version writes it
        import csv
        rows_csv = list(csv.DictReader(open(Path(trainer.save_dir) / "results.csv")))
        epoch_s = float(rows_csv[-1]["time"]) if rows_csv and "time" in rows_csv[-1] else train_s
        info = {"epochs": epochs, "train_images_per_s": round(epochs * n_train / epoch_s, 1),
                "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__}, "model": model}
        rows = [{"boxes": r.boxes.xyxy.tolist(), "scores": r.boxes.conf.tolist(),
                 "labels": [int(c) for c in r.boxes.cls.tolist()]} for r in results]
    from peak import peak_rss_mb
    out.write_text(json.dumps({"framework": framework, **info, "train_seconds": train_s,
                               "infer_images_per_s": len(test) / infer_s, "peak_rss_mb": peak_rss_mb(),
                               "files": [p.name for p in test], "predictions": rows}))


def python_for(framework: str) -> str:
    if framework == "deepix":
        return sys.executable
    if not (VENV / "bin" / "python").exists():
        subprocess.run(["bash", str(HERE / "setup_ultralytics_env.sh")], check=True, stdout=subprocess.DEVNULL)
    return str(VENV / "bin" / "python")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=8, help="training budget for each (wall clock)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--deepix-model", default="fcos-n")
    p.add_argument("--yolo-model", default="yolo11n.yaml", help="an Ultralytics model YAML (no weights)")
    p.add_argument("--only", nargs="*", choices=["deepix", "ultralytics"], default=["deepix", "ultralytics"])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a.worker, Path(a.data), a.minutes, a.threads, a.imgsz, a.model, Path(a.out))
        return

    import torch

    from deepix.data.shapes import load_shapes
    from deepix.data.yolo import read_yolo, write_yolo
    from deepix.data.coco_eval import evaluate
    ds = load_shapes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "shapes"
        write_yolo(ds, data)
        # the ground truth as both detectors read it (after YOLO's normalised coordinates)
        truth = {Path(im.file).name: im for im in read_yolo(data / "data.yaml").splits["test"]}
        for framework in a.only:
            out = Path(tmp) / f"{framework}.json"
            model = a.deepix_model if framework == "deepix" else a.yolo_model
            cmd = [python_for(framework), __file__, "--worker", framework, "--data", str(data), "--minutes",
                   str(a.minutes), "--threads", str(a.threads), "--imgsz", str(a.imgsz), "--model", model,
                   "--out", str(out)]
            print(f"{framework}: training {model} for {a.minutes} min ...", file=sys.stderr)
            done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{framework} failed:\n{done.stderr[-4000:]}")
            r = json.loads(out.read_text())
            preds = [{k: torch.tensor(v).reshape(-1, 4) if k == "boxes" else torch.tensor(v) for k, v in p.items()}
                     for p in r["predictions"]]
            score = evaluate([truth[f] for f in r["files"]], preds, ds.classes, 100)
            rows.append({**{k: v for k, v in r.items() if k not in ("predictions", "files")}, **{k: score[k] for k in (
                "map", "map50", "map75", "map_small", "map_medium", "evaluator")}})
            print(f"{framework}: mAP {score['map']:.3f}, mAP50 {score['map50']:.3f}", file=sys.stderr)
    print(table(rows, a))
    print(json.dumps(rows), file=sys.stderr)


def table(rows: list[dict], a) -> str:
    lines = [f"shapes (2,000 train / 500 val / 500 test, {a.imgsz}x{a.imgsz}), {a.minutes:g} min of training each, "
             f"{a.threads} threads; scored by {rows[0]['evaluator']} on the 500 test images (max 100 per image)", "",
             "| detector | epochs | mAP@[.5:.95] | mAP@.5 | mAP@.75 | AP small | AP medium | train+val img/s | "
             "inference img/s | peak MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = " ".join(f"{k} {v}" for k, v in r["versions"].items() if k != "torch") + f" ({r['model']})"
        lines.append(f"| {name} | {r['epochs']} | {r['map']:.3f} | {r['map50']:.3f} | {r['map75']:.3f} | "
                     f"{r['map_small'] or 0:.3f} | {r['map_medium'] or 0:.3f} | {r['train_images_per_s']:.0f} | "
                     f"{r['infer_images_per_s']:.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
