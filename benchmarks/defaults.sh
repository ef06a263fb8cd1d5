#!/usr/bin/env bash
# The default run of each task, one after another on a quiet machine, with wall time and peak memory,
# then the headline figures from each summary.json; and the CLI's start-up time (median of 7).
# Usage: bash benchmarks/defaults.sh [OUT_FOLDER]   (about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/deepix-defaults}
mkdir -p "$out"
py=.venv/bin/python
grep -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo "($(nproc) cores)"
for cmd in "--help" "train --help" "train detect --help"; do
  $py - "$cmd" <<'PY'
import statistics, subprocess, sys, time
args = sys.argv[1].split()
t = []
for _ in range(7):
    t0 = time.perf_counter(); subprocess.run([sys.executable, "-m", "deepix", *args], capture_output=True, check=True)
    t.append(time.perf_counter() - t0)
print(f"deepix {' '.join(args)}: median {statistics.median(t):.3f} s over 7")
PY
done
for task in classify detect generate pretrain; do
  /usr/bin/time -f "$task: %e s wall, %M KB peak" $py -m deepix train "$task" --project "$out" --name "$task" > "$out/$task.log" 2>&1 \
    || { tail -5 "$out/$task.log"; exit 1; }
  tail -1 "$out/$task.log"
done
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
s = {t: json.loads((out / t / t / "summary.json").read_text()) for t in ("classify", "detect", "generate", "pretrain")}
print(f"classify: test accuracy {s['classify']['test']['accuracy']:.4f}")
print(f"detect: test mAP@.5 {s['detect']['test']['map50']:.3f}, mAP@[.5:.95] {s['detect']['test']['map']:.3f}")
g = s["generate"]["test"]
print(f"generate: FID {g['fid']:.2f}, asked class {g.get('class_accuracy')}, smallest class {min(g['coverage']):.3f}")
few = s["pretrain"]["test"]["few_labels"]
print("pretrain: probe " + ", ".join(f"{k}: {v['pretrained_probe']:.4f}" for k, v in few.items()))
PY
