#!/usr/bin/env bash
# Quick start 2: set up, then run the test suite (offline, a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the browser test drives the served page in the system's Chromium (Debian's package; nothing downloaded by Playwright)
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
# two pytest-xdist workers, each file whole on one (its shared runs trained once there), one torch thread each
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
