#!/usr/bin/env bash
# EDM against DDPM (and flow) on Fashion-MNIST under one short training budget, same UNet, same batch:
# each family trains for MINUTES (default 3) on this machine, then 2,000 samples at ~50 NFE are scored
# with the domain FID/KID/precision/recall. Usage: benchmarks/edm_vs_ddpm.sh [OUT] [MINUTES]
set -euo pipefail
OUT=${1:-runs/edm-vs-ddpm}
MIN=${2:-3}
GB=${GENBENCH:-.venv/bin/genbench}
declare -A SOLVER=([ddpm]="--solver ddim --nfe 50" [edm]="--solver heun_ve --nfe 49" [flow]="--solver euler --nfe 50")
for fam in ddpm edm flow; do
  if [ ! -f "$OUT/$fam/run.json" ] || ! grep -q '"finished"' "$OUT/$fam/run.json"; then
    $GB train "fmnist/$fam" "train.budget={minutes: $MIN}" --out "$OUT/$fam" --no-progress
  fi
  # shellcheck disable=SC2086
  $GB eval "$OUT/$fam" -n 2000 --metrics fid,kid,prdc ${SOLVER[$fam]} || true
done
