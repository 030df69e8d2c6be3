"""Square float32 GEMM at 1024^3 and 2048^3: NumPy's BLAS, the blocked pure-Numba GEMM, and torch-cpu.
Reported as GFLOP/s and as a fraction of the sgemm rate measured in the same run (bench/conftest.py).
Goal for impl="numba": half of BLAS or better.
"""

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels.matmul import matmul

SIZES = [1024, 2048]
ROUNDS = 5

sizes = pytest.mark.parametrize("n", SIZES)


def _arrays(n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)


def _check(c, a, b):
    # every 61st row against the float64 product, within the worst-case float32 rounding bound
    s = slice(None, None, 61)
    a64, b64 = a[s].astype(np.float64), b.astype(np.float64)
    bound = (a.shape[1] + 1) * np.finfo(np.float32).eps * (np.abs(a64) @ np.abs(b64))
    assert (np.abs(c[s] - a64 @ b64) <= bound).all()


@sizes
@pytest.mark.parametrize("impl", ["blas", "numba"])
def test_matmul_nncore(benchmark, report, n, impl):
    benchmark.group = f"matmul-{n}x{n}x{n}-float32"
    a, b = _arrays(n)
    c = np.empty((n, n), np.float32)
    fn = lambda: matmul(a, b, impl=impl, out=c)  # noqa: E731
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, flops=2 * n**3, dtype=np.float32)
    _check(c, a, b)


@sizes
def test_matmul_torch(benchmark, report, n):
    torch = torch_or_skip()
    benchmark.group = f"matmul-{n}x{n}x{n}-float32"
    a, b = _arrays(n)
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
    fn = lambda: torch.matmul(ta, tb, out=tc)  # noqa: E731
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, flops=2 * n**3, dtype=np.float32)
    _check(tc.numpy(), a, b)
