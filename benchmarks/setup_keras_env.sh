#!/usr/bin/env bash
# Build the separate Keras/TensorFlow environment used only by keras_reference.py.
# Keras and TensorFlow are never dependencies of deepix, so they live in their
# own venv next to this script. Safe to re-run: an existing venv is reused and
# pip skips requirements that are already satisfied.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${KERAS_VENV:-$HERE/.venv-keras}"
PYTHON="${PYTHON:-python3}"

# Pinned so timings stay comparable across runs; override to try other releases.
TF_SPEC="${TF_SPEC:-tensorflow==2.21.0}"
KERAS_SPEC="${KERAS_SPEC:-keras==3.15.1}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install --quiet "$TF_SPEC" "$KERAS_SPEC"

TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -c 'import keras, tensorflow as tf; print(f"keras {keras.__version__} on tensorflow {tf.__version__} in '"$VENV"'")'
