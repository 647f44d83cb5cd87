#!/usr/bin/env bash
# Issue 16's targets for the stabilised GAN (R3GAN's RpGAN + R1 + R2, DiffAugment / ADA) against the seed-like
# GANs, each trained for MINUTES (default 10) on this machine and scored with `genbench eval`:
#   1. 25-Gaussian grid: toy2d/gan-r3 (packs of 2) vs toy2d/gan (modes, high-quality fraction, reverse KL;
#      2,000 samples)
#   2. stacked Fashion-MNIST (1,000 modes): fmnist/gan-rp-stacked (packs of 4, D ch 64), fmnist/gan-rp with
#      packs of 2 (PacGAN), fmnist/gan-r3, fmnist/gan
#      (DCGAN) (modes, KL; 10,000 samples)
#   3. Fashion-MNIST: fmnist/gan-rp (R3GAN's objective on the DCGAN pair), fmnist/gan-r3 and fmnist/gan
#      (domain FID/KID, precision/recall; 10,000 samples)
#   4. one class (bags, 6,000 images): gan-rp without augmentation and with DiffAugment, gan-r3 without,
#      with ADA and with DiffAugment, and DDPM and flow matching on the same images (FID/KID/precision/recall
#      against the 6,000; 5,000 samples)
# then prints one table of every score and each GAN's last logged D-on-real sign (and ADA's p).
# Usage: benchmarks/gan_stability.sh [OUT] [MINUTES] [TARGETS]   (TARGETS: a subset of "grid stacked fmnist oneclass")
# A finished run is not trained again; an unfinished one is resumed.
set -euo pipefail
OUT=${1:-runs/gan-stability}
MIN=${2:-10}
TARGETS=${3:-grid stacked fmnist oneclass}
GB=${GENBENCH:-.venv/bin/genbench}
PY=${PYTHON:-.venv/bin/python}

train() {   # train NAME PRESET [KEY=VALUE...]
  local name=$1 preset=$2 resume=()
  shift 2
  if [ -f "$OUT/$name/run.json" ] && grep -q '"finished"' "$OUT/$name/run.json"; then return; fi
  [ -d "$OUT/$name" ] && resume=(--resume)
  $GB train "$preset" "train.budget={minutes: $MIN}" "$@" --out "$OUT/$name" --no-progress "${resume[@]}"
}

score() {   # score NAME [EVAL ARGS...]: an existing evaluation is kept
  local name=$1
  shift
  $GB eval "$OUT/$name" "$@" || true
}

for target in $TARGETS; do
  case $target in
    grid)
      train grid-r3 toy2d/gan-r3 data.name=grid
      train grid-gan toy2d/gan data.name=grid
      for r in grid-r3 grid-gan; do score $r -n 2000 --metrics modes,prdc; done ;;
    stacked)
      train stacked-rp fmnist/gan-rp-stacked
      train stacked-rp-pack2 fmnist/gan-rp data.name=stacked_fashion_mnist method.pack=2
      train stacked-r3 fmnist/gan-r3 data.name=stacked_fashion_mnist
      train stacked-dcgan fmnist/gan data.name=stacked_fashion_mnist
      for r in stacked-rp stacked-rp-pack2 stacked-r3 stacked-dcgan; do score $r -n 10000 --metrics modes,fid,prdc; done ;;
    fmnist)
      train fmnist-rp fmnist/gan-rp
      train fmnist-r3 fmnist/gan-r3
      train fmnist-dcgan fmnist/gan
      for r in fmnist-rp fmnist-r3 fmnist-dcgan; do score $r -n 10000 --metrics fid,kid,prdc; done ;;
    oneclass)
      train oneclass-rp fmnist/gan-rp-oneclass
      train oneclass-rp-diffaug fmnist/gan-rp-oneclass-aug
      train oneclass-r3 fmnist/gan-r3-oneclass
      train oneclass-r3-ada fmnist/gan-r3-oneclass-aug
      train oneclass-r3-diffaug fmnist/gan-r3-oneclass-aug "method.augment={kind: diffaug}"
      train oneclass-ddpm fmnist/ddpm "data.classes=[bag]"
      train oneclass-flow fmnist/flow "data.classes=[bag]"
      for r in oneclass-rp oneclass-rp-diffaug oneclass-r3 oneclass-r3-ada oneclass-r3-diffaug; do score $r -n 5000 --metrics fid,kid,prdc; done
      score oneclass-ddpm -n 5000 --metrics fid,kid,prdc --solver dpm++2m --nfe 10
      score oneclass-flow -n 5000 --metrics fid,kid,prdc --solver dpm++2m --nfe 10 ;;
    *) echo "unknown target '$target' (grid, stacked, fmnist, oneclass)" >&2; exit 2 ;;
  esac
done

"$PY" - "$OUT" <<'EOF'
"""One line per run: every scalar score of its evaluations, and the last logged D_sign_real / ada_p."""
import json
import sys
from pathlib import Path

for run in sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "run.json").exists()):
    scores = {}
    for ev in sorted((run / "eval").glob("*.json")) if (run / "eval").exists() else []:
        record = json.loads(ev.read_text())
        scores.update({k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, (int, float))})
    last = {}
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            last.update({k: rec[k] for k in ("D_sign_real", "ada_p") if k in rec})
    shown = " ".join(f"{k}={v:.4g}" for k, v in {**scores, **last}.items())
    print(f"{run.name:22s} {shown}")
EOF
