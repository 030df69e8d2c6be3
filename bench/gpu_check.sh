#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and numba-cuda (CuPy for the coming device paths): runs
# every CUDA kernel test on the device instead of the simulator and writes the results under bench/results/
# as gpu-<label>-*.{txt,xml} (label: the GPU's name unless given). Run from anywhere:
#     bench/gpu_check.sh [label]          # PYTHON=... to pick the interpreter (default python3)
# The kernel tests take NumPy arrays, which Numba copies to the device and back around each launch.
# GPU benchmarks join this script as they are written (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
label=${1:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr -c 'A-Za-z0-9\n' '-')}
out="bench/results/gpu-${label}"
mkdir -p bench/results
nvidia-smi > "${out}-nvidia-smi.txt"
"$python" -c "import numba, numba_cuda, numpy; print('numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)" \
    > "${out}-versions.txt"
NUMBA_ENABLE_CUDASIM=0 PYTHONPATH=. "$python" -m pytest -q -p no:cacheprovider tests/test_cuda_*.py \
    --junitxml="${out}-tests.xml" 2>&1 | tee "${out}-tests.txt"
