"""Every CUDA kernel compiles for a real GPU (sm_90 PTX), with the argument types the simulator tests use.

The simulator runs kernels as Python, so it cannot tell whether a construct has a device lowering (the
float32 exp's np.floor had none). This test re-runs the CUDA simulator tests in a subprocess that records
each launch's argument types (tests/conftest.py), then compiles every recorded kernel and signature for
sm_90 in a second process with the simulator off (tests/cuda_ptx_compile.py). No GPU is needed, only
NVIDIA's compiler libraries: `pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12` (.ci/run installs
them); without them the test is skipped.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _have_compiler():
    return all(importlib.util.find_spec(m) is not None for m in ("nvidia.cuda_nvcc", "nvidia.cuda_nvrtc"))


@pytest.mark.slow
@pytest.mark.skipif(not _have_compiler(), reason="NVIDIA compiler libraries not installed "
                                                  "(pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12)")
def test_every_simulated_kernel_compiles_for_sm90(tmp_path):
    record = tmp_path / "launches.pkl"
    others = sorted(str(p) for p in (ROOT / "tests").glob("test_cuda_*.py") if p.name != Path(__file__).name)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NNCORE_RECORD_CUDA_LAUNCHES": str(record)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *others],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    env.pop("NNCORE_RECORD_CUDA_LAUNCHES", None)
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_ptx_compile.py"), str(record)], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert out.returncode == 0 and not failed, "\n".join(failed) or out.stderr[-3000:]
    kernels = {line.split("(")[0].split()[1] for line in lines}
    # every module of kernels/cuda had its kernels launched and compiled
    for module in ("optim", "dropout", "activations", "softmax_xent", "batchnorm", "linear", "losses"):
        assert any(k.startswith(f"kernels.cuda.{module}.") for k in kernels), module
