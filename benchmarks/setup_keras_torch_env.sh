#!/usr/bin/env bash
# Build the Keras-on-PyTorch environment (KERAS_BACKEND=torch) used only by keras_front.py.
# Keras is never a dependency of deepix, so it lives in its own venv next to this script.
# torch is taken from deepix's own venv when that has the pinned version: the same build
# deepix runs on, and no second multi-gigabyte download. Safe to re-run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${KERAS_TORCH_VENV:-$HERE/.venv-keras-torch}"
MAIN_VENV="${MAIN_VENV:-$HERE/../.venv}"
PYTHON="${PYTHON:-python3}"

# Pinned so timings stay comparable across runs; override to try other releases.
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
KERAS_SPEC="${KERAS_SPEC:-keras==3.15.1}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

# Keras first, so that its own dependencies land in this venv rather than being taken from deepix's
"$VENV/bin/python" -m pip install --quiet "$KERAS_SPEC"

source "$HERE/torch_from_deepix.sh"
if ! link_torch "$VENV" "$MAIN_VENV" "$TORCH_VERSION"; then
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
fi

KERAS_BACKEND=torch "$VENV/bin/python" -c 'import keras, torch; print(f"keras {keras.__version__} on torch {torch.__version__} in '"$VENV"'")'
