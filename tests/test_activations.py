"""Activations (kernels.activations) against the float64 oracle: values, gradients, accuracy, edges, errors."""

import numpy as np
import pytest

from kernels import activations as A
from kernels import reference as R
from tests.helpers import (
    AWKWARD_SHAPES,
    DTYPE_IDS,
    DTYPE_TOLS,
    DTYPES,
    SHAPE_IDS,
    TOLS,
    assert_close,
    assert_rejects_bad_out,
    assert_same_bits_at_one_and_two_threads,
    assert_within_ulp,
    needs_two_threads,
    random_array,
)

# Deliberately not TOLS, at both dtypes: a saturated sigmoid is ~1e-38..1e-5 (so an atol of 1e-30, not 2e-6,
# keeps its relative error checked) and a saturated tanh is +-1 up to 1e-10 relative at either dtype.
SATURATION_TOLS = {"sigmoid": (2e-5, 1e-30), "tanh": (1e-10, 0.0)}
KINDS = [None, "identity", "relu", "leaky_relu", "sigmoid", "tanh"]
# awkward 2-D shapes, plus any-shape cases (0-d, 1-D, 3-D, empty) and one large enough for the parallel path
SHAPES = AWKWARD_SHAPES + [(), (5,), (3, 4, 5), (0, 3), (300, 257)]
SHAPE_NAMES = SHAPE_IDS + ["0d", "1d", "3d", "empty", "parallel"]
CONVENIENCE = {
    "relu": (A.relu, A.relu_backward),
    "leaky_relu": (A.leaky_relu, A.leaky_relu_backward),
    "sigmoid": (A.sigmoid, A.sigmoid_backward),
    "tanh": (A.tanh, A.tanh_backward),
}


def _inputs(rng, shape, dtype):
    # scale 4 so sigmoid and tanh see both their linear part and their saturation
    # np.asarray: for shape () random_array gives a NumPy scalar, and the kernels take 0-d arrays
    x = np.asarray(random_array(rng, shape, dtype, scale=4.0))
    dy = np.asarray(random_array(rng, shape, dtype))
    return x, dy


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_NAMES)
@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_backward_match_oracle(rng, kind, dtype, rtol, atol, shape):
    x, dy = _inputs(rng, shape, dtype)
    y = A.activation_forward(x, kind)
    assert y.shape == x.shape
    assert y.dtype == dtype
    assert_close(y, R.activation(x, kind), rtol, atol, "y")
    # backward from the oracle's output rounded to dtype, so both sides see the same saved y
    y_saved = np.asarray(R.activation(x, kind), dtype=dtype)
    dx = A.activation_backward(dy, y_saved, kind)
    assert dx.shape == x.shape
    assert dx.dtype == dtype
    assert_close(dx, R.activation_backward(dy, y_saved, kind), rtol, atol, "dx")


@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", sorted(CONVENIENCE))
def test_convenience_functions_match_oracle(rng, kind, dtype, rtol, atol):
    fwd, bwd = CONVENIENCE[kind]
    x, dy = _inputs(rng, (7, 1023), dtype)
    assert_close(fwd(x), R.activation(x, kind), rtol, atol, "y")
    y = R.activation(x, kind).astype(dtype)
    assert_close(bwd(dy, y), R.activation_backward(dy, y, kind), rtol, atol, "dx")


