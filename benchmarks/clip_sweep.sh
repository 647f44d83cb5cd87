#!/usr/bin/env bash
# x0 clipping (none / static / dynamic) at few and many NFE on trained Fashion-MNIST diffusion runs:
# domain FID, KID, precision, recall on N samples (default 2000 at NFE 10, 1000 at ~50).
# Usage: benchmarks/clip_sweep.sh DDPM_RUN EDM_RUN
set -euo pipefail
GB=${GENBENCH:-.venv/bin/genbench}
DDPM=$1 EDM=$2
for clip in none static dynamic; do
  $GB eval "$DDPM" -n 2000 --metrics fid,kid,prdc --solver dpm++2m --nfe 10 --clip $clip --no-floor || true
  $GB eval "$EDM" -n 2000 --metrics fid,kid,prdc --solver dpm++2m --nfe 10 --clip $clip --no-floor || true
  $GB eval "$DDPM" -n 1000 --metrics fid,kid,prdc --solver ddim --nfe 50 --clip $clip --no-floor || true
done
