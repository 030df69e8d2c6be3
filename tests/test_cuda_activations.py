"""CUDA activation kernels (kernels/cuda/activations.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python call per thread, so the
arrays are small; with one, on the device (NumPy arrays are copied in and out by Numba). The launch
arguments are built by the same functions the public CPU API uses (``activation_code``,
``check_negative_slope``), and the inputs include NaN, +-inf, +-0.0 and values that saturate sigmoid/tanh.

The last section runs the public kernels.activations functions on device arrays (the ``dev`` fixture).

Tolerances against the CPU kernels: the simulator calls the very helpers the CPU loop inlines (compiled
for the host), so it agrees to the last bit in practice; the bounds are set for a real GPU, where float64
sigmoid/tanh call libdevice's exp/tanh (within 2 ulp) instead of the host libm, and NVVM fuses
multiply-adds into FMAs (each saves one rounding): a few ulp, i.e. 1e-15 relative in float64 and 4 ulp in
float32. The selects (identity, relu, leaky_relu) must agree bitwise, the sign of zero included.
"""

import numba
import numpy as np
import pytest

from kernels import activations as A
from kernels import reference as R
from tests.helpers import DTYPE_IDS, DTYPES, TOLS, assert_close, assert_same_error, random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda.activations as CA

# (kind, negative_slope): leaky_relu at torch's default, a typical slope and the edge slopes 0 and > 1
CASES = [("identity", 0.01), ("relu", 0.01), ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", 0.0),
         ("leaky_relu", 3.0), ("sigmoid", 0.01), ("tanh", 0.01)]
CASE_IDS = ["identity", "relu", "leaky_relu", "leaky_relu-0.2", "leaky_relu-0", "leaky_relu-3", "sigmoid",
            "tanh"]
SELECTS = {"identity", "relu", "leaky_relu"}
# 1: a single thread; 300: two blocks, the second partly idle, with every special value
SIZES = [1, 300]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 0.3, -0.3, 0.7, -0.7, 30.0, -30.0, 88.5, -88.5,
           100.0, -100.0, 1e30, -1e30]
FORWARD_DTYPES = [np.float32, np.float64]

# the oracle's np.where evaluates slope * x (slope * dy) for every element, so with slope 0 an infinite x
# (dy) warns about 0 * inf; where that branch is selected the NaN is the answer, as torch gives too
OK_ORACLE_0_TIMES_INF = pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")


def _tols(dtype):
    return (1e-15, 0.0) if dtype == np.float64 else (4 * float(np.finfo(np.float32).eps), 0.0)


def _inputs(rng, n, dtype):
    """n fresh normal(0, 4) values (linear part and saturation of sigmoid/tanh), with the specials at random
    places where n has room for all of them."""
    x = random_array(rng, n, dtype, scale=4.0)
    if n >= len(SPECIAL):
        x[rng.choice(n, size=len(SPECIAL), replace=False)] = np.array(SPECIAL, dtype)
    return x


def _cuda_forward(x, kind, slope):
    y = np.full_like(x, 7.0)  # not zeros: a skipped element must show
    CA.run_forward(x, y, A.activation_code(kind), A.check_negative_slope(slope, x.dtype))
    cuda.synchronize()
    return y


def _cuda_backward(dy, y, kind, slope):
    dx = np.full_like(dy, 7.0)
    CA.run_backward(dy, y, dx, A.activation_code(kind), A.check_negative_slope(slope, dy.dtype))
    cuda.synchronize()
    return dx


def _check_against_cpu(actual, expected, kind, dtype, name):
    if kind in SELECTS:
        # bitwise, the sign of zero included; a NaN need only be a NaN (a GPU multiply returns its
        # canonical NaN where x86 passes the input NaN's bits through)
        nan = np.isnan(expected)
        np.testing.assert_array_equal(np.isnan(actual), nan, f"{name}: NaN positions")
        assert actual[~nan].tobytes() == expected[~nan].tobytes(), \
            f"{name}: not bitwise the CPU's ({actual[~nan]} vs {expected[~nan]})"
    else:
        assert_close(actual, expected, *_tols(dtype), name)


@OK_ORACLE_0_TIMES_INF
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", FORWARD_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind,slope", CASES, ids=CASE_IDS)
def test_forward_matches_cpu_and_oracle(rng, kind, slope, dtype, n):
    x = _inputs(rng, n, dtype)
    y = _cuda_forward(x, kind, slope)
    assert y.dtype == dtype
    _check_against_cpu(y, A.activation_forward(x, kind, negative_slope=slope), kind, dtype, "y")
    assert_close(y, R.activation(x, kind, slope), *TOLS[dtype], "y vs oracle")


