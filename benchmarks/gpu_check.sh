#!/usr/bin/env bash
# GPU check for genbench, sized for under 5 minutes on one H100 (the step limits add up to 300 s). Installs nothing and touches the
# network never; writes only under its output folder (--out DIR, else runs/gpu-check-<time>; with
# $OUT set, as on a lent GPU machine, a folder under /tmp whose logs and tables are copied to $OUT
# at the end as at most 8 files), which must be empty or new. Steps, each with its own time limit:
#   1. environment: GPU, driver, torch/CUDA versions, peers present (env.txt)
#   2. the CUDA tests: pytest tests/test_cuda.py (pytest_cuda.log)
#   3. throughput of fmnist/ddpm and cifar10/ddpm in bf16 beside the installed peers
#      (throughput.md, throughput.json; peers not installed are skipped, `make bench-deps` adds them)
#   4. a short training run of the CIFAR-10 DDPM preset (35.7M UNet, bf16, batch 128) on files in
#      the official CIFAR-10 format filled with random pixels (CIFAR-10 cannot be downloaded there),
#      then `genbench sample` from it (cifar_train.log, cifar-run/)
#   5. with --more only (step limits 40 s + 200 s more): cifar10/ddpm's loop in NCHW instead of channels-last
#      (throughput_nchw.md; GroupNorm's CUDA kernels may not keep channels-last), and step 3 for
#      cifar10/ddpm with torch.compile on every row (throughput_compiled.md, .json)
# A summary (summary.txt) gives each step's status and seconds; the exit code is non-zero if a step
# failed. --cpu-dry-run runs the same steps on the CPU with tiny sizes (to test this script on a
# machine without a GPU); the CUDA tests then run on the CPU through GENBENCH_CUDA_TEST_DEVICE=cpu.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --cpu-dry-run --out /tmp/gpu-dry
#   bash benchmarks/gpu_check.sh --more          # + the NCHW and compiled throughput
# Without network on the GPU machine, fetch the missing packages first: benchmarks/device_wheels.sh.
# Python: $PYTHON, else .venv/bin/python, else python3 (it needs torch and genbench's dependencies).
set -uo pipefail

DRY=0
MORE=0
OUTDIR=""
BACK="${OUT:-}"   # the lent machine's folder that comes back
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-dry-run) DRY=1 ;;
        --more) MORE=1 ;;
        --out) shift; OUTDIR="${1:?--out needs a folder}" ;;
        -h|--help) awk 'NR > 1 && /^set /{exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;   # the header
        *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.." || exit 2
ROOT="$PWD"
if [ -z "$OUTDIR" ] && [ -n "$BACK" ]; then
    OUTDIR="/tmp/genbench-gpu-check-$(date +%Y%m%d-%H%M%S)"
elif [ -z "$OUTDIR" ]; then
    OUTDIR="runs/gpu-check-$(date +%Y%m%d-%H%M%S)"
fi
if [ -e "$OUTDIR" ] && [ -n "$(ls -A "$OUTDIR" 2>/dev/null)" ]; then
    echo "gpu_check: $OUTDIR is not empty; give an empty or new folder (nothing is overwritten)" >&2
    exit 2
fi
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY="$ROOT/.venv/bin/python"
else PY="$(command -v python3)"; fi
if [ "$DRY" = 0 ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: $PY has no torch with a CUDA device; on a machine without a GPU use --cpu-dry-run" >&2
    exit 2
fi
mkdir -p "$OUTDIR" || exit 2
OUTDIR="$(cd "$OUTDIR" && pwd)"

# no bytecode, pytest cache or matplotlib cache written into the checkout or $HOME
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$ROOT/src:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
export MPLCONFIGDIR="$OUTDIR/.matplotlib"
export GENBENCH_CACHE="$OUTDIR/.genbench-cache"
export TQDM_DISABLE=1

SUMMARY="$OUTDIR/summary.txt"
FAILED=0
step() {   # step NAME LIMIT_S LOG -- command...
    local name="$1" limit="$2" log="$3"; shift 4
    local t0 rc
    t0=$(date +%s)
    echo "== $name (limit ${limit}s) -> $log"
    timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$OUTDIR/$log" 2>&1
    rc=$?
    local secs=$(( $(date +%s) - t0 ))
    local status="ok"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="TIMEOUT"; FAILED=1
    elif [ "$rc" != 0 ]; then status="FAILED (exit $rc)"; FAILED=1; fi
    printf '%-28s %-18s %4ss  %s\n' "$name" "$status" "$secs" "$log" | tee -a "$SUMMARY"
    if [ "$status" != ok ]; then tail -n 15 "$OUTDIR/$log" | sed 's/^/    /'; fi
}

if [ "$DRY" = 1 ]; then
    echo "gpu_check: CPU dry run (tiny sizes) into $OUTDIR"
    DEVICE=cpu
    export GENBENCH_CUDA_TEST_DEVICE=cpu
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    TP_ARGS=(fmnist/ddpm --device cpu --steps 2 --warmup 1 --batch-size 4 --sample-n 2)
    TP2_ARGS=(cifar10/ddpm --device cpu --steps 1 --warmup 0 --batch-size 2 --no-sample --bf16)
    PER_BATCH=8
    TPC_ARGS=(fmnist/ddpm --device cpu --steps 2 --warmup 1 --batch-size 4 --no-sample --compile)
    TPL_ARGS=(fmnist/ddpm --device cpu --steps 2 --warmup 1 --batch-size 4 --no-sample)
    TRAIN_ARGS=(nets.model.ch=16 "nets.model.ch_mult=[1, 2]" nets.model.num_res_blocks=1 nets.model.groups=8
                train.batch_size=8 "train.budget={steps: 3}" train.log_every=1 sample.nfe=10 train.grid_n=4)
    SAMPLE_N=4
else
    echo "gpu_check: into $OUTDIR"
    DEVICE=cuda
    TP_ARGS=(fmnist/ddpm cifar10/ddpm --device cuda --bf16 --steps 50 --warmup 10)
    TP2_ARGS=()
    TPC_ARGS=(cifar10/ddpm --device cuda --bf16 --compile --no-sample --steps 50 --warmup 10)
    TPL_ARGS=(cifar10/ddpm --device cuda --bf16 --no-sample --steps 50 --warmup 10)
    PER_BATCH=1000   # 5000 training images
    TRAIN_ARGS=("train.budget={steps: 300}" train.log_every=50)
    SAMPLE_N=64
fi

step "environment" 20 env.txt -- bash -c '
    date -u; uname -a; echo "python: '"$PY"'"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "'"$PY"'" - <<EOF
import importlib.metadata as md, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "threads", torch.get_num_threads())
for pkg in ("genbench", "diffusers", "denoising-diffusion-pytorch", "torchcfm", "torchdiffeq", "pytest"):
    try:
        print(pkg, md.version(pkg))
    except md.PackageNotFoundError:
        print(pkg, "not installed")
