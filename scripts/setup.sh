#!/usr/bin/env bash
# Creates .venv and installs deepix with its test tools; a second call only checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.deepix-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # the tested versions (constraints.txt), torch and torchvision among them at the builds this machine
  # kind has on disk; pyproject accepts any torch>=2.9,<3 for library users
  .venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
