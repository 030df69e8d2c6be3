"""Linear layer with fused bias + activation (kernels.linear) against the float64 oracle."""

import numpy as np
import pytest

from kernels import linear as L
from kernels import reference as R
from kernels._util import REDUCE_BLOCK_ROWS
from tests.helpers import (
    DTYPE_IDS,
    DTYPE_TOLS,
    TOLS,
    assert_close,
    assert_rejects_bad_out,
    assert_same_bits_at_one_and_two_threads,
    needs_two_threads,
    random_array,
)

KINDS = [None, "relu", "leaky_relu", "sigmoid", "tanh"]
# (N, in, out): single element, single row, single input, odd sizes around powers of two, and a larger one
# (N * out above PARALLEL_MIN_ELEMENTS) whose N spans several REDUCE_BLOCK_ROWS blocks, the last partial
SHAPES = [(1, 1, 1), (1, 37, 5), (64, 1, 3), (7, 1023, 33), (33, 1025, 17), (300, 40, 130)]
SHAPE_IDS = ["1x1x1", "1x37x5", "64x1x3", "7x1023x33", "33x1025x17", "300x40x130"]
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


def _gemm_atol(a_abs, b_abs, k, dtype, extra=0.0):
    """Elementwise rounding bound of a dtype GEMM a @ b (k terms): 4 sqrt(k+1) eps (|a| @ |b|).

    A summation error grows like sqrt(k) eps times the sum of |terms| (a generous factor 4 on top); a
    kernel bug (wrong index, missing bias, wrong derivative) makes errors of the size of the values.
    """
    return 4.0 * np.sqrt(k + 1.0) * EPS[dtype] * (a_abs @ b_abs + extra)


def _layer(rng, n, k, m, dtype, bias):
    x = random_array(rng, (n, k), dtype)
    w = random_array(rng, (k, m), dtype, scale=1.0 / np.sqrt(k))
    b = random_array(rng, (m,), dtype) if bias else None
    return x, w, b


def _check_forward(x, w, b, kind, dtype, rtol, atol, out=None):
    y = L.linear_forward(x, w, b, kind, out=out)
    assert y.shape == (x.shape[0], w.shape[1])
    assert y.dtype == dtype
    # every activation is 1-Lipschitz, so the GEMM's bound carries over to y
    bound = _gemm_atol(np.abs(x), np.abs(w), x.shape[1], dtype, 0.0 if b is None else np.abs(b))
    assert_close(y, R.linear_forward(x, w, b, kind), rtol, atol + bound, "y")
    return y


def _check_backward(dy, x, w, y, kind, has_bias, dtype, rtol, atol, **kw):
    dx, dw, db = L.linear_backward(dy, x, w, y, kind, has_bias=has_bias, **kw)
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, kind, has_bias=has_bias)
    n, k = x.shape
    m = w.shape[1]
    assert (dx.shape, dw.shape) == ((n, k), (k, m))
    assert dx.dtype == dtype and dw.dtype == dtype
    dz_abs = np.abs(R.activation_backward(dy, y, kind))
    assert_close(dx, rdx, rtol, atol + _gemm_atol(dz_abs, np.abs(w).T, m, dtype), "dx")
    assert_close(dw, rdw, rtol, atol + _gemm_atol(np.abs(x).T, dz_abs, n, dtype), "dw")
    if has_bias:
        assert db.shape == (m,) and db.dtype == dtype
        # float64 sums of dz, each dz element rounded to dtype: error <= 2 eps sum |dz|
        assert_close(db, rdb, rtol, atol + 2 * EPS[dtype] * dz_abs.sum(axis=0), "db")
    else:
        assert db is None
    return dx, dw, db


@pytest.mark.parametrize("kind", ["relu", None])
def test_backward_without_dx_skips_it_and_keeps_the_other_gradients(rng, kind):
    x, w, b = _layer(rng, 33, 17, 9, np.float64, True)
    y = L.linear_forward(x, w, b, kind)
    dy = random_array(rng, y.shape, np.float64)
    dx, dw, db = L.linear_backward(dy, x, w, y, kind, need_dx=False)
    assert dx is None
    _, rdw, rdb = R.linear_backward(dy, x, w, y, kind)
    assert_close(dw, rdw, 1e-12, 1e-12, "dw")
    assert_close(db, rdb, 1e-12, 1e-12, "db")


