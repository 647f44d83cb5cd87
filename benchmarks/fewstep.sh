#!/usr/bin/env bash
# One- and few-step generators on Fashion-MNIST under one wall-clock budget (MINUTES per family, default 10):
#   flow       fmnist/flow for MINUTES, scored at Euler 50 and DPM-Solver++ 2M 10 (the multi-step reference)
#   meanflow   fmnist/meanflow from scratch for MINUTES, scored at 1 and 2 NFE (its own sampler)
#   teacher    fmnist/flow for 0.7 x MINUTES, then from it
#     mf-tuned fmnist/meanflow (train.init_from) for the other 0.3 x MINUTES, and
#     ect      fmnist/ect (train.init_from) for the other 0.3 x MINUTES; both scored at 1 and 2 NFE
# 2,000 samples each with the domain FID/KID/precision/recall. Usage: benchmarks/fewstep.sh [OUT] [MINUTES]
set -euo pipefail
OUT=${1:-runs/fewstep}
MIN=${2:-10}
GB=${GENBENCH:-.venv/bin/genbench}
TEACH=$(python3 -c "print(round(0.7 * $MIN, 2))")
TUNE=$(python3 -c "print(round($MIN - 0.7 * $MIN, 2))")
done_() { [ -f "$1/run.json" ] && grep -q '"finished"' "$1/run.json"; }
train() {  # train PRESET OUT MINUTES [overrides...]
  local preset=$1 out=$2 min=$3; shift 3
  done_ "$out" || $GB train "$preset" "train.budget={minutes: $min}" "$@" --out "$out" --no-progress
}
score() {  # score RUN SOLVER NFE
  $GB eval "$1" -n 2000 --metrics fid,kid,prdc --solver "$2" --nfe "$3" || true
}
train fmnist/flow "$OUT/flow" "$MIN"
score "$OUT/flow" euler 50
score "$OUT/flow" dpm++2m 10
train fmnist/meanflow "$OUT/meanflow" "$MIN"
score "$OUT/meanflow" meanflow 1
score "$OUT/meanflow" meanflow 2
train fmnist/flow "$OUT/teacher" "$TEACH"
train fmnist/meanflow "$OUT/mf-tuned" "$TUNE" "train.init_from=$OUT/teacher" "nets.model.time_scale=1000"
score "$OUT/mf-tuned" meanflow 1
score "$OUT/mf-tuned" meanflow 2
train fmnist/ect "$OUT/ect" "$TUNE" "train.init_from=$OUT/teacher"
score "$OUT/ect" consistency 1
score "$OUT/ect" consistency 2