@OK_ORACLE_0_TIMES_INF
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind,slope", CASES, ids=CASE_IDS)
def test_backward_matches_cpu_and_oracle(rng, kind, slope, dtype, n):
    # the saved output is the oracle's, rounded to dtype, with NaN, +-0.0 and (for the unbounded kinds)
    # +-inf among it
    y = R.activation(_inputs(rng, n, dtype), kind, slope).astype(dtype)
    # dy of order 1 apart from its non-finite values: the oracle's 1 - y * y cancels near |y| = 1 (an absolute
    # error of eps |dy|, which the oracle's atol covers only for such dy)
    dy = random_array(rng, n, dtype)
    if n >= len(SPECIAL):
        dy[rng.choice(n, size=5, replace=False)] = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    dx = _cuda_backward(dy, y, kind, slope)
    assert dx.dtype == dtype
    _check_against_cpu(dx, A.activation_backward(dy, y, kind, negative_slope=slope), kind, dtype, "dx")
    assert_close(dx, R.activation_backward(dy, y, kind, slope), *TOLS[dtype], "dx vs oracle")


@pytest.mark.parametrize("dtype", FORWARD_DTYPES, ids=DTYPE_IDS)
def test_forward_edge_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    relu = _cuda_forward(x, "relu", 0.01)
    # relu propagates NaN (as torch.relu) and keeps -0.0 (a select, no arithmetic)
    assert np.isnan(relu[0]) and relu[1:3].tolist() == [np.inf, 0.0] and np.signbit(relu[4])
    sig = _cuda_forward(x, "sigmoid", 0.01)
    assert np.isnan(sig[0]) and sig[1:].tolist() == [1.0, 0.0, 0.5, 0.5]
    tanh = _cuda_forward(x, "tanh", 0.01)
    assert np.isnan(tanh[0]) and tanh[1:].tolist() == [1.0, -1.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backward_selects_on_y_positive(rng, dtype):
    # relu'(0) = 0 for both signs of zero; a NaN saved output takes the y <= 0 branch, as on the CPU
    dy = random_array(rng, 5, dtype)
    y = np.array([0.0, -0.0, 1.0, np.nan, -1.0], dtype)
    assert _cuda_backward(dy, y, "relu", 0.01).tolist() == [0.0, 0.0, dy[2], 0.0, 0.0]
    a = dtype(0.5)
    assert _cuda_backward(dy, y, "leaky_relu", 0.5).tolist() == [a * dy[0], a * dy[1], dy[2], a * dy[3], a * dy[4]]


def test_grid_stride_covers_every_element(rng, monkeypatch):
    # one block of 32 threads for 100 elements: each thread must handle several, none twice, none skipped
    monkeypatch.setattr(CA, "elementwise_grid", lambda n: (1, 32))
    x = random_array(rng, 100, np.float64)
    dy = random_array(rng, 100, np.float64)
    y = _cuda_forward(x, "tanh", 0.01)
    assert_close(y, np.tanh(x), 1e-15, 0.0, "y")
    assert_close(_cuda_backward(dy, y, "sigmoid", 0.01), dy * y * (1 - y), 1e-15, 1e-300, "dx")


# ------------------------------------------------------------------------------------------------------
# The public functions on device arrays (the dispatch of kernels.activations to the launchers above), with
# the tolerances of _check_against_cpu against the CPU functions and the CPU's own against the oracle.

PUBLIC = [
    (A.relu, A.relu_backward, "relu", {}),
    (A.leaky_relu, A.leaky_relu_backward, "leaky_relu", {"negative_slope": 0.2}),
    (A.sigmoid, A.sigmoid_backward, "sigmoid", {}),
    (A.tanh, A.tanh_backward, "tanh", {}),
    (lambda x, **kw: A.activation_forward(x, "identity", **kw),
     lambda dy, y, **kw: A.activation_backward(dy, y, "identity", **kw), "identity", {}),
]
PUBLIC_IDS = ["relu", "leaky_relu", "sigmoid", "tanh", "activation_forward-identity"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("fwd,bwd,kind,kw", PUBLIC, ids=PUBLIC_IDS)
def test_public_functions_on_device_arrays(dev, rng, fwd, bwd, kind, kw, dtype):
    slope = kw.get("negative_slope", 0.01)
    x = _inputs(rng, 7 * 33, dtype).reshape(7, 33)  # every special value among fresh normal ones
    y_dev = fwd(dev.asarray(x), **kw)
    assert dev.get_array_module(y_dev) is dev, type(y_dev)
    assert y_dev.shape == x.shape and y_dev.dtype == dtype
    y_cpu = fwd(x, **kw)
    _check_against_cpu(dev.asnumpy(y_dev), y_cpu, kind, dtype, "y")
    assert_close(dev.asnumpy(y_dev), R.activation(x, kind, slope), *TOLS[dtype], "y vs oracle")
    # out= on the device, and a strided device input (copied contiguous on the device first)
    out = dev.asarray(np.full_like(x, 7.0))
    assert fwd(dev.asarray(x), out=out, **kw) is out
    _check_against_cpu(dev.asnumpy(out), y_cpu, kind, dtype, "out")
    _check_against_cpu(dev.asnumpy(fwd(dev.asarray(x)[:, ::3], **kw)), fwd(x[:, ::3], **kw), kind, dtype,
                       "strided x")

    dy = random_array(rng, x.shape, dtype)
    dx_out = dev.asarray(np.full_like(x, 7.0))
    dx_dev = bwd(dev.asarray(dy), dev.asarray(y_cpu), out=dx_out, **kw)
    assert dx_dev is dx_out
    dx_cpu = bwd(dy, y_cpu, **kw)
    _check_against_cpu(dev.asnumpy(dx_dev), dx_cpu, kind, dtype, "dx")
    assert_close(dev.asnumpy(dx_dev), R.activation_backward(dy, y_cpu, kind, slope), *TOLS[dtype], "dx vs oracle")
    dx_new = bwd(dev.asarray(dy), dev.asarray(y_cpu), **kw)
    assert dev.get_array_module(dx_new) is dev and dx_new.dtype == dtype
    _check_against_cpu(dev.asnumpy(dx_new), dx_cpu, kind, dtype, "dx without out")


def test_public_zero_d_and_empty_device_arrays(dev, rng):
    x = np.array(rng.standard_normal() - 3.0)  # 0-d, negative
    y = A.leaky_relu(dev.asarray(x), 0.5)
    assert y.shape == () and dev.get_array_module(y) is dev
    assert dev.asnumpy(y).tolist() == A.leaky_relu(x, 0.5).tolist()
    empty = A.tanh_backward(dev.asarray(np.empty((0, 3))), dev.asarray(np.empty((0, 3))))
    assert empty.shape == (0, 3) and dev.get_array_module(empty) is dev


# bad calls, each given d: puts a host array on the backend under test
XB = np.linspace(-1.0, 1.0, 6).reshape(2, 3)


def _out_is_x(d):
    x = d(XB)
    return A.sigmoid(x, out=x)


BAD_CALLS = {
    "int-dtype": lambda d: A.relu(d(np.ones(3, np.int32))),
    "dtype-mix": lambda d: A.relu_backward(d(XB.astype(np.float32)), d(XB)),
    "shape-mismatch": lambda d: A.tanh_backward(d(XB), d(XB[:, :2])),
    "out-shape": lambda d: A.tanh(d(XB), out=d(np.empty((3, 2)))),
    "out-dtype": lambda d: A.tanh(d(XB), out=d(np.empty((2, 3), np.float32))),
    "out-strided": lambda d: A.relu(d(XB), out=d(np.empty((2, 6)))[:, ::2]),
    "out-is-x": _out_is_x,
    "kind": lambda d: A.activation_forward(d(XB), "gelu"),
    "slope": lambda d: A.leaky_relu_backward(d(XB), d(XB), -0.5),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_public_errors_on_device_arrays_match_the_cpu(dev, call):
    assert_same_error(lambda: call(np.asarray), lambda: call(dev.asarray))


def test_public_host_device_mixes_name_the_arguments(dev):
    with pytest.raises(TypeError, match=r"^y is on the CPU \(NumPy\) but dy is on the GPU"):
        A.relu_backward(dev.asarray(XB), XB)
    with pytest.raises(TypeError, match=r"^out is on the CPU \(NumPy\) but x is on the GPU"):
        A.sigmoid(dev.asarray(XB), out=np.empty((2, 3)))
