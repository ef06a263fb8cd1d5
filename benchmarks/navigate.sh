#!/usr/bin/env bash
# navigate's goal table and its levers, one run after another on a quiet machine, each with the same
# 12-minute budget (the default --time-limit): the default (cloning the planner for half the epochs,
# then PPO), cloning alone (--bc 1), PPO alone (--bc 0), the value iteration network (--model vin), and
# double DQN alone (--bc 0 --algo dqn). ROWS="ppo-only dqn-only" runs only those.
# Every run's test table holds the optimal planner, greedy and random walkers on the same 500 episodes.
# Usage: bash benchmarks/navigate.sh [OUT_FOLDER] [EXTRA FLAGS...]   (about 50 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/deepix-navigate}
shift || true
mkdir -p "$out"
py=.venv/bin/python
grep -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo "($(nproc) cores)"
run() {  # NAME FLAGS...
  local name=$1; shift
  /usr/bin/time -f "$name: %e s wall, %M KB peak" $py -m deepix train navigate --project "$out" --name "$name" "$@" \
    > "$out/$name.log" 2>&1 || { tail -5 "$out/$name.log"; exit 1; }
  tail -1 "$out/$name.log"
}
rows=${ROWS:-default bc-only ppo-only vin dqn-only}
declare -A flags=([default]="" [bc-only]="--bc 1" [ppo-only]="--bc 0" [vin]="--model vin" [dqn-only]="--bc 0 --algo dqn")
for name in $rows; do
  # shellcheck disable=SC2086
  run "$name" ${flags[$name]} "$@"
done
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | walker | success | SPL | cost / optimal | collisions | ms per path | epochs | PPO frames |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("default", "bc-only", "ppo-only", "vin", "dqn-only"):
    if not (out / "navigate" / name / "summary.json").is_file():
        continue
    s = json.loads((out / "navigate" / name / "summary.json").read_text())
    t, cfg = s["test"], s["train"]
    for w, r in t["walkers"].items():
        if w != "agent" and name != next(n for n in ("default", "bc-only", "ppo-only", "vin", "dqn-only")
                                         if (out / "navigate" / n / "summary.json").is_file()):
            continue
        ratio = "-" if r["cost_ratio"] is None else f"{r['cost_ratio']:.3f}"
        print(f"| {name} | {w} | {r['success']:.1%} | {r['spl']:.3f} | {ratio} | {r['collisions']:.2f} | "
              f"{r['ms_per_path']:.2f} | {cfg['epochs_run']} | {s.get('frames', 0):,} |")
PY