@pytest.mark.parametrize("nkm", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_match_oracle(rng, kind, dtype, rtol, atol, bias, nkm):
    n, k, m = nkm
    x, w, b = _layer(rng, n, k, m, dtype, bias)
    _check_forward(x, w, b, kind, dtype, rtol, atol)
    # backward from the oracle's y rounded to dtype, so kernel and oracle see the same saved output
    y = R.linear_forward(x, w, b, kind).astype(dtype)
    dy = random_array(rng, (n, m), dtype)
    _check_backward(dy, x, w, y, kind, bias, dtype, rtol, atol)


@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
def test_identity_spellings_and_leaky_slope(rng, dtype, rtol, atol):
    x, w, b = _layer(rng, 9, 20, 11, dtype, True)
    _check_forward(x, w, b, "identity", dtype, rtol, atol)
    y = L.linear_forward(x, w, b, "leaky_relu", negative_slope=0.3)
    bound = _gemm_atol(np.abs(x), np.abs(w), 20, dtype, np.abs(b))
    assert_close(y, R.linear_forward(x, w, b, "leaky_relu", 0.3), rtol, atol + bound, "y")
    y = R.linear_forward(x, w, b, "leaky_relu", 0.3).astype(dtype)
    dy = random_array(rng, y.shape, dtype)
    dx, dw, db = L.linear_backward(dy, x, w, y, "leaky_relu", negative_slope=0.3)
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, "leaky_relu", 0.3)
    dz_abs = np.abs(R.activation_backward(dy, y, "leaky_relu", 0.3))
    assert_close(dx, rdx, rtol, atol + _gemm_atol(dz_abs, np.abs(w).T, 11, dtype), "dx")
    assert_close(dw, rdw, rtol, atol + _gemm_atol(np.abs(x).T, dz_abs, 9, dtype), "dw")
    assert_close(db, rdb, rtol, atol + 2 * EPS[dtype] * dz_abs.sum(axis=0), "db")


def test_empty_batch(rng):
    x, w, b = _layer(rng, 0, 5, 3, np.float64, True)
    y = L.linear_forward(x, w, b, "relu")
    assert y.shape == (0, 3)
    dx, dw, db = L.linear_backward(np.ones((0, 3)), x, w, y, "relu")
    assert dx.shape == (0, 5) and np.array_equal(dw, np.zeros((5, 3))) and np.array_equal(db, np.zeros(3))


@pytest.mark.parametrize("kind", ["relu", "tanh", None])
def test_out_buffers_and_workspace_reused(rng, kind):
    n, k, m = 200, 30, 170
    dtype = np.float32
    ws = L.LinearWorkspace(n, m, dtype)
    y_out = np.empty((n, m), dtype)
    dx_out, dw_out, db_out = np.empty((n, k), dtype), np.empty((k, m), dtype), np.empty(m, dtype)
    layers = [_layer(rng, n, k, m, dtype, True) for _ in range(2)]
    dys = [random_array(rng, (n, m), dtype) for _ in range(2)]
    results = []
    for i in (0, 1, 0):  # the third call repeats the first on buffers dirtied by the second
        x, w, b = layers[i]
        y = L.linear_forward(x, w, b, kind, out=y_out)
        assert y is y_out
        grads = L.linear_backward(dys[i], x, w, y, kind, out_dx=dx_out, out_dw=dw_out, out_db=db_out,
                                  workspace=ws)
        assert grads[0] is dx_out and grads[1] is dw_out and grads[2] is db_out
        results.append([a.copy() for a in (y,) + grads])
    x, w, b = layers[0]
    _check_forward(x, w, b, kind, dtype, *TOLS[dtype], out=np.empty((n, m), dtype))
    _check_backward(dys[0], x, w, results[0][0], kind, True, dtype, *TOLS[dtype])
    for a, c in zip(results[0], results[2]):
        assert np.array_equal(a, c)
    # with and without the workspace: the same bits
    fresh = L.linear_backward(dys[0], x, w, results[0][0], kind)
    for a, c in zip(results[0][1:], fresh):
        assert np.array_equal(a, c)


