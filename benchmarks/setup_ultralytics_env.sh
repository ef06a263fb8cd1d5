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
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
MAIN_SITE=""
if [ -x "$MAIN_VENV/bin/python" ]; then
    MAIN_SITE="$("$MAIN_VENV/bin/python" -c "
import sysconfig, torch
print(sysconfig.get_paths()['purelib'] if torch.__version__.split('+')[0] == '$TORCH_VERSION' else '')
" 2>/dev/null || true)"
fi
if [ -n "$MAIN_SITE" ]; then
    # before installing ultralytics, so that pip sees torch / torchvision as already there
    echo "$MAIN_SITE" > "$SITE/_torch_from_deepix_venv.pth"
else
    rm -f "$SITE/_torch_from_deepix_venv.pth"
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" torchvision
fi
"$VENV/bin/python" -m pip install --quiet "$ULTRALYTICS_SPEC" opencv-python-headless
"$VENV/bin/python" -c 'import ultralytics, torch; print(f"ultralytics {ultralytics.__version__} on torch {torch.__version__} in '"$VENV"'")'
