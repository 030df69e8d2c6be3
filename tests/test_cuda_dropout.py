"""CUDA dropout kernels (kernels/cuda/dropout.py) against the CPU kernels, bit for bit, and the oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python call per thread, so the
arrays are small; with one, on the device (NumPy arrays are copied in and out by Numba). The launch
scalars are the ones the public CPU function passed to its own kernel for the same call (captured with a
spy), or ``_philox_args`` for the mask, exactly what dropout_mask passes: both targets then run on the
same inputs, and the mask being a pure function of (seed, counter, i) means they must agree bitwise.

The last tests call the public functions (kernels.dropout) on device arrays from the ``dev`` fixture (the
simulator's, or CuPy's on a GPU) and dropout_mask(device="cuda"): device results, bitwise the CPU public
functions' for the same (p, seed, counter), out=, and the CPU's error messages for the same bad input.
"""

import numba
import numpy as np
import pytest

from kernels import dropout as D
from kernels import reference as R
from tests.helpers import DTYPE_IDS, DTYPES, TOLS, assert_close, assert_same_error, random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda.dropout as CD

# (p, seed, counter): high 32 bits of the seed and of the counter set in most, both at their maximum in one
CASES = [
    (0.5, 0, 0),
    (0.1, 2**63 + 12345, 7),
    (0.9, 1, 2**40 + 3),
    (0.3, 2**64 - 1, 2**64 - 1),
    (0.999, 0xDEADBEEF_00000001, 0x1_FFFFFFFF),
]
CASE_IDS = ["p.5-zeros", "p.1-seed-hi", "p.9-counter-hi", "p.3-all-ones", "p.999-both-hi"]
# 4097 crosses the CPU's 4096-element group boundary; the simulator makes it the expensive one
SMALL_SIZES = [1, 3, 4, 5, 37]


def _cpu_forward(monkeypatch, fn, x, p, seed, counter):
    """Run the public CPU function fn (dropout_forward or dropout_backward) on x; return its result and the
    (threshold, scale, k0, k1, c2, c3) it passed to its kernel."""
    seen = []

    def spy_on(real):
        def spy(xf, yf, *scalars):
            seen.append(scalars)
            real(xf, yf, *scalars)
        return spy

    with monkeypatch.context() as m:
        for name in ("_dropout_serial", "_dropout_parallel"):
            m.setattr(D, name, spy_on(getattr(D, name)))
        y = fn(x, p, seed, counter)
    (scalars,) = seen
    return y, scalars


def _cuda_forward(x, scalars):
    y = np.full_like(x, 7.0)  # not zeros: a skipped element must show
    CD.run(x.reshape(-1), y.reshape(-1), *scalars)
    cuda.synchronize()
    return y


def _cuda_mask(n, p, seed, counter, dtype=np.bool_):
    m = np.full(n, 2 if dtype == np.uint8 else True, dtype=dtype)  # 2: neither 0 nor 1, so a skip shows
    CD.run_mask(m, *D._philox_args(p, seed, counter))
    cuda.synchronize()
    return m


