#!/usr/bin/env bash
# locate's goal table on a quiet machine: the default run (12 minutes: DAgger on the oracle, then PPO) on the
# built-in shapes, its test table holding the oracle, whole-image, centre-box and random searchers on the
# same 300 test images; then deepix's own detector trained for the same minutes on the same shapes, for context.
# Usage: bash benchmarks/locate.sh [OUT_FOLDER] [--no-detector]   (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/deepix-locate}
mkdir -p "$out"
py=.venv/bin/python
grep -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo "($(nproc) cores)"
/usr/bin/time -f "locate: %e s wall, %M KB peak" $py -m deepix train locate --project "$out" --name default \
  > "$out/locate.log" 2>&1 || { tail -5 "$out/locate.log"; exit 1; }
tail -1 "$out/locate.log"
if [ "${2:-}" != "--no-detector" ]; then
  /usr/bin/time -f "detect: %e s wall, %M KB peak" $py -m deepix train detect --data shapes --time-limit 12 \
    --project "$out" --name detector > "$out/detect.log" 2>&1 || { tail -5 "$out/detect.log"; exit 1; }
  tail -1 "$out/detect.log"
fi
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
s = json.loads((out / "locate" / "default" / "summary.json").read_text())
print("| searcher | recall@0.5 | AP50 | AP | mean IoU | steps per found object | ms per image |")
print("|---|---|---|---|---|---|---|")
for k, r in s["test"]["searchers"].items():
    spo = "-" if r["steps_per_object"] is None else f"{r['steps_per_object']:.1f}"
    print(f"| {k} | {r['recall50']:.1%} | {r['ap50']:.3f} | {r['ap']:.3f} | {r['mean_iou']:.3f} | {spo} | {r['ms_per_image']:.1f} |")
print(f"training: {s['train']['epochs_run']} epochs, {s.get('frames', 0):,} frames, {s['train']['seconds']:.0f} s")
d = out / "detect" / "detector" / "summary.json"
if d.is_file():
    t = json.loads(d.read_text())["test"]
    print(f"deepix detect, same minutes: mAP@.5 {t['map50']:.3f}, mAP@[.5:.95] {t['map']:.3f} (its own test split of shapes)")
PY
