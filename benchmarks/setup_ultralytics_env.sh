#!/usr/bin/env bash
# Build the Ultralytics environment used only by detect.py: ultralytics is never a dependency of
# deepix. torch and torchvision are taken from deepix's own venv (a .pth line) when it has the
# pinned versions, so both detectors run on the same PyTorch build. Safe to re-run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ULTRALYTICS_VENV:-$HERE/.venv-ultralytics}"
MAIN_VENV="${MAIN_VENV:-$HERE/../.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
ULTRALYTICS_SPEC="${ULTRALYTICS_SPEC:-ultralytics}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# before installing ultralytics, so that pip sees torch / torchvision as already there
source "$HERE/torch_from_deepix.sh"
if ! link_torch "$VENV" "$MAIN_VENV" "$TORCH_VERSION"; then
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" torchvision
fi
"$VENV/bin/python" -m pip install --quiet "$ULTRALYTICS_SPEC" opencv-python-headless
"$VENV/bin/python" -c 'import ultralytics, torch; print(f"ultralytics {ultralytics.__version__} on torch {torch.__version__} in '"$VENV"'")'
