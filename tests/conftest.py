"""pytest fixtures: a fresh random generator per test whose seed is printed, so any failure reproduces.

Set NNCORE_TEST_SEED=<int> to replay a run; by default every session draws a new seed (fresh inputs).
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

_SESSION_SEED = int(os.environ.get("NNCORE_TEST_SEED", int.from_bytes(os.urandom(4), "little")))


def pytest_report_header(config):
    return f"nncore test seed: NNCORE_TEST_SEED={_SESSION_SEED}"


@pytest.fixture
def rng(request):
    """np.random.Generator seeded from the session seed and the test's id (stable per test in a run)."""
    return np.random.default_rng([_SESSION_SEED, zlib.crc32(request.node.nodeid.encode())])