@needs_two_threads
@pytest.mark.parametrize("kind", ["relu", "sigmoid", None])
def test_same_bits_at_one_and_two_threads(rng, kind):
    # The passes around the GEMMs run on one thread by design (kernels/linear.py says why); this pins the
    # promise that the thread count never changes the bits, over several row blocks and a partial last one.
    n, k, m = 5 * REDUCE_BLOCK_ROWS + 3, 24, 150
    x, w, b = _layer(rng, n, k, m, np.float32, True)
    dy = random_array(rng, (n, m), np.float32)

    def run():
        y = L.linear_forward(x, w, b, kind)
        return (y, *L.linear_backward(dy, x, w, y, kind))

    assert_same_bits_at_one_and_two_threads(run)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_in_x_stays_in_its_row(rng, kind):
    x, w, b = _layer(rng, 300, 40, 130, np.float32, True)
    x[17, 5] = np.nan
    y = L.linear_forward(x, w, b, kind)
    assert np.isnan(y[17]).all()
    assert np.isfinite(np.delete(y, 17, axis=0)).all()


def test_non_contiguous_inputs_are_copied(rng):
    x, w, b = _layer(rng, 12, 8, 6, np.float64, True)
    wt = np.ascontiguousarray(w.T)  # torch layout (out, in): pass its transpose view
    xs = np.repeat(x, 2, axis=0)[::2]
    y = L.linear_forward(xs, wt.T, b[::1], "tanh")
    assert_close(y, R.linear_forward(x, w, b, "tanh"), *TOLS[np.float64], "y")
    dy = random_array(rng, (6, 12), np.float64).T
    dx, dw, db = L.linear_backward(dy, xs, wt.T, y, "tanh")
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, "tanh")
    assert_close(dx, rdx, *TOLS[np.float64], "dx")
    assert_close(dw, rdw, *TOLS[np.float64], "dw")
    assert_close(db, rdb, *TOLS[np.float64], "db")


# ----------------------------------------------------------------------------------------------------
# bad input

X = np.ones((4, 3))
W = np.ones((3, 5))
B = np.ones(5)
Y = np.ones((4, 5))


@pytest.mark.parametrize("args,kw,err,match", [
    ((X, W, B, "gelu"), {}, ValueError, r"activation = 'gelu' is not one of \('identity', 'relu', 'leaky_relu'"),
    ((X, W, B, "relu"), {"negative_slope": -1.0}, ValueError, "negative_slope = -1.0 is out of range"),
    ((X.astype(np.float32), W, B), {}, TypeError, "w has dtype float64 but x has dtype float32"),
    ((X, W, B.astype(np.float32)), {}, TypeError, "b has dtype float32 but x has dtype float64"),
    ((X.astype(np.int32), W, B), {}, TypeError, "x has dtype int32; allowed dtypes: float32, float64"),
    ((X.tolist(), W, B), {}, TypeError, "x must be a numpy.ndarray or a CUDA device array .CuPy., got list"),
    ((np.ones(3), W, B), {}, ValueError, "x must be 2-D"),
    ((X, np.ones((3, 5, 1)), B), {}, ValueError, "w must be 2-D"),
    ((X, np.ones((4, 5)), B), {}, ValueError, r"w has shape \(4, 5\) but x has shape \(4, 3\)"),
    ((X, W, np.ones(4)), {}, ValueError, r"b has shape \(4,\), expected \(5,\)"),
    ((X, W, np.ones((1, 5))), {}, ValueError, "b must be 1-D"),
    ((X, W, B), {"out": np.empty((5, 4))}, ValueError, r"out has shape \(5, 4\), expected \(4, 5\)"),
    ((X, W, B), {"out": np.ones((4, 5, 1))[..., 0]}, None, None),
])
def test_forward_rejects(args, kw, err, match):
    if err is None:  # a valid out= view: accepted
        assert L.linear_forward(*args, **kw).shape == (4, 5)
        return
    with pytest.raises(err, match=match):
        L.linear_forward(*args, **kw)


def test_forward_rejects_bad_out():
    # a (4, 5) buffer whose first 12 elements are x: an out that overlaps an input only in part
    buf = np.ones((4, 5))
    x_in_buf = buf.reshape(-1)[:12].reshape(4, 3)
    assert_rejects_bad_out(lambda out: L.linear_forward(x_in_buf, W, B, out=out), (4, 5), np.float64, buf)
    b_in_buf = buf[0]
    assert_rejects_bad_out(lambda out: L.linear_forward(X, W, b_in_buf, out=out), (4, 5), np.float64, buf)


