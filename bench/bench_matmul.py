"""Square float32 GEMM, C = A @ B with A, B (n, n): every provider, and nncore's own blocked Numba GEMM.

    nncore      kernels.matmul.matmul(a, b, out=c): on NumPy arrays (nncore-cpu) its default impl="blas",
                i.e. np.matmul into the preallocated c (NumPy's BLAS); on CuPy arrays (nncore-cuda)
                cuBLAS through CuPy, full float32 (TF32 off, the default allow_tf32=False)
    Numba GEMM  nncore-cpu, variant "Numba GEMM": matmul(a, b, impl="numba", out=c), the Goto/BLIS-blocked
                pure-Numba GEMM of kernels/matmul.py, for where no BLAS can be called
    numpy/cupy  xp.matmul(a, b) (allocates C), CuPy's at its default compute type (no TF32)
    torch       torch.matmul(a, b, out=c) (torch's default: no TF32 on a GPU)
    jax         jax.jit(jnp.matmul)

Flops counted per call: 2 n^3, against the BLAS sgemm rate the harness measures (cuBLAS's on a GPU).
Speed goal (issue 2): the Numba GEMM at >= 0.5 of BLAS at 1024^3 and 2048^3 (the fraction of floor of
the "Numba GEMM" row). 4096^3 (full preset) runs on the GPU providers only.

Check: a spread of 64 rows of C against the float64 product, within 10 eps sqrt(n) times the root-sum-
square of the products of each dot product (plus the final rounding): 50 standard deviations of the
rounding error of a float32 dot product summed in any order, and an order of magnitude below the error
of TensorFloat-32 inputs, so a GEMM that silently used TF32 would fail.

    pytest bench/bench_matmul.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

from bench.conftest import gpu_only, one_case, only, shapes
from kernels.matmul import matmul

GPU_SIZE = 4096  # 2 n^3 = 137 GFLOP: the GPU providers only
EPS32 = np.finfo(np.float32).eps

MATMUL_SHAPES = shapes(tiny=[3, 130], quick=[512, 1024], full=[1024, 2048, GPU_SIZE], ids=lambda n: f"{n}x{n}x{n}")


def spread(n, count=64):
    """About ``count`` indices spread evenly over range(n), first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))


def assert_dot_close(got, a64, b64, relu=False):
    """``got`` (float32) against the float64 product a64 @ b64, within 10 eps sqrt(K) times the root-sum-
    square of the products of each dot product, plus one rounding of the result (module notes).

    ``relu=True``: ``got`` is relu of the product, compared where positive; where it is 0 the product must
    be at most its bound (|relu(u) - relu(v)| <= |u - v|).
    """
    exact = a64 @ b64
    rss = np.sqrt((a64 * a64) @ (b64 * b64))
    bound = EPS32 * (10 * np.sqrt(a64.shape[1]) * rss + np.abs(exact))
    if relu:
        got = np.where(got > 0, got, np.minimum(exact, 0.0))
    err = np.abs(got - exact)
    assert (err <= bound).all(), f"error up to {(err / bound).max():.3g} times the bound"


class Case:
    """Fresh random A and B (standard normal, float32) of one size."""

    def __init__(self, n):
        rng = np.random.default_rng()
        self.n = n
        self.a = rng.standard_normal((n, n), dtype=np.float32)
        self.b = rng.standard_normal((n, n), dtype=np.float32)

    def check(self, c):
        assert c.shape == (self.n, self.n) and c.dtype == np.float32
        rows = spread(self.n)
        assert_dot_close(c[rows], self.a[rows].astype(np.float64), self.b.astype(np.float64))


def matmul_call(provider, case, impl="blas"):
    """The product on this provider, as a call with no arguments."""
    a, b = provider.asarray(case.a), provider.asarray(case.b)
    if provider.library == "nncore":
        c = provider.xp.empty_like(a)
        return lambda: matmul(a, b, impl=impl, out=c)
    if provider.library in ("numpy", "cupy"):
        return lambda: provider.xp.matmul(a, b)
    if provider.library == "torch":
        c = provider.xp.empty_like(a)
        return lambda: provider.xp.matmul(a, b, out=c)
    import jax

    f = jax.jit(provider.xp.matmul)
    return lambda: f(a, b)


def case_for(n):
    """One Case per size per session (one at a time: the tests of a size run together)."""
    return one_case((__name__, n), lambda: Case(n))


def _run(measure, provider, n, impl="blas", **extra):
    if n == GPU_SIZE:
        gpu_only(provider, f"{n}^3 is 137 GFLOP per call")
    case = case_for(n)
    measure(matmul_call(provider, case, impl), op="matmul f32", shape=f"{n}x{n}x{n}", flops=2 * n**3,
            check=case.check, **extra)


@MATMUL_SHAPES
def test_matmul(measure, provider, shape):
    _run(measure, provider, shape)


@only("nncore-cpu")
@MATMUL_SHAPES
def test_matmul_numba_gemm(measure, provider, shape):
    _run(measure, provider, shape, impl="numba", variant="Numba GEMM")
