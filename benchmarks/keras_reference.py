"""Keras peer of the deepix MNIST benchmark.

Runs the reference Keras listing unchanged on a prepared split and records
timing, accuracy and memory as JSON. It needs its own environment with Keras 3
on TensorFlow (see setup_keras_env.sh); Keras is never a dependency of deepix.

    python keras_reference.py --data split.npz --epochs 10 --threads 2 --out result.json
"""
import argparse
import json
import os
import sys
import time

from peak import peak_rss_mb

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import keras
from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from keras.models import Sequential

TARGET_ACC = 0.98


class TestAccuracyTimer(keras.callbacks.Callback):
    """Times each epoch and scores the test set after it, off the clock."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.epoch_seconds, self.test_acc, self.eval_seconds = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        # Keras has already run validation by now, so it is part of the epoch,
        # as in the listing; only our extra test-set pass is excluded.
        stop = time.perf_counter()
        self.epoch_seconds.append(stop - self._start)
        probs = self.model.predict(self.x_test, batch_size=256, verbose=0)
        self.test_acc.append(float(np.mean(probs.argmax(axis=1) == self.y_test)))
        self.eval_seconds.append(time.perf_counter() - stop)


def load_split(path):
    data = np.load(path)

    def images(name):
        return data[name].astype("float32").reshape(-1, 28, 28, 1) / 255.0

    return {
        "x_train": images("x_train"), "x_val": images("x_val"), "x_test": images("x_test"),
        "y_train": keras.utils.to_categorical(data["y_train"], 10),
        "y_val": keras.utils.to_categorical(data["y_val"], 10),
        "y_test_labels": data["y_test"].astype("int64"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="npz with x/y_train, x/y_val, x/y_test")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args()

    # Must happen before TensorFlow creates its runtime, i.e. before any op runs.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)

    d = load_split(args.data)
    x_train, y_train, x_val, y_val = d["x_train"], d["y_train"], d["x_val"], d["y_val"]

    # The reference listing, verbatim apart from epochs coming from --epochs.
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

    timer = TestAccuracyTimer(d["x_test"], d["y_test_labels"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs,
              validation_data=(x_val, y_val), callbacks=[timer])
    fit_seconds = time.perf_counter() - start - sum(timer.eval_seconds)

    # Cumulative training time, so setup outside epochs does not count.
    elapsed = np.cumsum(timer.epoch_seconds)
    hits = [i for i, acc in enumerate(timer.test_acc) if acc >= TARGET_ACC]
    result = {
        "framework": "keras",
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "python_version": sys.version.split()[0],
        "threads": args.threads,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": 32,
        "n_train": len(x_train), "n_val": len(x_val), "n_test": len(d["x_test"]),
        "epoch_seconds": timer.epoch_seconds,
        "fit_seconds": fit_seconds,
        "images_per_second": len(x_train) * args.epochs / fit_seconds,
        "test_accuracy_per_epoch": timer.test_acc,
        "final_test_accuracy": timer.test_acc[-1],
        "target_accuracy": TARGET_ACC,
        "seconds_to_target": float(elapsed[hits[0]]) if hits else None,
        "test_eval_seconds_excluded": sum(timer.eval_seconds),
        "peak_rss_mb": peak_rss_mb(),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    to_target = f"{result['seconds_to_target']:.1f}s" if hits else "not reached"
    print(f"keras {keras.__version__} / tf {tf.__version__}, {args.threads} threads: "
          f"{np.mean(timer.epoch_seconds):.2f}s/epoch, {fit_seconds:.1f}s fit, "
          f"{result['images_per_second']:.0f} img/s, final test acc {result['final_test_accuracy']:.4f}, "
          f">= {TARGET_ACC:.0%} at {to_target}, peak {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