def _assert_same_bits(actual, expected, name):
    """Same dtype, shape and bits, except that a NaN need only be a NaN: a GPU multiply returns its
    canonical NaN where x86 passes the input NaN's bits through."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
    a, e = actual.reshape(-1), expected.reshape(-1)
    differ = (a.view(np.uint8).reshape(a.size, -1) != e.view(np.uint8).reshape(e.size, -1)).any(axis=1)
    if a.dtype.kind == "f":
        differ &= ~(np.isnan(a) & np.isnan(e))
    differ = np.flatnonzero(differ)
    assert differ.size == 0, (f"{name}: {differ.size} of {a.size} elements differ in their bits; first at "
                              f"{differ[0]}: {a[differ[0]]!r} vs {e[differ[0]]!r}")


def _check_forward_backward(monkeypatch, rng, n, dtype, p, seed, counter):
    x = random_array(rng, n, dtype)
    dy = random_array(rng, n, dtype)
    y_cpu, scalars = _cpu_forward(monkeypatch, D.dropout_forward, x, p, seed, counter)
    dx_cpu, scalars_b = _cpu_forward(monkeypatch, D.dropout_backward, dy, p, seed, counter)
    assert all(type(a) is type(b) and a == b for a, b in zip(scalars, scalars_b))
    _assert_same_bits(_cuda_forward(x, scalars), y_cpu, "y")
    _assert_same_bits(_cuda_forward(dy, scalars), dx_cpu, "dx")
    # the oracle divides by (1 - p) in float64, the kernels multiply by the rounded scale: an ulp or two
    assert_close(_cuda_forward(x, scalars), R.dropout_forward(x, p, seed, counter), *TOLS[dtype], "y vs oracle")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p,seed,counter", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("n", SMALL_SIZES, ids=lambda n: f"n{n}")
def test_forward_backward_same_bits_as_cpu(monkeypatch, rng, n, p, seed, counter, dtype):
    _check_forward_backward(monkeypatch, rng, n, dtype, p, seed, counter)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forward_backward_same_bits_across_cpu_group_boundary(monkeypatch, rng, dtype):
    p = float(rng.uniform(0.05, 0.95))
    seed = int(rng.integers(2**32, 2**64, dtype=np.uint64))
    counter = int(rng.integers(2**32, 2**64, dtype=np.uint64))
    _check_forward_backward(monkeypatch, rng, D.GROUP_ELEMS + 1, dtype, p, seed, counter)


@pytest.mark.parametrize("p,seed,counter", CASES + [(0.0, 5, 5)], ids=CASE_IDS + ["p0"])
@pytest.mark.parametrize("n", SMALL_SIZES + [D.GROUP_ELEMS + 1], ids=lambda n: f"n{n}")
def test_mask_same_as_cpu_and_oracle(n, p, seed, counter):
    m = _cuda_mask(n, p, seed, counter)
    _assert_same_bits(m, D.dropout_mask(n, p, seed, counter), "mask")
    np.testing.assert_array_equal(m, R.dropout_mask((n,), p, seed, counter))


@pytest.mark.parametrize("lane", range(4))
def test_word_equal_to_threshold_is_kept(monkeypatch, rng, lane):
    # p = word_k / 2^32 exactly, so threshold == word_k: the comparison must be >=, as on the CPU
    n = 37
    k = 4 * int(rng.integers(0, n // 4)) + lane
    seed, counter = (int(v) for v in rng.integers(2**32, 2**64, size=2, dtype=np.uint64))
    p = int(R.philox_words(n, seed, counter)[k]) / 2.0**32
    assert D._philox_args(p, seed, counter)[0] == R.philox_words(n, seed, counter)[k]
    m = _cuda_mask(n, p, seed, counter)
    assert m[k]
    _assert_same_bits(m, D.dropout_mask(n, p, seed, counter), "mask")
    x = random_array(rng, n, np.float32)
    y_cpu, scalars = _cpu_forward(monkeypatch, D.dropout_forward, x, p, seed, counter)
    y = _cuda_forward(x, scalars)
    assert y[k] == x[k] * scalars[1]
    _assert_same_bits(y, y_cpu, "y")


def test_mask_as_uint8(rng):
    n, p = 37, 0.5
    seed, counter = (int(v) for v in rng.integers(2**32, 2**64, size=2, dtype=np.uint64))
    m = _cuda_mask(n, p, seed, counter, np.uint8)
    np.testing.assert_array_equal(m, D.dropout_mask(n, p, seed, counter).astype(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_non_finite_inputs(monkeypatch, rng, dtype):
    n, p = 37, 0.5
    seed, counter = (int(v) for v in rng.integers(0, 2**64, size=2, dtype=np.uint64))
    x = np.resize(np.array([np.nan, np.inf, -np.inf, -0.0], dtype), n)
    y_cpu, scalars = _cpu_forward(monkeypatch, D.dropout_forward, x, p, seed, counter)
    y = _cuda_forward(x, scalars)
    _assert_same_bits(y, y_cpu, "y")
    keep = D.dropout_mask(n, p, seed, counter)
    assert 0 < keep.sum() < n  # both branches taken (fails with probability 2^-36)
    # kept: NaN stays NaN, +-inf stays +-inf, -0.0 stays -0.0; dropped: +0.0 whatever the input
    np.testing.assert_array_equal(np.isnan(y[keep]), np.isnan(x[keep]))
    np.testing.assert_array_equal(y[keep][~np.isnan(x[keep])], x[keep][~np.isnan(x[keep])])
    np.testing.assert_array_equal(np.signbit(y[keep]), np.signbit(x[keep]))
    assert (y[~keep] == 0).all() and not np.signbit(y[~keep]).any()


def test_grid_stride_covers_every_block(monkeypatch, rng):
    # one block of 32 threads for 98 counter blocks (389 elements, the last block partial): each thread
    # handles several counter blocks, none twice, none skipped
    monkeypatch.setattr(CD, "elementwise_grid", lambda n: (1, 32))
    n, p = 389, 0.4
    seed, counter = (int(v) for v in rng.integers(2**32, 2**64, size=2, dtype=np.uint64))
    x = random_array(rng, n, np.float64)
    y_cpu, scalars = _cpu_forward(monkeypatch, D.dropout_forward, x, p, seed, counter)
    _assert_same_bits(_cuda_forward(x, scalars), y_cpu, "y")
    _assert_same_bits(_cuda_mask(n, p, seed, counter), D.dropout_mask(n, p, seed, counter), "mask")


def test_launch_covers_counter_blocks_not_elements(monkeypatch):
    # the launchers size the grid by ceil(n / 4) counter blocks, one thread each
    sizes = []
    monkeypatch.setattr(CD, "elementwise_grid", lambda n: sizes.append(n) or (1, 32))
    x = np.ones(9)
    threshold, k0, k1, c2, c3 = D._philox_args(0.5, 1, 2)
    CD.run(x, np.empty_like(x), threshold, np.float64(2.0), k0, k1, c2, c3)
    CD.run_mask(np.empty(9, np.bool_), threshold, k0, k1, c2, c3)
    cuda.synchronize()
    assert sizes == [3, 3]


# ------------------------------------------------------------------------------------------------------
# the public functions on device arrays (kernels.dropout dispatching to the launchers above)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p,seed,counter", [CASES[1], CASES[3]], ids=[CASE_IDS[1], CASE_IDS[3]])
def test_public_functions_same_bits_as_cpu(dev, rng, p, seed, counter, dtype):
    """dropout_forward / dropout_backward on device arrays and dropout_mask(device="cuda"): device results,
    bitwise the CPU public functions' (a NaN need only be a NaN, see _assert_same_bits) for the same
    (p, seed, counter), and the oracle's values."""
    shape = (7, 33)  # 231 elements: the last counter block partial
    x = random_array(rng, shape, dtype)
    dy = random_array(rng, shape, dtype)
    d_x, d_dy = dev.asarray(x), dev.asarray(dy)
    y = D.dropout_forward(d_x, p, seed, counter)
    dx = D.dropout_backward(d_dy, p, seed, counter)
    m = D.dropout_mask(shape, p, seed, counter, device="cuda")
    for r in (y, dx, m):
        assert type(r) is type(d_x) and r.shape == shape
    _assert_same_bits(dev.asnumpy(y), D.dropout_forward(x, p, seed, counter), "y")
    _assert_same_bits(dev.asnumpy(dx), D.dropout_backward(dy, p, seed, counter), "dx")
    _assert_same_bits(dev.asnumpy(m), D.dropout_mask(shape, p, seed, counter), "mask")
    np.testing.assert_array_equal(dev.asnumpy(m), R.dropout_mask(shape, p, seed, counter))
    # the oracle divides by (1 - p) in float64, the kernels multiply by the rounded scale: an ulp or two
    assert_close(dev.asnumpy(y), R.dropout_forward(x, p, seed, counter), *TOLS[dtype], "y vs oracle")


