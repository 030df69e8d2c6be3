"""Benchmark fixtures: the machine's own ceilings, measured in the same run as the benchmarks.

Every benchmark reports its rate as a fraction of a floor: bytes it must move over the measured copy
bandwidth, flops over the measured BLAS sgemm/dgemm rate. ``floors`` measures both once per session;
``report(benchmark, nbytes=..., flops=...)`` writes GB/s, GFLOP/s and the fraction into extra_info.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest


def _best_of(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_copy_bandwidth(nbytes=512 << 20, repeats=7):
    """Bytes per second of np.copyto over a large float32 array, counting the read and the write."""
    a = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    return 2 * a.nbytes / _best_of(lambda: np.copyto(b, a), repeats)


def measure_gemm_rate(dtype, n=2048, repeats=5):
    """Flops per second of a square BLAS matmul (NumPy's BLAS) in the given dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    return 2 * n**3 / _best_of(lambda: np.matmul(a, b, out=c), repeats)


@pytest.fixture(scope="session")
def floors():
    # A parallel kernel must run on a real thread pool: the workqueue layer serialises nested work.
    @numba.njit(parallel=True, cache=False)
    def _touch(a):
        for i in numba.prange(a.size):
            a[i] += 1.0

    _touch(np.zeros(4))
    return {
        "copy_Bps": measure_copy_bandwidth(),
        "sgemm_flops": measure_gemm_rate(np.float32),
        "dgemm_flops": measure_gemm_rate(np.float64),
        "threading_layer": numba.threading_layer(),
        "threads": numba.get_num_threads(),
    }


@pytest.fixture
def report(floors):
    """Call after ``benchmark(...)``: records rates and the fraction of the floor in extra_info."""

    def _report(benchmark, *, nbytes=0, flops=0, dtype=np.float32, **extra):
        info = benchmark.extra_info
        if benchmark.stats is None:  # --benchmark-disable: the body ran once for correctness, untimed
            return info
        t = benchmark.stats.stats.median
        info["median_s"] = t
        info["threading_layer"] = floors["threading_layer"]
        info["copy_GBps"] = round(floors["copy_Bps"] / 1e9, 2)
        floor_t = 0.0
        if nbytes:
            info["bytes"] = int(nbytes)
            info["GBps"] = round(nbytes / t / 1e9, 2)
            floor_t = max(floor_t, nbytes / floors["copy_Bps"])
        if flops:
            rate = floors["sgemm_flops" if np.dtype(dtype) == np.float32 else "dgemm_flops"]
            info["flops"] = int(flops)
            info["GFLOPs"] = round(flops / t / 1e9, 2)
            info["blas_GFLOPs"] = round(rate / 1e9, 1)
            floor_t = max(floor_t, flops / rate)
        if floor_t:
            info["fraction_of_floor"] = round(floor_t / t, 3)
        info.update(extra)
        return info

    return _report


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
