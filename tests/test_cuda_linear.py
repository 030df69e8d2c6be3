"""CUDA passes of the linear layer (kernels/cuda/linear.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python call per thread, so the
layers are small; with one, on the device (NumPy arrays are copied in and out by Numba). The GEMMs are
cuBLAS's on a GPU and are not part of kernels/cuda/linear.py: here NumPy's matmul stands in for them, the
same call the CPU layer makes. Launch arguments come from the functions the public CPU API uses
(``activation_code``, ``check_negative_slope``); buffers start at 7, not 0, so a skipped element shows.

Shapes (N, in, out) cover one element, one row, one output column, and N = 65 and 130, which cross
REDUCE_BLOCK_ROWS = 64 (a last block of 1 and of 2 rows).

Tolerances (NaN only needs to be NaN wherever bits are compared: a GPU returns its canonical NaN where
x86 passes the input's bits through):
* the block partials and db must be bitwise what the CPU's reduction gives on the same dz: the kernels
  add each dz to a float64 sum in the CPU's order with a round-to-nearest add that is never fused.
* dz, partials and db against the CPU layer's own: bitwise for the selects (identity, relu, leaky_relu:
  one multiply at most). For sigmoid and tanh, 4 ulp on dz and 4 eps sum |dz| on the sums: the CPU
  compiles the derivative helpers with fast-math reassociation, and LLVM regroups the three-factor
  products differently in its vectorised and its scalar loops (measured: float32 dz of the CPU layer and
  of kernels.activations disagree in the last bit for about a third of the elements).
* y against the CPU: bitwise for the selects (identity, relu, leaky_relu); for sigmoid and tanh 1e-15
  relative in float64 (libdevice's exp/tanh against the host libm, both within 2 ulp, and NVVM's FMA
  contraction) and 4 float32 ulp (approximate float32 division on the device, within 2 ulp). In the
  simulator both run the same compiled helpers, so these are bitwise in practice.
* against the oracle: the rounding bound of a dtype GEMM, 4 sqrt(k + 1) eps (|a| @ |b|), on top of the
  dtype's tolerances (every activation is 1-Lipschitz, so the bound carries over to y), and for db the
  rounding of each dz to the dtype, 2 eps sum |dz|.
"""

import numba
import numpy as np
import pytest

from kernels import linear as L
from kernels import reference as R
from kernels._util import REDUCE_BLOCK_ROWS, num_row_blocks
from kernels.activations import IDENTITY, activation_code, check_negative_slope
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, assert_close, random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda.linear as CL

SHAPES = [(1, 3, 1), (1, 4, 7), (5, 2, 1), (7, 5, 33), (65, 3, 5), (130, 4, 3)]
SHAPE_IDS = ["1x3x1", "1x4x7", "5x2x1", "7x5x33", "65x3x5", "130x4x3"]
# (kind, negative_slope); leaky_relu at torch's default and at 0 (where slope * dy makes signed zeros)
KINDS = [(None, 0.01), ("relu", 0.01), ("leaky_relu", 0.01), ("leaky_relu", 0.0), ("sigmoid", 0.01),
         ("tanh", 0.01)]
KIND_IDS = ["identity", "relu", "leaky_relu", "leaky_relu-0", "sigmoid", "tanh"]
SELECTS = {None, "relu", "leaky_relu"}
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


def _gemm_atol(a_abs, b_abs, k, dtype, extra=0.0):
    """Elementwise rounding bound of a dtype GEMM a @ b over k terms (a factor 4 over the sqrt(k) growth)."""
    return 4.0 * np.sqrt(k + 1.0) * EPS[dtype] * (a_abs @ b_abs + extra)


def _assert_same_bits(actual, expected, name):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, \
        f"{name}: {actual.shape} {actual.dtype} vs {expected.shape} {expected.dtype}"
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, f"{name}: NaN positions")
    if actual[~nan].tobytes() != expected[~nan].tobytes():
        i = np.flatnonzero(actual[~nan] != expected[~nan])
        detail = f"{i.size} values differ, first {actual[~nan][i[0]]!r} vs {expected[~nan][i[0]]!r}" if i.size \
            else "values equal but the signs of zeros differ"
        raise AssertionError(f"{name}: not bitwise the CPU's ({detail})")


def _layer(rng, n, k, m, dtype, bias):
    x = random_array(rng, (n, k), dtype)
    w = random_array(rng, (k, m), dtype, scale=1.0 / np.sqrt(k))
    b = random_array(rng, (m,), dtype) if bias else None
    return x, w, b


def _forward(y, b, kind, slope):
    CL.run_forward(y, b, activation_code(kind), check_negative_slope(slope, y.dtype))
    cuda.synchronize()