def test_public_functions_out_copies_and_empty_on_device(dev, rng):
    p, seed, counter = 0.4, 2**40 + 9, 2**33 + 1
    wide = random_array(rng, (5, 14), np.float32)
    x = np.ascontiguousarray(wide[:, ::2])
    d_x = dev.asarray(wide)[:, ::2]  # not contiguous: copied on the device
    out = dev.asarray(np.full(x.shape, 7.0, np.float32))
    assert D.dropout_forward(d_x, p, seed, counter, out=out) is out
    _assert_same_bits(dev.asnumpy(out), D.dropout_forward(x, p, seed, counter), "y into out")
    out = dev.asarray(np.full(x.shape, 7.0, np.float32))
    assert D.dropout_backward(d_x, p, seed, counter, out=out) is out
    _assert_same_bits(dev.asnumpy(out), D.dropout_backward(x, p, seed, counter), "dx into out")
    # p == 0: a copy on the device, not the input itself
    y0 = D.dropout_forward(d_x, 0.0, seed, counter)
    assert type(y0) is type(d_x) and y0 is not d_x
    _assert_same_bits(dev.asnumpy(y0), x, "p = 0")
    # nothing to do: empty results of the right kind
    empty = D.dropout_forward(dev.asarray(np.empty((0, 3), np.float64)), p, seed, counter)
    assert type(empty) is type(d_x) and empty.shape == (0, 3) and empty.dtype == np.float64
    m = D.dropout_mask((2, 0), p, seed, counter, device="cuda")
    assert type(m) is type(d_x) and m.shape == (2, 0) and m.dtype == np.bool_
    # the default stays the CPU
    assert type(D.dropout_mask(3, p, seed, counter)) is np.ndarray


