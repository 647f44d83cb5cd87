#!/usr/bin/env bash
# FID against NFE for every (family, solver) pair: the protocol of docs/BENCHMARKS.md
# ("Few-step sampling"). Usage: benchmarks/solver_sweep.sh DIFFUSION_RUN FLOW_RUN
#
# Sampling dominates on a CPU (about 250-800 image-evaluations/s for the 0.63M UNet on 2 cores),
# so the sample count shrinks as the cost grows and every point records its own n: 5,000 samples
# for the multistep solvers at 10 and 20 NFE; 2,000 for the target ratios against dopri5 (whose
# reference run costs 100-150 NFE per sample); 500 for the full grid of every solver, the
# 1000-step ancestral sampler and the check that dopri5's reference tolerance (1e-4) gives the
# FID of a tighter one (1e-5). FIDs are compared only at equal n (FID is biased by n).
# Each point is an ordinary `genbench eval` JSON under RUN/eval/ (reused if present, so an
# interrupted sweep resumes); the curves are in RUN/eval/sweep-n<N>-seed0.json.
# Table: .venv/bin/python benchmarks/sweep_table.py DIFFUSION_RUN FLOW_RUN
set -euo pipefail
DIFF=${1:?diffusion run directory}
FLOW=${2:?flow run directory}
GB=${GENBENCH:-genbench}
DIFF_SOLVERS=ddpm,ddim,euler,heun,midpoint,rk4,heun_ve,karras_sde,dpm++2m,dpm++2s,unipc,euler_maruyama
FLOW_SOLVERS=ddim,euler,heun,midpoint,rk4,heun_ve,karras_sde,dpm++2m,dpm++2s,unipc,euler_maruyama
sweep() { "$GB" eval "$@" --nfe-sweep --metrics fid,kid; }

# 1. the few-step solvers on 5,000 samples
sweep "$DIFF" --solver dpm++2m,unipc --nfe-list 10,20 -n 5000
sweep "$FLOW" --solver dpm++2m --nfe-list 10,20 -n 5000
# 2. the targets: 10 and 20 NFE against dopri5 (rtol = atol = 1e-4) on the same 2,000 seeds
for RUN in "$DIFF" "$FLOW"; do
  sweep "$RUN" --solver dpm++2m,unipc --nfe-list 10,20 -n 2000
  sweep "$RUN" --solver dopri5 --tol 1e-4 -n 2000
done
# 3. every solver of each family over the NFE grid, with dopri5 beside it, n = 500
# (heun, heun_ve, karras_sde and dpm++2s make 2N - 1 evaluations: their grid is the odd counts)
ODD=heun,heun_ve,karras_sde,dpm++2s
sweep "$DIFF" --solver "$DIFF_SOLVERS" --nfe-list 1,2,4,8,10,20 -n 500
sweep "$DIFF" --solver "$ODD" --nfe-list 3,5,9,11,19,21 -n 500
sweep "$FLOW" --solver "$FLOW_SOLVERS" --nfe-list 1,2,4,8,10,20 -n 500
sweep "$FLOW" --solver "$ODD" --nfe-list 3,5,9,11,19,21 -n 500
sweep "$DIFF" --solver dopri5 --tol 1e-4 -n 500
sweep "$FLOW" --solver dopri5 --tol 1e-4 -n 500
# 4. DDPM ancestral sampling up to its full 1000 steps (Ho et al. Algorithm 2), n = 500
sweep "$DIFF" --solver ddpm --nfe-list 50,100,250,1000 -n 500
# 5. is 1e-4 tight enough? dopri5 at its default 1e-5 on the same 500 seeds
sweep "$DIFF" --solver dopri5 -n 500
sweep "$FLOW" --solver dopri5 -n 500
# 6. the rest of the grid where time allows
sweep "$DIFF" --solver dpm++2m,unipc,heun,euler,ddim --nfe-list 16,32,50 -n 500
sweep "$FLOW" --solver dpm++2m,unipc,heun,euler,ddim --nfe-list 16,32,50 -n 500