def _backward(dy, y, kind, slope, bias):
    """The device pass with buffers as kernels.linear.linear_backward allocates them; returns (dz, part, db)."""
    n, m = dy.shape
    dz = None if kind is None else np.full((n, m), 7.0, dy.dtype)
    part = np.full((num_row_blocks(n), m), 7.0) if bias else None
    db = np.full(m, 7.0, dy.dtype) if bias else None
    CL.run_backward(dy, y, dz, part, db, activation_code(kind), check_negative_slope(slope, dy.dtype))
    cuda.synchronize()
    return dz, part, db


def _cpu_dz_and_partials(dy, y, kind, slope):
    dz = np.empty_like(dy)
    part = np.empty((num_row_blocks(dy.shape[0]), dy.shape[1]))
    L._dz_pass(dy, y, dz, part, activation_code(kind), check_negative_slope(slope, dy.dtype))
    return dz, part


def _cpu_sums_of(dz):
    """The CPU's bias-gradient reduction of the given dz, in its order: (block partials, db). (Its pass with
    the identity activation takes dz as dy and only sums it.)"""
    part = np.empty((num_row_blocks(dz.shape[0]), dz.shape[1]))
    db = np.empty(dz.shape[1], dz.dtype)
    L._dz_pass(dz, dz, None, part, IDENTITY, dz.dtype.type(0))
    L._sum_partials(part.copy(), part.shape[0], db)  # (it adds into its argument's first row)
    return part, db


def _block_abs_sums(a):
    """sum |a| over each REDUCE_BLOCK_ROWS-row block: the scale of a block partial's rounding."""
    return np.array([np.abs(a[i:i + REDUCE_BLOCK_ROWS]).sum(axis=0) for i in range(0, a.shape[0], REDUCE_BLOCK_ROWS)])


def _check_against_cpu(dz, part, db, dy, x, w, y, kind, slope):
    """The device pass's results against the CPU layer's on the same dy and saved y."""
    dtype = dy.dtype.type
    dz_cpu, part_cpu = _cpu_dz_and_partials(dy, y, kind, slope)
    dx_cpu, dw_cpu, db_cpu = L.linear_backward(dy, x, w, y, kind, negative_slope=slope, has_bias=part is not None)
    if kind in SELECTS:
        _assert_same_bits(dz, dz_cpu, "dz")
    else:
        assert_close(dz, dz_cpu, 4 * EPS[dtype], 0.0, "dz vs CPU")
    if part is None:
        assert db is None and db_cpu is None
        return dx_cpu, dw_cpu
    # the reduction is the CPU's, addition for addition: bitwise on the same dz
    part_same_dz, db_same_dz = _cpu_sums_of(dz)
    _assert_same_bits(part, part_same_dz, "block partials vs the CPU's sums of this dz")
    _assert_same_bits(db, db_same_dz, "db vs the CPU's sum of this dz")
    if kind in SELECTS:
        _assert_same_bits(part, part_cpu, "block partials")
        _assert_same_bits(db, db_cpu, "db")
    else:
        # each dz within 4 ulp of the CPU's: so is every sum, on the scale of sum |dz|; db is then rounded
        part_tol = 4 * EPS[dtype] * _block_abs_sums(dz_cpu).reshape(part.shape)
        assert_close(part, part_cpu, 0.0, part_tol, "block partials vs CPU")
        assert_close(db, db_cpu, EPS[dtype], part_tol.sum(axis=0), "db vs CPU")
    return dx_cpu, dw_cpu


