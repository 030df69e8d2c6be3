"""pytest fixtures: a fresh random generator per test whose seed is printed, so any failure reproduces.

Set NNCORE_TEST_SEED=<int> to replay a run; by default every session draws a new seed (fresh inputs).

CUDA kernels: on a machine without an NVIDIA driver the suite runs them in Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, set here before anything imports numba); set NUMBA_ENABLE_CUDASIM=0 or 1
yourself to choose. The simulator takes NumPy arrays and runs every thread in Python, so those tests use
small sizes.
"""

from __future__ import annotations

import os
import shutil
import zlib

if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402 (the simulator switch must come before numba is imported)
import pytest  # noqa: E402

_SESSION_SEED = int(os.environ.get("NNCORE_TEST_SEED", int.from_bytes(os.urandom(4), "little")))


def pytest_report_header(config):
    return f"nncore test seed: NNCORE_TEST_SEED={_SESSION_SEED}"


@pytest.fixture
def rng(request):
    """np.random.Generator seeded from the session seed and the test's id (stable per test in a run)."""
    return np.random.default_rng([_SESSION_SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def dev():
    """The device array module for tests of the public functions on device arrays: CuPy on a machine with a
    GPU, ``kernels.cuda.simulator`` (NumPy memory standing for the device) under the CUDA simulator.
    ``dev.asarray(a)`` puts a host array on the device, ``dev.asnumpy(d)`` brings one back."""
    import numba

    if not numba.config.ENABLE_CUDASIM:
        pytest.importorskip("cupy")
        from numba import cuda

        if not cuda.is_available():
            pytest.skip("no CUDA device and the CUDA simulator is off")
    from kernels._util import device_module

    return device_module()


# With NNCORE_RECORD_CUDA_LAUNCHES=<file> (set by tests/test_cuda_ptx.py), every kernel launched in the CUDA
# simulator is recorded with the Numba types of its arguments, so that the same kernels can then be
# compiled for a real GPU (PTX) with exactly the signatures the tests exercised.
_RECORD = os.environ.get("NNCORE_RECORD_CUDA_LAUNCHES")
_LAUNCHES = set()


def pytest_configure(config):
    if not _RECORD:
        return
    import numba
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    launch = FakeCUDAKernel.__call__

    def recording_launch(self, *args):
        if not self._device:
            kinds = tuple(numba.typeof(a._ary if isinstance(a, FakeCUDAArray) else a) for a in args)
            _LAUNCHES.add((self.fn.__module__, self.fn.__qualname__, kinds))
        return launch(self, *args)

    FakeCUDAKernel.__call__ = recording_launch


def pytest_sessionfinish(session, exitstatus):
    if _RECORD:
        import pickle

        with open(_RECORD, "wb") as f:
            pickle.dump(sorted(_LAUNCHES, key=repr), f)