@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0, 3.0])
def test_leaky_relu_slopes(rng, slope, dtype, rtol, atol):
    x, dy = _inputs(rng, (33, 1025), dtype)
    assert_close(A.leaky_relu(x, slope), R.activation(x, "leaky_relu", slope), rtol, atol, "y")
    y = R.activation(x, "leaky_relu", slope).astype(dtype)
    assert_close(A.leaky_relu_backward(dy, y, slope), R.activation_backward(dy, y, "leaky_relu", slope),
                 rtol, atol, "dx")


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_float32_accuracy_in_ulps(rng, kind):
    # dense sweep through the polynomial / exp switch of tanh (|x| = 0.625) and the saturation, plus tiny x
    x = np.concatenate([np.linspace(-20, 20, 400_001), rng.uniform(-1, 1, 50_000),
                        np.geomspace(1e-30, 1e-2, 2_000), -np.geomspace(1e-30, 1e-2, 2_000)]).astype(np.float32)
    y = A.activation_forward(x, kind)
    exact = R.activation(x, kind)
    assert_within_ulp(y, exact, 4.0, x, kind)
    nz = exact != 0
    rel = np.abs(y[nz].astype(np.float64) - exact[nz]) / np.abs(exact[nz])
    assert rel.max() <= 1e-6
    assert (y[~nz] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_large_inputs_saturate_without_nan(dtype):
    big = [-np.inf, -1e30, -1e4, -100.0, -88.5, -87.0, -30.0, 30.0, 88.5, 100.0, 1e4, 1e30, np.inf]
    x = np.array(big, dtype=dtype)
    s = A.sigmoid(x)
    t = A.tanh(x)
    assert not np.isnan(s).any() and not np.isnan(t).any()
    assert ((s >= 0) & (s <= 1)).all() and ((t >= -1) & (t <= 1)).all()
    assert s[0] == 0.0 and s[-1] == 1.0 and t[0] == -1.0 and t[-1] == 1.0
    finite = np.isfinite(x)
    assert_close(s[finite], R.activation(x[finite], "sigmoid"), *SATURATION_TOLS["sigmoid"], "sigmoid")
    assert_close(t[finite], R.activation(x[finite], "tanh"), *SATURATION_TOLS["tanh"], "tanh")
    assert A.relu(x)[-1] == np.inf and A.relu(x)[0] == 0.0
    # zeros of both signs
    z = np.array([0.0, -0.0], dtype=dtype)
    assert A.sigmoid(z).tolist() == [0.5, 0.5]
    assert A.tanh(z).tolist() == [0.0, 0.0] and A.relu(z).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_relu_gradient_at_zero_is_zero(rng, dtype):
    dy = random_array(rng, (4,), dtype)
    y = np.array([0.0, -0.0, 1.0, 0.0], dtype=dtype)
    assert A.relu_backward(dy, y).tolist() == [0.0, 0.0, dy[2], 0.0]
    assert A.leaky_relu_backward(dy, y, 0.5).tolist() == [dy[0] * dtype(0.5), dy[1] * dtype(0.5), dy[2],
                                                          dy[3] * dtype(0.5)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_nan_propagates(rng, kind, dtype):
    x, dy = _inputs(rng, (3, 50), dtype)
    x[1, 7] = np.nan
    y = A.activation_forward(x, kind)
    assert np.isnan(y[1, 7]) and np.isnan(y).sum() == 1
    # backward: a NaN upstream gradient stays NaN where it flows, exactly as the oracle selects
    y = R.activation(np.where(np.isnan(x), 1.0, x), kind).astype(dtype)
    dy[2, 3] = np.nan
    dx = A.activation_backward(dy, y, kind)
    assert_close(dx, R.activation_backward(dy, y, kind), *TOLS[dtype], "dx")
    # a NaN saved output: relu-like kinds take the y <= 0 branch (as the oracle), smooth ones give NaN
    y[0, 0] = np.nan
    dx = A.activation_backward(dy, y, kind)
    assert_close(dx, R.activation_backward(dy, y, kind), *TOLS[dtype], "dx")


@pytest.mark.parametrize("kind", ["relu", "sigmoid", "tanh"])
def test_out_buffers_reused(rng, kind):
    out = np.empty((33, 1025), np.float32)
    dx_out = np.empty_like(out)
    x1, dy = _inputs(rng, out.shape, np.float32)
    x2, _ = _inputs(rng, out.shape, np.float32)
    first = A.activation_forward(x1, kind, out=out).copy()
    assert A.activation_forward(x2, kind, out=out) is out
    assert_close(out, R.activation(x2, kind), *TOLS[np.float32], "y")
    A.activation_forward(x1, kind, out=out)
    assert np.array_equal(out, first)
    y = first
    assert A.activation_backward(dy, y, kind, out=dx_out) is dx_out
    assert_close(dx_out, R.activation_backward(dy, y, kind), *TOLS[np.float32], "dx")


def test_non_contiguous_inputs_are_copied(rng):
    x = random_array(rng, (40, 30), np.float64)
    dy = random_array(rng, (30, 40), np.float64)
    assert_close(A.tanh(x.T), np.tanh(x.T), *TOLS[np.float64], "y")
    y = np.tanh(x.T)
    assert_close(A.tanh_backward(dy[:, ::-1], y), dy[:, ::-1] * (1 - y * y), *TOLS[np.float64], "dx")


@needs_two_threads
@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_same_bits_at_one_and_two_threads(rng, kind):
    x, dy = _inputs(rng, (300, 257), np.float32)

    def run():
        y = A.activation_forward(x, kind)
        return y, A.activation_backward(dy, y, kind)

    assert_same_bits_at_one_and_two_threads(run)


# ----------------------------------------------------------------------------------------------------
# bad input


def test_rejects_unknown_kind():
    with pytest.raises(ValueError, match=r"activation = 'gelu' is not one of \('identity', 'relu'"):
        A.activation_forward(np.ones(3), "gelu")
    with pytest.raises(ValueError, match="activation = 'Relu'"):
        A.activation_backward(np.ones(3), np.ones(3), "Relu")
    with pytest.raises(ValueError, match=r"activation = \['relu'\]"):
        A.activation_forward(np.ones(3), ["relu"])


@pytest.mark.parametrize("slope,err,match", [
    (-0.01, ValueError, "negative_slope = -0.01 is out of range: must be finite and >= 0, because the backward"),
    (np.inf, ValueError, "negative_slope = inf is out of range"),
    (np.nan, ValueError, "negative_slope must not be NaN"),
    ("0.1", TypeError, "negative_slope must be a real number, got str"),
])
def test_rejects_bad_negative_slope(slope, err, match):
    with pytest.raises(err, match=match):
        A.leaky_relu(np.ones(3), slope)
    with pytest.raises(err, match=match):
        A.leaky_relu_backward(np.ones(3), np.ones(3), slope)


def test_rejects_bad_dtypes_and_shapes():
    with pytest.raises(TypeError, match="x has dtype int32; allowed dtypes: float32, float64"):
        A.relu(np.ones(3, np.int32))
    with pytest.raises(TypeError, match="x has dtype float16"):
        A.sigmoid(np.ones(3, np.float16))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray or a CUDA device array .CuPy., got list"):
        A.tanh([1.0, 2.0])
    with pytest.raises(TypeError, match="y has dtype float64 but dy has dtype float32"):
        A.relu_backward(np.ones(3, np.float32), np.ones(3))
    with pytest.raises(TypeError, match="dy has dtype int64"):
        A.relu_backward(np.ones(3, np.int64), np.ones(3))
    with pytest.raises(ValueError, match=r"y has shape \(4,\) but dy has shape \(3,\)"):
        A.sigmoid_backward(np.ones(3), np.ones(4))


def test_rejects_bad_out():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(5, 4\), expected \(4, 5\)"):
        A.relu(x, out=np.empty((5, 4), np.float32))
    assert_rejects_bad_out(lambda out: A.relu(x, out=out), x.shape, np.float32, x)
    y = x.copy()
    assert_rejects_bad_out(lambda out: A.relu_backward(x, y, out=out), x.shape, np.float32, x)
    assert_rejects_bad_out(lambda out: A.relu_backward(x, y, out=out), x.shape, np.float32, y)
