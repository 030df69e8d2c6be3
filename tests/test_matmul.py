"""kernels.matmul (both impls) against the float64 product: awkward shapes that hit every block and
register-tile remainder, out=, bad input, determinism across thread counts, and NaN input."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.matmul import matmul
from tests.helpers import (
    DTYPE_IDS,
    DTYPES,
    assert_rejects_bad_out,
    assert_same_bits_at_one_and_two_threads,
    needs_two_threads,
    random_array,
)

# (M, K, N). The last two cross the block edges (K > 256, N > 512) with remainders of every size:
# M % 4 = 1 (one-row kernel), K % 256 % 4 = 1 (single-k tail), N % 512 = 18; the last takes the
# parallel path.
SHAPES = [(1, 1, 1), (1, 37, 5), (7, 1023, 33), (33, 1025, 17), (129, 257, 65), (4, 3, 600), (3, 0, 4),
          (0, 5, 2), (301, 601, 530)]
SHAPE_IDS = [f"{m}x{k}x{n}" for m, k, n in SHAPES]

# The float64 product with a rounding bound (below) replaces DTYPE_TOLS' fixed tolerances here: a sum
# over K terms in float32 legitimately drifts further than a few ulp.
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
impls = pytest.mark.parametrize("impl", ["blas", "numba"])


def _check_product(c, a, b):
    """|C - A B| <= K * eps * (|A| |B|) elementwise: the worst-case rounding bound of any summation
    order in the input dtype, so a wrong index or a missed block (an O(|A||B|) error) cannot pass."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = a64 @ b64
    bound = (a.shape[1] + 1) * np.finfo(a.dtype).eps * (np.abs(a64) @ np.abs(b64)) + 1e-300
    err = np.abs(c.astype(np.float64) - exact)
    worst = np.unravel_index(np.argmax(err / bound), c.shape) if c.size else None
    assert (err <= bound).all(), f"worst at {worst}: got {c[worst]!r}, exact {exact[worst]!r}"


@impls
@dtypes
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_matches_float64_product(rng, shape, impl, dtype):
    m, k, n = shape
    a = random_array(rng, (m, k), dtype)
    b = random_array(rng, (k, n), dtype)
    c = matmul(a, b, impl=impl)
    assert c.shape == (m, n)
    assert c.dtype == dtype
    _check_product(c, a, b)


@impls
def test_out_and_noncontiguous_inputs(rng, impl):
    a = random_array(rng, (60, 41), np.float32)[:, ::2]   # (60, 21), strided
    b = np.asfortranarray(random_array(rng, (21, 70), np.float32))
    out = np.full((60, 70), np.nan, np.float32)
    c = matmul(a, b, impl=impl, out=out)
    assert c is out
    _check_product(c, a, b)


@needs_two_threads
def test_same_bits_at_one_and_two_threads(rng):
    a = random_array(rng, (301, 601), np.float32)
    b = random_array(rng, (601, 530), np.float32)
    assert_same_bits_at_one_and_two_threads(lambda: [matmul(a, b, impl="numba")])


@impls
def test_nan_stays_in_its_row_and_column(rng, impl):
    """A NaN in A[i, p] makes row i of C NaN; a NaN in B[p, j] makes column j NaN; nothing else."""
    a = random_array(rng, (9, 300), np.float64)
    b = random_array(rng, (300, 23), np.float64)
    a[5, 260] = np.nan
    b[7, 20] = np.nan
    c = matmul(a, b, impl=impl)
    nan = np.zeros(c.shape, bool)
    nan[5, :] = True
    nan[:, 20] = True
    np.testing.assert_array_equal(np.isnan(c), nan)


def test_bad_input(rng):
    a = random_array(rng, (4, 3), np.float32)
    b = random_array(rng, (3, 5), np.float32)
    with pytest.raises(ValueError, match=r"inner dimensions differ: a has shape \(4, 3\) and b has shape \(4, 5\)"):
        matmul(a, np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="a must be 2-D"):
        matmul(a[0], b)
    with pytest.raises(ValueError, match="b must be 2-D"):
        matmul(a, np.ones((1, 3, 5), np.float32))
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        matmul(a, b.astype(np.float64))
    with pytest.raises(TypeError, match="a has dtype int32"):
        matmul(np.ones((4, 3), np.int32), b)
    with pytest.raises(TypeError, match="b must be a numpy.ndarray"):
        matmul(a, [[1.0]])
    with pytest.raises(ValueError, match="impl = 'cublas' is not one of"):
        matmul(a, b, impl="cublas")


@impls
def test_bad_out(rng, impl):
    a = random_array(rng, (4, 3), np.float32)
    b = random_array(rng, (3, 5), np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(5, 4\)"):
        matmul(a, b, impl=impl, out=np.empty((5, 4), np.float32))
    # a (4, 5) buffer whose first 12 elements are a: an out that overlaps an input only in part
    buf = random_array(rng, (4, 5), np.float32)
    a_in_buf = buf.reshape(-1)[:12].reshape(4, 3)
    assert_rejects_bad_out(lambda out: matmul(a_in_buf, b, impl=impl, out=out), (4, 5), np.float32, buf)
    sq = random_array(rng, (4, 4), np.float32)
    sq2 = sq.copy()
    for aliased in (sq, sq2):
        assert_rejects_bad_out(lambda out: matmul(sq, sq2, impl=impl, out=out), (4, 4), np.float32, aliased)
