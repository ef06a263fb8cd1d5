#!/usr/bin/env bash
# Quick start 1: set up, then train the default classifier on the built-in mnist-5k digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/deepix train classify "$@"
