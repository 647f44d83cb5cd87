#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels that a GPU machine without network needs to run
# benchmarks/gpu_check.sh: genbench's own dependencies and the throughput peers that such an image
# usually lacks (it has torch, torchvision, numpy, scipy, matplotlib, tensorboard, safetensors,
# torchdiffeq, einops, accelerate, huggingface-hub, pandas, scikit-learn, pytest). The versions are
# the ones this repository's venv was tested with; the wheels are for CPython 3.12 on x86-64 Linux
# (override with PYVER=3.11 etc.). Nothing is installed here.
#
#   bash benchmarks/device_wheels.sh [DIR]       # default DIR: .whl (ignored by git)
#
# On the GPU machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
PYVER="${PYVER:-3.12}"
PIP=(python3 -m pip)
[ -x .venv/bin/python ] && PIP=(.venv/bin/python -m pip)

# name==version; pure-Python wheels and manylinux ones alike
WHEELS=(
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    torch-fidelity==0.4.0
    diffusers==0.42.1 importlib-metadata==10.2.0
    denoising-diffusion-pytorch==2.3.4 ema-pytorch==0.8.3 pytorch-fid==0.3.0
    torchcfm==1.0.7 pot==0.9.7.post1
)
mkdir -p "$DIR"
if [ "$DIR" = .whl ] && ! grep -qs '^/.whl/$' .git/info/exclude; then
    mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
fi
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLAT+=(--platform "$p"); done
for w in "${WHEELS[@]}"; do
    "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
        --implementation cp "${PLAT[@]}" -d "$DIR" "$w"
done
ls -l "$DIR"
du -sh "$DIR"
