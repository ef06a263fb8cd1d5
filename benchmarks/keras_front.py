"""The reference Keras listing under Keras 3 on TensorFlow, Keras 3 on PyTorch, and deepix.keras.

    python benchmarks/keras_front.py                   # sets up the two Keras venvs on first use
    python benchmarks/keras_front.py --torch-epochs 10 --seeds 0 1 2

Same split (mnist-5k: 3,500 train / 500 val / 1,000 test), same threads, same listing (only its
imports differ), each in its own process so that peak memory is its own. Keras on PyTorch gets
its own epoch count (--torch-epochs, default 2) since it can be slow. An epoch's time is
Keras's on_epoch_begin to on_epoch_end, so it includes validation, as in the listing. Prints a
Markdown table. This file runs in all three venvs, so it imports only the standard library at the top.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPLIT = dict(val_fraction=0.1, test_fraction=0.2, seed=0)
VENVS = {"tensorflow": (HERE / ".venv-keras", HERE / "setup_keras_env.sh"),
         "torch": (HERE / ".venv-keras-torch", HERE / "setup_keras_torch_env.sh")}


def run_listing(framework: str, data: Path, epochs: int, threads: int, seed: int, out: Path) -> None:
    """Runs in the framework's own venv; writes timings, accuracy and peak memory as JSON."""
    import numpy as np
    if framework.startswith("deepix"):
        import torch
        from deepix.keras import training
        from deepix.keras.callbacks import Callback
        from deepix.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
        from deepix.keras.models import Sequential
        from deepix.keras.utils import set_random_seed, to_categorical
        training.THREADS = threads
        training.PRECISION = "fp32" if framework == "deepix-fp32" else "auto"  # auto: bf16 on this CPU
        versions = {"torch": torch.__version__}
    else:
        os.environ["KERAS_BACKEND"] = framework
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        if framework == "tensorflow":
            import tensorflow as tf
            # before TensorFlow makes its thread pools, i.e. before any op runs
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            versions = {"tensorflow": tf.__version__}
        else:
            import torch
            torch.set_num_threads(threads)
            versions = {"torch": torch.__version__}
        from keras.callbacks import Callback
        from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
        from keras.models import Sequential
        from keras.utils import set_random_seed, to_categorical
        versions["keras"] = keras.__version__

    class Timer(Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t0)

    set_random_seed(seed)
    d = np.load(data)
    images = lambda name: d[name].astype("float32").reshape(-1, 28, 28, 1) / 255.0  # noqa: E731
    x_train, x_val, x_test = images("x_train"), images("x_val"), images("x_test")
    y_train, y_val = to_categorical(d["y_train"], 10), to_categorical(d["y_val"], 10)

    # the reference listing, verbatim but for epochs and the timing callback
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation='relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(64, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation='softmax'))
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    timer = Timer()
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_data=(x_val, y_val),
                        callbacks=[timer], verbose=0)
    fit_seconds = time.perf_counter() - t0
    probs = model.predict(x_test, batch_size=256, verbose=0)
    from peak import peak_rss_mb
    peak_mb = peak_rss_mb()
    result = {"framework": framework, "versions": versions, "epochs": epochs, "threads": threads,
              "epoch_seconds": timer.seconds, "fit_seconds": fit_seconds,
              "test_accuracy": float(np.mean(probs.argmax(1) == d["y_test"])),
              "val_accuracy": float(history.history["val_accuracy"][-1]),
              "peak_rss_mb": peak_mb}
    out.write_text(json.dumps(result, indent=1))


def write_split(path: Path) -> None:
    import numpy as np

    from deepix.data.builtin import load_builtin
    ds = load_builtin("mnist-5k", **SPLIT)
    np.savez(path, **{f"{a}_{s}": getattr(getattr(ds, s), a).numpy() for s in ("train", "val", "test")
                      for a in ("x", "y")})


def python_for(framework: str) -> str:
    if framework.startswith("deepix"):
        return sys.executable
    venv, setup = VENVS[framework]
    if not (venv / "bin" / "python").exists():
        subprocess.run(["bash", str(setup)], check=True, stdout=subprocess.DEVNULL)
    return str(venv / "bin" / "python")


def measure(framework: str, data: Path, epochs: int, threads: int, seed: int, tmp: Path) -> dict:
    out = tmp / f"{framework}-{seed}.json"
    load = os.getloadavg()[0]
    cmd = [python_for(framework), __file__, "--worker", framework, "--data", str(data), "--epochs", str(epochs),
           "--threads", str(threads), "--seed", str(seed), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{framework} run failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result["load_before"] = load
    return result


def table(rows: list[dict]) -> str:
    """One row per framework: accuracy over the seeds run, epoch times pooled over them."""
    names = {"tensorflow": "Keras {keras} / TensorFlow {tensorflow}", "torch": "Keras {keras} / PyTorch {torch}",
             "deepix": "deepix.keras / PyTorch {torch} (bf16)",
             "deepix-fp32": "deepix.keras / PyTorch {torch} (fp32, as Keras)"}
    lines = ["| run | epochs | seeds | test acc (mean, min-max) | s/epoch (mean) | s/epoch (median) | total s "
             "(mean) | peak MB |", "|---|---|---|---|---|---|---|---|"]
    pooled = {}
    for framework in dict.fromkeys(r["framework"] for r in rows):
        runs = [r for r in rows if r["framework"] == framework]
        seconds = pooled[framework] = [t for r in runs for t in r["epoch_seconds"]]
        accs = [r["test_accuracy"] for r in runs]
        name = names[framework].format(**runs[0]["versions"])
        if framework == "torch" and runs[0]["epochs"] < max(r["epochs"] for r in rows):
            name += " (fewer epochs: its accuracy is not comparable)"
        lines.append(f"| {name} | {runs[0]['epochs']} | {len(runs)} | {statistics.mean(accs):.3f} "
                     f"({min(accs):.3f}-{max(accs):.3f}) | {statistics.mean(seconds):.2f} | "
                     f"{statistics.median(seconds):.2f} | {statistics.mean(r['fit_seconds'] for r in runs):.1f} | "
                     f"{max(r['peak_rss_mb'] for r in runs):.0f} |")
    for ours in ("deepix", "deepix-fp32"):
        if "tensorflow" in pooled and ours in pooled:
            for label, f in (("mean", statistics.mean), ("median", statistics.median)):
                ratio = f(pooled["tensorflow"]) / f(pooled[ours])
                lines.append(f"\nKeras/TF s/epoch / {ours} s/epoch ({label}): {ratio:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs for Keras/TF and deepix.keras")
    parser.add_argument("--torch-epochs", type=int, default=2, help="epochs for Keras on PyTorch (~20 s each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="run each framework once per seed")
    # Keras/TF and deepix.keras back to back, so that both see the machine in the same state
    parser.add_argument("--only", nargs="*", choices=["tensorflow", "torch", "deepix", "deepix-fp32"],
                        default=["tensorflow", "deepix", "deepix-fp32", "torch"])
    parser.add_argument("--json", help="also write every run's numbers here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_listing(args.worker, Path(args.data), args.epochs, args.threads, args.seed, Path(args.out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "split.npz"
        write_split(data)
        rows = []
        for seed in args.seeds:
            for framework in args.only:
                epochs = args.torch_epochs if framework == "torch" else args.epochs
                rows.append(measure(framework, data, epochs, args.threads, seed, tmp))
                print(f"{framework}, seed {seed}: {rows[-1]['fit_seconds']:.1f}s, test acc "
                      f"{rows[-1]['test_accuracy']:.3f} (load average before: {rows[-1]['load_before']:.2f})",
                      file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
