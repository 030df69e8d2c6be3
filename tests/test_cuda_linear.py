"""CUDA passes of the linear layer (kernels/cuda/linear.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python call per thread, so the
layers are small; with one, on the device (NumPy arrays are copied in and out by Numba). The GEMMs are
cuBLAS's on a GPU and are not part of kernels/cuda/linear.py: here NumPy's matmul stands in for them, the
same call the CPU layer makes. Launch arguments come from the functions the public CPU API uses
(``activation_code``, ``check_negative_slope``); buffers start at 7, not 0, so a skipped element shows.

The last section runs the public kernels.linear functions on device arrays (the ``dev`` fixture: the
simulator's arrays, or CuPy's on a GPU, where the GEMMs are cuBLAS's), against the CPU functions, the oracle
and the CPU's errors.

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
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, TOLS, assert_close, assert_same_error, random_array

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


# ------------------------------------------------------------------------------------------------------
# The public functions on device arrays: kernels.linear.linear_forward / linear_backward dispatch to the
# passes above and to the device GEMMs (NumPy's matmul in the simulator, cuBLAS through CuPy on a GPU).
#
# Tolerances against the CPU layer: each side's GEMM is within _gemm_atol of the exact product (another
# summation order on a GPU, FMAs), hence 2 of it between them, plus the activation's few ulp as above (the
# activations are 1-Lipschitz, so a GEMM error carries over to y unchanged). The backward gets the CPU's y
# on both sides, so dz differs by the activation's ulps only and the dx / dw GEMMs add their bounds on top
# (3 _gemm_atol: two GEMMs, and the dz difference, which 4 eps sum |dz| |w| covers). The bias gradient is
# bitwise the CPU's reduction of the device's own dz (read from the workspace), and bitwise the CPU layer's
# for the selects. Against the oracle: the dtype tolerances plus the GEMM bounds, as above.

PUBLIC_CASES = [
    # (kind, slope, dtype, (N, in, out), bias, device workspace)
    (None, 0.01, np.float64, (1, 1, 1), False, False),  # no pass at all: the GEMMs alone
    (None, 0.01, np.float32, (7, 3, 5), True, True),  # identity with a bias: dz is dy, only the partials
    ("relu", 0.01, np.float32, (7, 5, 33), True, False),
    ("leaky_relu", 0.2, np.float64, (65, 3, 5), True, True),  # a last row block of one row
    ("sigmoid", 0.01, np.float32, (1, 4, 7), False, True),
    ("tanh", 0.01, np.float64, (65, 2, 1), True, False),
]
PUBLIC_IDS = ["identity-nobias-1x1x1", "identity-bias-ws", "relu", "leaky_relu-ws-65rows", "sigmoid-nobias-ws",
              "tanh-65rows"]


def _act_rtol(dtype):
    return 1e-15 if dtype == np.float64 else 4 * EPS[dtype]


@pytest.mark.parametrize("kind,slope,dtype,nkm,bias,use_ws", PUBLIC_CASES, ids=PUBLIC_IDS)
def test_public_layer_on_device_arrays(dev, rng, kind, slope, dtype, nkm, bias, use_ws):
    n, k, m = nkm
    rtol, atol = TOLS[dtype]
    x, w, b = _layer(rng, n, k, m, dtype, bias)
    d = dev.asarray
    y_dev = L.linear_forward(d(x), d(w), None if b is None else d(b), kind, negative_slope=slope)
    assert dev.get_array_module(y_dev) is dev, type(y_dev)
    assert y_dev.shape == (n, m) and y_dev.dtype == dtype
    y = dev.asnumpy(y_dev)
    y_cpu = L.linear_forward(x, w, b, kind, negative_slope=slope)
    bound = _gemm_atol(np.abs(x), np.abs(w), k, dtype, 0.0 if b is None else np.abs(b))
    assert_close(y, y_cpu, _act_rtol(dtype), 2 * bound, "y vs CPU")
    assert_close(y, R.linear_forward(x, w, b, kind, slope), rtol, atol + bound, "y vs oracle")

    dy = random_array(rng, (n, m), dtype)
    ws = L.LinearWorkspace(n, m, dtype, device="cuda") if use_ws else None
    outs = {"out_dx": d(np.full((n, k), 7.0, dtype)), "out_dw": d(np.full((k, m), 7.0, dtype)),
            "out_db": d(np.full(m, 7.0, dtype)) if bias else None}
    dx_dev, dw_dev, db_dev = L.linear_backward(d(dy), d(x), d(w), d(y_cpu), kind, negative_slope=slope,
                                               has_bias=bias, workspace=ws, **outs)
    assert dx_dev is outs["out_dx"] and dw_dev is outs["out_dw"] and db_dev is outs["out_db"]
    dx, dw = dev.asnumpy(dx_dev), dev.asnumpy(dw_dev)
    dx_cpu, dw_cpu, db_cpu = L.linear_backward(dy, x, w, y_cpu, kind, negative_slope=slope, has_bias=bias)
    dz_abs = np.abs(R.activation_backward(dy, y_cpu, kind, slope))
    dx_bound = _gemm_atol(dz_abs, np.abs(w).T, m, dtype)
    dw_bound = _gemm_atol(np.abs(x).T, dz_abs, n, dtype)
    assert_close(dx, dx_cpu, 0.0, 3 * dx_bound, "dx vs CPU")
    assert_close(dw, dw_cpu, 0.0, 3 * dw_bound, "dw vs CPU")
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y_cpu, kind, slope, has_bias=bias)
    assert_close(dx, rdx, rtol, atol + dx_bound, "dx vs oracle")
    assert_close(dw, rdw, rtol, atol + dw_bound, "dw vs oracle")
    if not bias:
        assert db_dev is None and db_cpu is None
        return
    db = dev.asnumpy(db_dev)
    if use_ws:
        # the reduction on the device is the CPU's, addition for addition, on the device's dz
        dz = dy if kind is None else dev.asnumpy(ws.dz)
        part_same_dz, db_same_dz = _cpu_sums_of(dz)
        _assert_same_bits(dev.asnumpy(ws.partials), part_same_dz, "workspace partials vs the CPU's sums")
        _assert_same_bits(db, db_same_dz, "db vs the CPU's sum of the device's dz")
    if kind in SELECTS:
        _assert_same_bits(db, db_cpu, "db vs CPU")
    else:
        assert_close(db, db_cpu, EPS[dtype], 4 * EPS[dtype] * dz_abs.sum(axis=0), "db vs CPU")
    assert_close(db, rdb, rtol, atol + 2 * EPS[dtype] * dz_abs.sum(axis=0), "db vs oracle")


def test_public_need_dx_false_and_empty_batch_on_device(dev, rng):
    d = dev.asarray
    x, w, b = _layer(rng, 5, 3, 4, np.float32, True)
    y = L.linear_forward(x, w, b, "relu")
    dy = random_array(rng, y.shape, np.float32)
    dx, dw, db = L.linear_backward(d(dy), d(x), d(w), d(y), "relu", need_dx=False)
    _, dw_cpu, db_cpu = L.linear_backward(dy, x, w, y, "relu", need_dx=False)
    assert dx is None
    assert_close(dev.asnumpy(dw), dw_cpu, 0.0, 3 * _gemm_atol(np.abs(x).T, np.abs(dy), 5, np.float32), "dw")
    _assert_same_bits(dev.asnumpy(db), db_cpu, "db")
    # no rows: y is (0, out), the weight gradient and the bias gradient are zeros, as on the CPU
    x0 = np.empty((0, 3), np.float32)
    y0 = L.linear_forward(d(x0), d(w), d(b), "relu")
    assert y0.shape == (0, 4) and dev.get_array_module(y0) is dev
    dx0, dw0, db0 = L.linear_backward(d(np.empty((0, 4), np.float32)), d(x0), d(w), y0, "relu")
    assert dx0.shape == (0, 3)
    assert dev.asnumpy(dw0).tolist() == [[0.0] * 4] * 3 and dev.asnumpy(db0).tolist() == [0.0] * 4


def test_public_functions_pass_allow_tf32_to_the_device_gemms(dev, rng, monkeypatch):
    seen = []
    real = L.device_matmul

    def spy(products, allow_tf32=False):
        seen.append((len(products), allow_tf32))
        real(products, allow_tf32)

    monkeypatch.setattr(L, "device_matmul", spy)
    d = dev.asarray
    x, w, _ = _layer(rng, 3, 2, 4, np.float32, False)
    y = L.linear_forward(d(x), d(w), allow_tf32=True)  # identity, no bias: the GEMM alone
    L.linear_backward(d(random_array(rng, (3, 4), np.float32)), d(x), d(w), y, has_bias=False)
    L.linear_backward(d(random_array(rng, (3, 4), np.float32)), d(x), d(w), y, has_bias=False, need_dx=False,
                      allow_tf32=True)
    assert seen == [(1, True), (2, False), (1, True)]


def _ws(n, m, dtype, device):
    return L.LinearWorkspace(n, m, dtype, device=device)


# bad calls, each given (d, device): d puts a host array on the backend under test, device names it
X, W, B, DY = (np.linspace(0.5, 2.0, 12).reshape(4, 3), np.linspace(-1.0, 1.0, 15).reshape(3, 5),
               np.linspace(-0.5, 0.5, 5), np.linspace(-2.0, 1.0, 20).reshape(4, 5))


def _out_overlapping_x(d, device):
    buf = d(np.ones((4, 6)))
    return L.linear_forward(buf[:, :3], d(W[:, :3]), out=buf[:, 3:6])


def _out_dw_overlapping_w(d, device):
    w = d(W)
    return L.linear_backward(d(DY), d(X), w, d(DY), out_dw=w)


def _workspace_overlapping_out_dx(d, device):
    ws = _ws(4, 5, np.float64, device)
    return L.linear_backward(d(DY), d(X), d(W), d(DY), "relu", out_dx=ws.dz.reshape(-1)[:12].reshape(4, 3),
                             workspace=ws)


BAD_CALLS = {
    "w-dtype": lambda d, device: L.linear_forward(d(X), d(W.astype(np.float32)), d(B)),
    "x-not-2d": lambda d, device: L.linear_forward(d(X[0]), d(W), d(B)),
    "w-shape": lambda d, device: L.linear_forward(d(X), d(W[:2]), d(B)),
    "b-shape": lambda d, device: L.linear_forward(d(X), d(W), d(B[:4])),
    "activation": lambda d, device: L.linear_forward(d(X), d(W), d(B), "gelu"),
    "slope": lambda d, device: L.linear_forward(d(X), d(W), d(B), "leaky_relu", negative_slope=-0.1),
    "out-dtype": lambda d, device: L.linear_forward(d(X), d(W), d(B), out=d(DY.astype(np.float32))),
    "out-overlaps-x": _out_overlapping_x,
    "allow_tf32": lambda d, device: L.linear_forward(d(X), d(W), allow_tf32=1),
    "dy-shape": lambda d, device: L.linear_backward(d(DY[:, :4]), d(X), d(W), d(DY), "relu"),
    "out_dw-overlaps-w": _out_dw_overlapping_w,
    "out_db-without-bias": lambda d, device: L.linear_backward(d(DY), d(X), d(W), d(DY), has_bias=False,
                                                               out_db=d(B)),
    "out_dx-without-need_dx": lambda d, device: L.linear_backward(d(DY), d(X), d(W), d(DY), need_dx=False,
                                                                  out_dx=d(X.copy())),
    "need_dx": lambda d, device: L.linear_backward(d(DY), d(X), d(W), d(DY), need_dx="no"),
    "workspace-shape": lambda d, device: L.linear_backward(d(DY), d(X), d(W), d(DY), "relu",
                                                           workspace=_ws(4, 6, np.float64, device)),
    "workspace-overlaps-out_dx": _workspace_overlapping_out_dx,
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_public_errors_on_device_arrays_match_the_cpu(dev, call):
    assert_same_error(lambda: call(np.asarray, "cpu"), lambda: call(dev.asarray, "cuda"))


def test_public_host_device_mixes_name_the_arguments(dev):
    d = dev.asarray
    with pytest.raises(TypeError, match=r"^w is on the CPU \(NumPy\) but x is on the GPU"):
        L.linear_forward(d(X), W, d(B))
    with pytest.raises(TypeError, match=r"^out is on the CPU \(NumPy\) but x is on the GPU"):
        L.linear_forward(d(X), d(W), out=np.empty((4, 5)))
    with pytest.raises(TypeError, match=r"^x is on the CPU \(NumPy\) but dy is on the GPU"):
        L.linear_backward(d(DY), X, d(W), d(DY))
    with pytest.raises(TypeError, match=r"^out_db is on the CPU \(NumPy\) but dy is on the GPU"):
        L.linear_backward(d(DY), d(X), d(W), d(DY), out_db=np.empty(5))
    with pytest.raises(TypeError, match=r"^the arrays are on the GPU but workspace is on the CPU: create "
                                        r"LinearWorkspace\(4, 5, float64, device='cuda'\)"):
        L.linear_backward(d(DY), d(X), d(W), d(DY), "relu", workspace=_ws(4, 5, np.float64, "cpu"))
    with pytest.raises(TypeError, match=r"^the arrays are on the CPU but workspace is on the GPU"):
        L.linear_backward(DY, X, W, DY, "relu", workspace=_ws(4, 5, np.float64, "cuda"))


def test_device_workspace(dev):
    ws = L.LinearWorkspace(130, 3, np.float32, device="cuda")
    assert dev.get_array_module(ws.dz) is dev and ws.dz.shape == (130, 3) and ws.dz.dtype == np.float32
    assert dev.get_array_module(ws.partials) is dev and ws.partials.shape == (3, 3)
    assert ws.partials.dtype == np.float64
    with pytest.raises(ValueError, match=r"device = 'gpu' is not one of \('cpu', 'cuda'\)"):
        L.LinearWorkspace(4, 5, np.float32, device="gpu")
