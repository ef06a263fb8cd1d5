#!/usr/bin/env bash
# Creates .venv and installs deepix with its test tools; a second call only checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.deepix-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch and torchvision pinned here (not in pyproject) to the builds this machine kind has on disk;
  # pyproject accepts any torch>=2.9
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 -e ".[test]"
  echo "$want" > "$stamp"
fi
