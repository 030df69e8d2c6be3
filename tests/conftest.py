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
