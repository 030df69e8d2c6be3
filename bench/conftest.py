"""Benchmark fixtures: the machine's own ceilings, measured in the same run as the benchmarks.

Every benchmark reports its rate as a fraction of a floor: bytes it must move over the measured copy
bandwidth (``fraction_of_floor`` against a single NumPy copy, the definition the targets use, and
``fraction_of_all_cores_copy`` against every core copying at once), flops over the measured BLAS
sgemm/dgemm rate. ``floors`` measures both once per session;
``report(benchmark, nbytes=..., flops=...)`` writes GB/s, GFLOP/s and the fraction into extra_info.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

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


def measure_copy_bandwidth(nbytes=512 << 20, repeats=7, threads=1):
    """Bytes per second of np.copyto over a large float32 array, counting the read and the write.

    ``threads=1`` is the floor the targets are stated against (the copy bandwidth of a large NumPy array);
    with more threads each copies its own slice (NumPy releases the GIL), which is what the memory system
    can do with every core streaming, the stricter ceiling.
    """
    a = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    if threads == 1:
        return 2 * a.nbytes / _best_of(lambda: np.copyto(b, a), repeats)
    bounds = np.linspace(0, a.size, threads + 1).astype(int)
    slices = [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    with ThreadPoolExecutor(threads) as pool:
        return 2 * a.nbytes / _best_of(lambda: list(pool.map(lambda s: np.copyto(b[s], a[s]), slices)), repeats)


def measure_gemm_rate(dtype, n=2048, repeats=5):
    """Flops per second of a square BLAS matmul (NumPy's BLAS) in the given dtype."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    return 2 * n**3 / _best_of(lambda: np.matmul(a, b, out=c), repeats)


@pytest.fixture(scope="session")
def floors():
    # The ceilings are measured before any Numba parallel region runs (libgomp's spinning workers would
    # slow OpenBLAS), each as the best of two rounds a second apart, so a passing burst of other work on
    # this shared machine does not lower them.
    def best_twice(fn):
        first = fn()
        time.sleep(1.0)
        return max(first, fn())

    result = {
        "sgemm_flops": best_twice(lambda: measure_gemm_rate(np.float32)),
        "dgemm_flops": best_twice(lambda: measure_gemm_rate(np.float64)),
        "copy_Bps": best_twice(measure_copy_bandwidth),
        "copy_all_cores_Bps": best_twice(lambda: measure_copy_bandwidth(threads=os.cpu_count() or 1)),
    }

    # A parallel kernel must run on a real thread pool: the workqueue layer serialises nested work.
    @numba.njit(parallel=True, cache=False)
    def _touch(a):
        for i in numba.prange(a.size):
            a[i] += 1.0

    _touch(np.zeros(4))
    result.update(threading_layer=numba.threading_layer(), threads=numba.get_num_threads())
    return result


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
        info["copy_all_cores_GBps"] = round(floors["copy_all_cores_Bps"] / 1e9, 2)
        floor_t = 0.0
        if nbytes:
            info["bytes"] = int(nbytes)
            info["GBps"] = round(nbytes / t / 1e9, 2)
            floor_t = max(floor_t, nbytes / floors["copy_Bps"])
            info["fraction_of_all_cores_copy"] = round(nbytes / floors["copy_all_cores_Bps"] / t, 3)
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