EOF'

step "cuda tests" 75 pytest_cuda.log -- \
    "$PY" -m pytest tests/test_cuda.py -v -p no:cacheprovider --basetemp="$OUTDIR/pytest-tmp"

step "throughput (bf16)" 100 throughput.md -- \
    "$PY" benchmarks/throughput.py "${TP_ARGS[@]}" --json "$OUTDIR/throughput.json"
if [ "${#TP2_ARGS[@]}" -gt 0 ]; then
    step "throughput cifar10 (tiny)" 300 throughput_cifar10.md -- \
        "$PY" benchmarks/throughput.py "${TP2_ARGS[@]}" --json "$OUTDIR/throughput_cifar10.json"
fi

step "CIFAR-format files" 20 cifar_files.log -- "$PY" -c "
from pathlib import Path
from fileformats import make_cifar
make_cifar(Path('$OUTDIR/cifar-format'), per_batch=$PER_BATCH, n_test=100)
print('wrote', 5 * $PER_BATCH, 'training images of random pixels in the CIFAR-10 python format')"

step "CIFAR ddpm training" 60 cifar_train.log -- \
    "$PY" -m genbench train configs/cifar10/ddpm.yaml --out "$OUTDIR/cifar-run" --no-progress \
    "data.root=$OUTDIR/cifar-format" data.download=false train.device=$DEVICE \
    train.ckpt_every=100000 train.sample_every=100000 train.tensorboard=false "${TRAIN_ARGS[@]}"

step "CIFAR ddpm sampling" 25 cifar_sample.log -- \
    "$PY" -m genbench sample "$OUTDIR/cifar-run" -n $SAMPLE_N --solver dpm++2m --nfe 10 --device $DEVICE

if [ -f "$OUTDIR/cifar-run/run.json" ]; then
    "$PY" -c "
import json; r = json.load(open('$OUTDIR/cifar-run/run.json'))
print('cifar run:', r.get('status'), 'steps', r.get('step'), 'images', r.get('images_seen'),
      'train s', r.get('train_seconds'), 'images/s', round(r.get('images_seen', 0) / max(r.get('train_seconds') or 1e-9, 1e-9), 1))
" | tee -a "$SUMMARY"
fi
if [ "$MORE" = 1 ]; then
    step "throughput (bf16, NCHW)" 40 throughput_nchw.md -- \
        "$PY" benchmarks/throughput.py "${TPL_ARGS[@]}" --no-peers --set train.channels_last=false \
        --json "$OUTDIR/throughput_nchw.json"
    step "throughput (bf16, compiled)" 200 throughput_compiled.md -- \
        "$PY" benchmarks/throughput.py "${TPC_ARGS[@]}" --json "$OUTDIR/throughput_compiled.json"
fi
echo "summary: $SUMMARY"
for f in throughput.md throughput_nchw.md throughput_compiled.md; do
    grep -E '^(\||## |params|.*skipped)' "$OUTDIR/$f" 2>/dev/null
done
if [ -n "$BACK" ] && [ "$BACK" != "$OUTDIR" ]; then   # at most 8 files come back from a lent machine
    for f in summary.txt env.txt throughput.md throughput.json throughput_nchw.md throughput_compiled.md \
             throughput_compiled.json; do
        [ -f "$OUTDIR/$f" ] && cp "$OUTDIR/$f" "$BACK/"
    done
    (cd "$OUTDIR" && tar czf "$BACK/gpu_check_logs.tgz" --exclude='./cifar-format' --exclude='*.pt' \
        --exclude='*.safetensors' --exclude='./.genbench-cache' --exclude='./pytest-tmp' .)
    echo "copied to $BACK: $(ls "$BACK" | tr '\n' ' ')"
fi
exit $FAILED