@pytest.mark.parametrize("nkm", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind,slope", KINDS, ids=KIND_IDS)
def test_forward_epilogue_matches_cpu_and_oracle(rng, kind, slope, dtype, rtol, atol, bias, nkm):
    n, k, m = nkm
    x, w, b = _layer(rng, n, k, m, dtype, bias)
    y = np.empty((n, m), dtype)
    np.matmul(x, w, out=y)  # the GEMM, as the CPU layer runs it
    _forward(y, b, kind, slope)
    expected = L.linear_forward(x, w, b, kind, negative_slope=slope)
    assert y.shape == (n, m) and y.dtype == dtype
    if kind in SELECTS:
        _assert_same_bits(y, expected, "y")
    else:
        assert_close(y, expected, 1e-15 if dtype == np.float64 else 4 * EPS[dtype], 0.0, "y vs CPU")
    bound = _gemm_atol(np.abs(x), np.abs(w), k, dtype, 0.0 if b is None else np.abs(b))
    assert_close(y, R.linear_forward(x, w, b, kind, slope), rtol, atol + bound, "y vs oracle")


@pytest.mark.parametrize("nkm", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind,slope", KINDS, ids=KIND_IDS)
def test_backward_pass_matches_cpu_and_oracle(rng, kind, slope, dtype, rtol, atol, bias, nkm):
    n, k, m = nkm
    x, w, b = _layer(rng, n, k, m, dtype, bias)
    # the saved output is the oracle's rounded to dtype, so kernel, CPU and oracle see the same y
    y = R.linear_forward(x, w, b, kind, slope).astype(dtype)
    dy = random_array(rng, (n, m), dtype)
    dy_before, y_before = dy.copy(), y.copy()
    dz, part, db = _backward(dy, y, kind, slope, bias)
    assert dy.tobytes() == dy_before.tobytes() and y.tobytes() == y_before.tobytes(), "an input was written"

    if kind is None:
        assert dz is None  # identity: no dz pass, the GEMMs read dy
        dz = dy
    dx_cpu, dw_cpu = _check_against_cpu(dz, part, db, dy, x, w, y, kind, slope)

    # the backward GEMMs on the device's dz, against the CPU layer's and the oracle's gradients
    dz_abs = np.abs(R.activation_backward(dy, y, kind, slope))
    dx_bound = _gemm_atol(dz_abs, np.abs(w).T, m, dtype)
    dw_bound = _gemm_atol(np.abs(x).T, dz_abs, n, dtype)
    dx, dw = dz @ w.T, x.T @ dz
    assert_close(dx, dx_cpu, 0.0, dx_bound, "dx vs CPU")
    assert_close(dw, dw_cpu, 0.0, dw_bound, "dw vs CPU")
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, kind, slope, has_bias=bias)
    assert_close(dx, rdx, rtol, atol + dx_bound, "dx vs oracle")
    assert_close(dw, rdw, rtol, atol + dw_bound, "dw vs oracle")
    if bias:
        assert_close(db, rdb, rtol, atol + 2 * EPS[dtype] * dz_abs.sum(axis=0), "db vs oracle")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("kind,slope", [("relu", 0.01), ("leaky_relu", 0.0), ("sigmoid", 0.01)],
                         ids=["relu", "leaky_relu-0", "sigmoid"])
def test_non_finite_values_propagate_as_on_the_cpu(rng, kind, slope, dtype):
    n, k, m = 130, 3, 5
    x, w, b = _layer(rng, n, k, m, dtype, True)
    x[3, 1] = np.nan
    x[70, 0] = np.inf
    y = x @ w
    _forward(y, b, kind, slope)
    expected = L.linear_forward(x, w, b, kind, negative_slope=slope)
    if kind in SELECTS:
        _assert_same_bits(y, expected, "y")
    else:
        assert_close(y, expected, 4 * EPS[dtype], 0.0, "y")
    # a NaN row of x gives a NaN row of y; the inf row gives +-inf (sigmoid: 0 and 1; leaky_relu with slope
    # 0: 0 * -inf = NaN, as torch); every other row stays finite
    assert np.isnan(y[3]).all() and np.isfinite(np.delete(y, [3, 70], axis=0)).all()

    # backward: the saved y above (NaN row, +-inf or saturated values) and NaN / inf in dy, in two blocks
    dy = random_array(rng, (n, m), dtype)
    dy[5, 2], dy[100, 4], dy[129, 0] = np.nan, np.inf, -np.inf
    dz, part, db = _backward(dy, y, kind, slope, True)
    _check_against_cpu(dz, part, db, dy, x, w, y, kind, slope)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
def test_grid_stride_covers_every_element_and_block(rng, monkeypatch, dtype):
    # one block of 32 threads: the epilogue has 4290 elements and the dz pass 3 x 33 (row block, column)
    # pairs, so each thread must take several, none twice, none skipped
    monkeypatch.setattr(CL, "elementwise_grid", lambda n: (1, 32))
    x, w, b = _layer(rng, 130, 4, 33, dtype, True)
    y = x @ w
    _forward(y, b, "leaky_relu", 0.2)
    _assert_same_bits(y, L.linear_forward(x, w, b, "leaky_relu", negative_slope=0.2), "y")
    dy = random_array(rng, y.shape, dtype)
    dz, part, db = _backward(dy, y, "leaky_relu", 0.2, True)
    _check_against_cpu(dz, part, db, dy, x, w, y, "leaky_relu", 0.2)


def test_empty_batch_gives_zero_bias_gradient(rng):
    x, w, b = _layer(rng, 0, 3, 4, np.float64, True)
    y = x @ w
    _forward(y, b, "relu", 0.01)
    assert y.shape == (0, 4)
    dz, part, db = _backward(np.empty((0, 4)), y, "relu", 0.01, True)
    assert dz.shape == (0, 4) and part.shape == (0, 4)
    _assert_same_bits(db, L.linear_backward(np.empty((0, 4)), x, w, y, "relu")[2], "db")
    assert db.tolist() == [0.0] * 4
