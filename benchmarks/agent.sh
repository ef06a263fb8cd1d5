#!/usr/bin/env bash
# The generic agent on the built-in catch: PPO and DQN with the same 1-minute budget, one after the
# other on a quiet machine; each run's test table holds a random agent on the same 100 seeded episodes.
# Usage: bash benchmarks/agent.sh [OUT_FOLDER] [EXTRA FLAGS...]   (about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/deepix-agent}
shift || true
mkdir -p "$out"
py=.venv/bin/python
grep -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo "($(nproc) cores)"
for algo in ppo dqn; do
  /usr/bin/time -f "$algo: %e s wall, %M KB peak" $py -m deepix train agent --algo "$algo" --time-limit 1 \
    --project "$out" --name "$algo" "$@" > "$out/$algo.log" 2>&1 || { tail -5 "$out/$algo.log"; exit 1; }
  tail -1 "$out/$algo.log"
done
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | agent | mean return | success | episode length | epochs | frames | frames/s |")
print("|---|---|---|---|---|---|---|---|")
for name in ("ppo", "dqn"):
    s = json.loads((out / "agent" / name / "summary.json").read_text())
    for who, r in s["test"]["agents"].items():
        if who == "random" and name != "ppo":
            continue
        t = s["train"]
        print(f"| {name} | {who} | {r['return']:.3f} | {r['success']:.1%} | {r['length']:.1f} | {t['epochs_run']} | "
              f"{s.get('frames', 0):,} | {t['frames_per_s']:,.0f} |")
PY
