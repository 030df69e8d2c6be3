#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU, numba-cuda and CuPy (PyTorch too, for the comparisons):
# runs every device test on the GPU instead of the simulator (the CUDA kernel tests, the public functions
# on CuPy arrays, the training library on device="cuda", the gpu-marked parity and digits tests), then
# `nncore bench` twice: every provider on the quick preset (CPU against GPU on the same machine), and the
# GPU providers on the full preset (the GPU targets: cross-entropy at 16384x32768, the training step at
# batch 256 and 4096, Adam over 100M parameters, the scaling sweeps). Results land in
# bench/results/gpu-<label>-* (label: the GPU's name unless given). Run from anywhere:
#     bench/gpu_check.sh [label]          # PYTHON=... to pick the interpreter (default python3)
# Tests first: a failing test stops the script before any timing is taken.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
label=${1:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr -c 'A-Za-z0-9\n' '-')}
out="bench/results/gpu-${label}"
mkdir -p bench/results
nvidia-smi > "${out}-nvidia-smi.txt"
export NUMBA_ENABLE_CUDASIM=0 PYTHONPATH=.
"$python" -m pytest -q -p no:cacheprovider tests/test_cuda_*.py tests/test_nn_device.py tests/test_gpu.py \
    tests/test_util.py tests/test_readme.py --junitxml="${out}-tests.xml" 2>&1 | tee "${out}-tests.txt"
"$python" -m nncore bench --providers all --out "${out}-quick" --no-progress 2>&1 | tee "${out}-quick.txt"
"$python" -m nncore bench --full --providers gpu --out "${out}-full" --no-progress 2>&1 | tee "${out}-full.txt"