@pytest.mark.parametrize("args,kw,err,match", [
    ((Y, X, W, Y, "swish"), {}, ValueError, r"activation = 'swish' is not one of"),
    ((Y, X, W, Y), {"has_bias": 1}, TypeError, "has_bias must be a bool, got int"),
    ((Y, X, W, Y.astype(np.float32)), {}, TypeError, "y has dtype float32 but dy has dtype float64"),
    ((np.ones((4, 6)), X, W, Y), {}, ValueError, r"dy has shape \(4, 6\): its 6 columns do not match w.shape\[1\] = 5"),
    ((Y, X, W, np.ones((3, 5))), {}, ValueError, r"y has shape \(3, 5\): its 3 rows do not match x.shape\[0\] = 4"),
    ((np.ones(20), X, W, Y), {}, ValueError, "dy must be 2-D"),
    ((Y, X, np.ones((2, 5)), Y), {}, ValueError, r"w has shape \(2, 5\) but x has shape \(4, 3\)"),
    ((Y, X, W, Y, "leaky_relu"), {"negative_slope": -0.5}, ValueError, "negative_slope = -0.5 is out of range"),
    ((Y, X, W, Y), {"out_dx": np.empty((4, 5))}, ValueError, r"out_dx has shape \(4, 5\), expected \(4, 3\)"),
    ((Y, X, W, Y), {"out_db": np.empty(5), "has_bias": False}, ValueError, "out_db was given but has_bias is False"),
    ((Y, X, W, Y), {"need_dx": 0}, TypeError, "need_dx must be a bool, got int"),
    ((Y, X, W, Y), {"out_dx": np.empty((4, 3)), "need_dx": False}, ValueError,
     "out_dx was given but need_dx is False"),
    ((Y, X, W, Y, "relu"), {"workspace": np.empty((4, 5))}, TypeError,
     "workspace must be a LinearWorkspace, got ndarray"),
    ((Y, X, W, Y, "relu"), {"workspace": L.LinearWorkspace(4, 6, np.float64)}, ValueError,
     r"workspace was made for shape \(4, 6\) and dtype float64, but this call needs \(4, 5\)"),
    ((Y, X, W, Y, "relu"), {"workspace": L.LinearWorkspace(4, 5, np.float32)}, ValueError,
     "workspace was made for shape"),
])
def test_backward_rejects(args, kw, err, match):
    with pytest.raises(err, match=match):
        L.linear_backward(*args, **kw)


@pytest.mark.parametrize("name, shape, aliased", [("out_dx", (4, 3), X), ("out_dw", (3, 5), W), ("out_db", (5,), Y[0])],
                         ids=["out_dx", "out_dw", "out_db"])
def test_backward_rejects_bad_out(name, shape, aliased):
    assert_rejects_bad_out(lambda out: L.linear_backward(Y, X, W, Y, **{name: out}), shape, np.float64, aliased,
                           name)


def test_backward_rejects_overlapping_buffers():
    dx = np.empty((4, 3))
    with pytest.raises(ValueError, match="out_dw overlaps an input array"):
        L.linear_backward(Y, X, W, Y, out_dx=dx, out_dw=W)
    big = np.empty(20)
    with pytest.raises(ValueError, match="out_dw overlaps an input array"):
        L.linear_backward(Y, X, W, Y, out_dx=big[:12].reshape(4, 3), out_dw=big[5:20].reshape(3, 5))
    with pytest.raises(ValueError, match="out_db overlaps an input array"):
        L.linear_backward(Y, X, W, Y, out_db=Y[0])
    ws = L.LinearWorkspace(4, 5, np.float64)
    with pytest.raises(ValueError, match="workspace overlaps out_dx"):
        L.linear_backward(Y, X, W, Y, "relu", out_dx=ws.dz.reshape(-1)[:12].reshape(4, 3), workspace=ws)
    with pytest.raises(TypeError, match="dtype int32 is not supported; allowed dtypes: float32, float64"):
        L.LinearWorkspace(4, 5, np.int32)
