#!/usr/bin/env bash
# FID against NFE for every (family, solver) pair: the protocol of docs/BENCHMARKS.md
# ("Few-step sampling"). Usage: benchmarks/solver_sweep.sh DIFFUSION_RUN FLOW_RUN
#
# Sampling dominates on a CPU, so the sample count shrinks as the NFE grows, and every point
# records its own n: the target comparisons (10 and 20 NFE against dopri5) use 5,000 samples,
# the full grid 500, and a 1,000-sample check shows that dopri5's reference tolerance (1e-4) gives
# the FID of a tighter one (1e-5). Each point is an ordinary `genbench eval` JSON under RUN/eval/
# (reused if present, so an interrupted sweep resumes); the curves are in RUN/eval/sweep-n*.json.
# Table: .venv/bin/python benchmarks/sweep_table.py DIFFUSION_RUN FLOW_RUN
set -euo pipefail
DIFF=${1:?diffusion run directory}
FLOW=${2:?flow run directory}
GB=${GENBENCH:-genbench}
DIFF_SOLVERS=ddpm,ddim,euler,heun,midpoint,rk4,heun_ve,karras_sde,dpm++2m,dpm++2s,unipc,euler_maruyama
FLOW_SOLVERS=ddim,euler,heun,midpoint,rk4,heun_ve,karras_sde,dpm++2m,dpm++2s,unipc,euler_maruyama
sweep() { "$GB" eval "$@" --nfe-sweep --metrics fid,kid; }

# 1. the targets: 10 and 20 NFE with the multistep solvers, and dopri5 (rtol = atol = 1e-4), n = 5000
for RUN in "$DIFF" "$FLOW"; do
  sweep "$RUN" --solver dpm++2m,unipc --nfe-list 10,20 -n 5000
  sweep "$RUN" --solver dopri5 --tol 1e-4 -n 5000
done
# 2. every solver of each family over the NFE grid (up to 50), n = 500
sweep "$DIFF" --solver "$DIFF_SOLVERS" --nfe-list 1,2,4,8,10,16,20,32,50 -n 500
sweep "$FLOW" --solver "$FLOW_SOLVERS" --nfe-list 1,2,4,8,10,16,20,32,50 -n 500
# 3. DDPM ancestral sampling up to its full 1000 steps (Ho et al. Algorithm 2), n = 500
sweep "$DIFF" --solver ddpm,dpm++2m --nfe-list 100,250,1000 -n 500
sweep "$DIFF" --solver dopri5 --tol 1e-4 -n 500
sweep "$FLOW" --solver dopri5 --tol 1e-4 -n 500
# 4. is 1e-4 tight enough? dopri5 at 1e-4 and 1e-5 and the 10/20-NFE solvers on the same 1000 seeds
for RUN in "$DIFF" "$FLOW"; do
  sweep "$RUN" --solver dpm++2m,unipc --nfe-list 10,20 -n 1000
  sweep "$RUN" --solver dopri5 --tol 1e-4 -n 1000
  sweep "$RUN" --solver dopri5 -n 1000
done
