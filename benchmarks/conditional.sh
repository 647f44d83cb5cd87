#!/usr/bin/env bash
# Issue 17's target on this machine: a class-conditional model against its unconditional twin, each trained
# for MINUTES (default 10) on Fashion-MNIST, scored on 10,000 samples with the domain classifier:
#   1. train fmnist/FAMILY and fmnist/FAMILY-cond (label dropout 0.1) under the same budget
#   2. the conditional run's guidance sweep (w = SCALES, 2,000 samples, labels balanced by seed): FID, IS-style
#      score, precision, recall, class consistency against w, and the best w per metric
#   3. both runs on 10,000 samples (the conditional one at its best-FID w), with the class metrics
# then prints the comparison. Usage: benchmarks/conditional.sh [OUT] [MINUTES] [FAMILY] [SCALES] [SOLVER NFE]
# FAMILY: edm (default), flow, ddpm, meanflow, gan-r3 (a GAN is not guided: its sweep is skipped).
# A finished run is not trained again; an unfinished one is resumed; existing evaluations are reused.
set -euo pipefail
OUT=${1:-runs/conditional}
MIN=${2:-10}
FAMILY=${3:-edm}
SCALES=${4:-1,1.5,2,3,4}
SOLVER=${5:-dpm++2m}
NFE=${6:-10}
GB=${GENBENCH:-.venv/bin/genbench}
PY=${PYTHON:-.venv/bin/python}
SAMPLING=(--solver "$SOLVER" --nfe "$NFE")
[ "$FAMILY" = gan-r3 ] && SAMPLING=()

train() {   # train NAME PRESET
  local name=$1 preset=$2 resume=()
  if [ -f "$OUT/$name/run.json" ] && grep -q '"finished"' "$OUT/$name/run.json"; then return; fi
  [ -d "$OUT/$name" ] && resume=(--resume)
  $GB train "$preset" "train.budget={minutes: $MIN}" --out "$OUT/$name" --no-progress "${resume[@]}"
}

train uncond "fmnist/$FAMILY"
train cond "fmnist/$FAMILY-cond"
$GB eval "$OUT/uncond" -n 10000 --metrics fid,kid,is,prdc,classes "${SAMPLING[@]}" || true
best=1
if [ "$FAMILY" != gan-r3 ]; then
  $GB eval "$OUT/cond" --guidance-sweep "$SCALES" -n 2000 --metrics fid,is,prdc,classes "${SAMPLING[@]}"
  best=$("$PY" - "$OUT/cond" <<'EOF'
import json, sys
from pathlib import Path
sweeps = sorted(Path(sys.argv[1], "eval").glob("guidance-*.json"), key=lambda p: p.stat().st_mtime)
print(json.loads(sweeps[-1].read_text())["best"]["fid"]["w"])
EOF
)
  $GB eval "$OUT/cond" -n 10000 --metrics fid,kid,is,prdc,classes --guidance "$best" "${SAMPLING[@]}" || true
else
  $GB eval "$OUT/cond" -n 10000 --metrics fid,kid,is,prdc,classes || true
fi

"$PY" - "$OUT" <<'EOF'
"""The 10k evaluations of both runs side by side, and the conditional run's guidance sweep."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
for name in ("uncond", "cond"):
    for ev in sorted((out / name / "eval").glob("eval-*n10000*.json")):
        r = json.loads(ev.read_text())
        m = r["metrics"]
        cls = m.get("classes") or {}
        g = ((r["sampling"].get("conditional") or {}).get("guidance") or {}).get("scale")
        print(f"{name:7s} w={g!s:5s} NFE {r['sampling']['nfe']}: FID {m.get('fid', float('nan')):.2f} "
              f"IS {m.get('is', float('nan')):.2f} precision {m.get('precision', float('nan')):.3f} "
              f"recall {m.get('recall', float('nan')):.3f} consistency {cls.get('consistency', float('nan')):.4f} "
              f"class KL {cls.get('kl', float('nan')):.4f}   ({ev.name})")
for sweep in sorted((out / "cond" / "eval").glob("guidance-*.json")):
    rec = json.loads(sweep.read_text())
    print(f"guidance sweep ({rec['n']} samples, {rec['solver']}):")
    for p in rec["points"]:
        print("  " + "  ".join(f"{k} {v:.4g}" for k, v in p.items() if isinstance(v, (int, float))))
    print("  best: " + ", ".join(f"{k} at w {v['w']:g}" for k, v in rec["best"].items()))
EOF