def test_public_functions_reject_bad_device_input_as_on_the_cpu(dev, rng):
    x = random_array(rng, (4, 6), np.float32)

    def out_is_x(a):
        d = a(x)
        return D.dropout_forward(d, 0.5, 1, 2, out=d)

    def out_is_reversed_dy(a):
        d = a(x)
        return D.dropout_backward(d, 0.5, 1, 2, out=d[::-1])

    cases = [
        lambda a: D.dropout_forward(a(x.astype(np.int32)), 0.5, 1, 2),
        lambda a: D.dropout_forward(a(x), 1.0, 1, 2),
        lambda a: D.dropout_backward(a(x), 0.5, -1, 2),
        lambda a: D.dropout_forward(a(x), 0.5, 1, 2, out=a(np.empty((4, 6), np.float64))),
        lambda a: D.dropout_forward(a(x), 0.5, 1, 2, out=a(np.empty((4, 5), np.float32))),
        out_is_x,
        out_is_reversed_dy,
    ]
    for case in cases:
        assert_same_error(lambda: case(lambda v: v), lambda: case(dev.asarray))
    with pytest.raises(ValueError, match=r"^shape\[1\] = -1 is out of range"):
        D.dropout_mask((3, -1), 0.5, 1, 2, device="cuda")
    with pytest.raises(ValueError, match=r"^device = 'gpu' is not one of \('cpu', 'cuda'\)"):
        D.dropout_mask(3, 0.5, 1, 2, device="gpu")
    with pytest.raises(TypeError, match="^x is on the CPU .NumPy. but out is on the GPU"):
        D.dropout_forward(x, 0.5, 1, 2, out=dev.asarray(x))
    with pytest.raises(TypeError, match="^out is on the CPU .NumPy. but dy is on the GPU"):
        D.dropout_backward(dev.asarray(x), 0.5, 1, 2, out=np.empty_like(x))
