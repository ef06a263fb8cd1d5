#!/usr/bin/env bash
# Quick start 2: set up, then run the test suite (offline, a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
