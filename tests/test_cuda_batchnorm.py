"""CUDA BatchNorm1d kernels (kernels/cuda/batchnorm.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python thread per CUDA thread, so
the shapes are small; they still cross the REDUCE_BLOCK_ROWS = 64 row blocks (65 and 130 rows: two and
three blocks, the last partial). With a GPU they run on the device (NumPy arrays copied in and out by Numba).

What is asserted against the CPU kernels (kernels/batchnorm.py, fed the same inputs):
- bitwise everywhere: the first-block shift, the block partials of both passes (float32 and float64), the
  float64 block totals and variance, invstd, dgamma and dbeta: both targets round the same operations in the
  same order (the fused multiply-adds as explicit FMAs on the device);
- bitwise in the simulator, within 4 ulp of the values' scale on a GPU (where NVVM may contract a
  multiply-add the CPU rounds twice): the mean, the running statistics and y;
- dx within 4 ulp of the size of its terms everywhere: the CPU reassociates a dy - (x - mean) b1 - c0.
Against kernels/reference.py, the tolerances of tests/test_batchnorm.py (the same algorithm, so the same
error bounds).

The last tests call the public functions (kernels.batchnorm) on device arrays from the ``dev`` fixture
(the simulator's, or CuPy's on a GPU): device arrays back, running statistics updated in place, out=, and
the CPU's error messages for the same bad input.

The simulator's ``cuda.fma`` computes a * b + c with two roundings; the hardware instruction, like the CPU's
contracted multiply-adds, rounds once. An autouse fixture gives the simulator an exactly rounded fma, or the
bitwise comparisons would test the simulator's shortcut instead of the kernels.
"""

from fractions import Fraction

import numba
import numpy as np
import pytest

from kernels import batchnorm as B
from kernels import reference as R
from kernels._util import REDUCE_BLOCK_ROWS, num_row_blocks
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, assert_close, assert_same_error, random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda as KC
import kernels.cuda.batchnorm as CB

SIM = bool(numba.config.ENABLE_CUDASIM)
SHAPES = [(2, 1), (2, 5), (7, 33), (65, 5), (130, 3)]
SHAPE_IDS = ["2x1", "2x5", "7x33", "65x5", "130x3"]
# train/eval, with running statistics or without (track_running_stats=False: both modes use the batch's)
MODES = ["train", "train-untracked", "eval", "eval-untracked"]
STEPS = 3
MOMENTUM, EPS = 0.2, 1e-3  # not the defaults: a launcher that dropped them would show

shapes = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
dtypes = pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)


def _exact_fma(a, b, c):
    """a * b + c rounded once to the type of c (a, b, c NumPy scalars of one float type)."""
    t = type(c)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        return t(a * b + c)  # a product with an Inf or NaN factor is exact: one rounding or two agree
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    # float() rounds the fraction correctly to float64; rounding that again to float32 can land one ulp off
    # the correctly rounded value, so take the nearest of it and its neighbours (ties to even).
    r = t(float(exact))
    bits = np.dtype(f"u{np.dtype(t).itemsize}")
    return min((r, np.nextafter(r, t(np.inf)), np.nextafter(r, t(-np.inf))),
               key=lambda v: (abs(Fraction(float(v)) - exact), int(np.asarray(v).view(bits)) & 1))


@pytest.fixture(autouse=True)
def _single_rounding_fma(monkeypatch):
    if SIM:
        from numba.cuda.simulator import kernelapi
        monkeypatch.setattr(kernelapi.FakeCUDAModule, "fma", lambda self, a, b, c: _exact_fma(a, b, c))


def _same_bits(actual, expected, name):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (
        f"{name}: {actual.shape} {actual.dtype} vs {expected.shape} {expected.dtype}")
    differ = np.flatnonzero(actual.reshape(-1).view(np.uint8).reshape(actual.size, -1)
                            != expected.reshape(-1).view(np.uint8).reshape(expected.size, -1))
    assert differ.size == 0, (f"{name}: element {differ[0] // expected.itemsize} differs: "
                              f"{actual.reshape(-1)[differ[0] // expected.itemsize]!r} vs "
                              f"{expected.reshape(-1)[differ[0] // expected.itemsize]!r}")


def _as_cpu(actual, expected, name):
    """Bitwise in the simulator; on a GPU within 4 ulp of the largest finite |value| (NaNs must match)."""
    if SIM:
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected, err_msg=name)
        return
    eps = np.finfo(expected.dtype).eps
    finite = np.abs(expected[np.isfinite(expected)])
    assert_close(actual, expected, 4 * eps, 4 * eps * (finite.max() if finite.size else 0.0), name)


def _dx_as_cpu(dx, exp_dx, dy, x, gamma, mean, invstd, dgamma, dbeta):
    """dx within 4 ulp of its terms |a dy| + |(x - mean) b1| + |c0|, the coefficients in float64."""
    n = x.shape[0]
    a = invstd.astype(np.float64) * (1.0 if gamma is None else gamma.astype(np.float64))
    b1 = a * invstd * dgamma.astype(np.float64) / n
    c0 = a * dbeta.astype(np.float64) / n
    terms = np.abs(a * dy) + np.abs((x - mean.astype(np.float64)) * b1) + np.abs(c0)
    err = np.abs(dx.astype(np.float64) - exp_dx)
    worst = np.unravel_index(np.argmax(err - 4 * np.finfo(x.dtype).eps * terms), x.shape)
    assert (err <= 4 * np.finfo(x.dtype).eps * terms).all(), (
        f"dx at {worst}: {dx[worst]!r} vs CPU {exp_dx[worst]!r}, terms {terms[worst]:.3e}")


def _inputs(rng, shape, dtype, affine=True, tracked=True):
    c = shape[1]
    x = (0.5 + random_array(rng, shape, np.float64, scale=2.0)).astype(dtype)
    gamma = random_array(rng, c, dtype, low=0.5, high=1.5) if affine else None
    beta = random_array(rng, c, dtype) if affine else None
    rm = random_array(rng, c, dtype) if tracked else None
    rv = random_array(rng, c, dtype, low=0.5, high=2.0) if tracked else None
    return x, gamma, beta, rm, rv


def _copy(a):
    return None if a is None else a.copy()


def _cuda_forward(x, gamma, beta, rm, rv, training, momentum=MOMENTUM, eps=EPS):
    y = np.full_like(x, np.nan)  # an element the kernels skip stays NaN and fails every comparison
    mean, invstd = CB.forward(x, gamma, beta, rm, rv, training, momentum, eps, y)
    cuda.synchronize()
    return y, mean, invstd


def _cuda_backward(dy, x, gamma, mean, invstd):
    dx = np.full_like(x, np.nan)
    dgamma, dbeta = CB.backward(dy, x, gamma, mean, invstd, dx)
    cuda.synchronize()
    return dx, dgamma, dbeta


# ------------------------------------------------------------------------------------------------------
# the reductions, pass by pass


@dtypes
@shapes
def test_block_partials_are_the_cpus_bit_for_bit(rng, shape, dtype, rtol, atol):
    n, c = shape
    nb = num_row_blocks(n)
    x = (3.0 + random_array(rng, shape, np.float64, scale=2.0)).astype(dtype)
    cols, (grid, threads) = KC.elementwise_grid(c), CB.column_tiles(nb, c)

    exp_shift = np.empty(c, dtype)
    B._first_block_mean(x, exp_shift)
    shift = np.full(c, np.nan, dtype)
    CB._first_block_mean[cols](x, shift)
    cuda.synchronize()
    _same_bits(shift, exp_shift, "shift")

    exp_s1, exp_s2 = np.empty((2, nb, c), dtype)
    B._shifted_sums_serial(x, exp_shift, exp_s1, exp_s2)
    s1, s2 = np.full((2, nb, c), np.nan, dtype)
    CB._shifted_sums[grid, threads](x, exp_shift, s1, s2, dtype(0))
    cuda.synchronize()
    _same_bits(s1, exp_s1, "forward partials sum(x - shift)")
    _same_bits(s2, exp_s2, "forward partials sum((x - shift)^2)")

    exp_mean, exp_var = B._batch_stats(x)
    mean, var = CB.batch_stats(x)
    cuda.synchronize()
    _same_bits(var, exp_var, "float64 batch variance")
    _as_cpu(mean, exp_mean, "float64 batch mean")
    assert_close(mean, x.astype(np.float64).mean(axis=0), rtol, atol, "batch mean vs NumPy")
    assert_close(var, x.astype(np.float64).var(axis=0), rtol, atol, "batch variance vs NumPy")

    dy = random_array(rng, shape, dtype)
    saved_mean = exp_mean.astype(dtype)
    exp_g1, exp_g2 = np.empty((2, nb, c), dtype)
    B._grad_sums_serial(dy, x, saved_mean, exp_g1, exp_g2)
    g1, g2 = np.full((2, nb, c), np.nan, dtype)
    CB._grad_sums[grid, threads](dy, x, saved_mean, g1, g2, dtype(0))
    cuda.synchronize()
    _same_bits(g1, exp_g1, "backward partials sum(dy)")
    _same_bits(g2, exp_g2, "backward partials sum(dy (x - mean))")

    t1, t2 = np.full((2, c), np.nan)
    CB._sum_blocks[cols](g1, g2, t1, t2)
    cuda.synchronize()
    exp_t1, exp_t2 = B._sum_blocks(exp_g1, exp_g2)
    _same_bits(t1, exp_t1, "float64 total of sum(dy)")
    _same_bits(t2, exp_t2, "float64 total of sum(dy (x - mean))")


# ------------------------------------------------------------------------------------------------------
# the launchers against the CPU public functions and the oracle


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("mode", MODES)
@dtypes
@shapes
def test_forward_matches_cpu_and_oracle(rng, shape, dtype, rtol, atol, mode, affine):
    training, tracked = mode.startswith("train"), not mode.endswith("untracked")
    _, gamma, beta, rm, rv = _inputs(rng, shape, dtype, affine, tracked)
    rm_cpu, rv_cpu = _copy(rm), _copy(rv)
    # several steps when the running statistics move: a state bug shows only after the first
    for step in range(STEPS if training and tracked else 1):
        x = _inputs(rng, shape, dtype)[0]
        if training or not tracked:
            exp_y, exp_rm, exp_rv, exp_mean, exp_invstd = R.batchnorm_forward_train(
                x, gamma, beta, rm, rv, momentum=MOMENTUM, eps=EPS)
        else:
            exp_y = R.batchnorm_forward_eval(x, gamma, beta, rm, rv, eps=EPS)
            exp_mean, exp_invstd = rm.astype(np.float64), 1.0 / np.sqrt(rv.astype(np.float64) + EPS)
        cpu_y, cpu_mean, cpu_invstd = B.batchnorm_forward(x, gamma, beta, rm_cpu, rv_cpu, training=training,
                                                          momentum=MOMENTUM, eps=EPS)
        rm_before, rv_before = _copy(rm), _copy(rv)
        y, mean, invstd = _cuda_forward(x, gamma, beta, rm, rv, training)
        at = f" (step {step})"

        assert y.shape == shape and mean.shape == invstd.shape == (shape[1],)
        assert y.dtype == mean.dtype == invstd.dtype == dtype
        _as_cpu(y, cpu_y, "y vs CPU" + at)
        _as_cpu(mean, cpu_mean, "mean vs CPU" + at)
        _same_bits(invstd, cpu_invstd, "invstd vs CPU" + at)
        assert_close(y, exp_y, rtol, atol, "y vs oracle" + at)
        assert_close(mean, exp_mean, rtol, atol, "mean vs oracle" + at)
        assert_close(invstd, exp_invstd, rtol, atol, "invstd vs oracle" + at)
        if training and tracked:
            _as_cpu(rm, rm_cpu, "running_mean vs CPU" + at)
            _as_cpu(rv, rv_cpu, "running_var vs CPU" + at)
            assert_close(rm, exp_rm, rtol, atol, "running_mean vs oracle" + at)
            assert_close(rv, exp_rv, rtol, atol, "running_var vs oracle" + at)
        elif tracked:  # eval reads the running statistics and leaves them alone
            _same_bits(rm, rm_before, "running_mean in eval")
            _same_bits(rv, rv_before, "running_var in eval")


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@dtypes
@shapes
def test_backward_matches_cpu_and_oracle(rng, shape, dtype, rtol, atol, affine):
    x, gamma, beta, rm, rv = _inputs(rng, shape, dtype, affine)
    _, mean, invstd = B.batchnorm_forward(x, gamma, beta, rm, rv, training=True)
    dy = random_array(rng, shape, dtype)
    cpu_dx, cpu_dgamma, cpu_dbeta = B.batchnorm_backward(dy, x, gamma, mean, invstd)
    exp_dx, exp_dgamma, exp_dbeta = R.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx, dgamma, dbeta = _cuda_backward(dy, x, gamma, mean, invstd)

    assert dx.shape == shape and dx.dtype == dtype
    if affine:
        _same_bits(dgamma, cpu_dgamma, "dgamma vs CPU")
        _same_bits(dbeta, cpu_dbeta, "dbeta vs CPU")
        assert_close(dgamma, exp_dgamma, rtol, atol * np.sqrt(shape[0]), "dgamma vs oracle")
        assert_close(dbeta, exp_dbeta, rtol, atol * np.sqrt(shape[0]), "dbeta vs oracle")
    else:
        assert dgamma is None and dbeta is None and cpu_dgamma is None
    _dx_as_cpu(dx, cpu_dx, dy, x, gamma, mean, invstd, exp_dgamma, exp_dbeta)
    # as tests/test_batchnorm.py: dx cancels (dy - mean(dy) - ...), so atol scales with its terms
    scale = np.abs(np.asarray(invstd, np.float64) * (1.0 if gamma is None else gamma)).max()
    assert_close(dx, exp_dx, rtol, atol * max(1.0, scale) * 4, "dx vs oracle")


@dtypes
@pytest.mark.parametrize("shape", [(65, 5), (130, 3)], ids=["65x5", "130x3"])
def test_column_far_from_zero_with_tiny_variance(rng, shape, dtype, rtol, atol):
    """Column 1 has mean 1e4 and std 1e-2: a textbook E[x^2] - E[x]^2 keeps no digit of its variance."""
    x, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    offset = np.zeros(shape[1])
    offset[1] = 1e4
    x[:, 1] = (1e4 + 1e-2 * rng.standard_normal(shape[0])).astype(dtype)
    rm[1] = dtype(1e4)
    # x - offset is exact (Sterbenz), so the oracle on the centred data is accurate
    centred = x.astype(np.float64) - offset
    exp_y, exp_rm, exp_rv, exp_mean, exp_invstd = R.batchnorm_forward_train(
        centred, gamma, beta, rm - offset, rv, momentum=MOMENTUM, eps=EPS)
    rm_cpu, rv_cpu = rm.copy(), rv.copy()
    cpu_y, cpu_mean, cpu_invstd = B.batchnorm_forward(x, gamma, beta, rm_cpu, rv_cpu, training=True,
                                                      momentum=MOMENTUM, eps=EPS)
    y, mean, invstd = _cuda_forward(x, gamma, beta, rm, rv, True)

    _as_cpu(y, cpu_y, "y vs CPU")
    _as_cpu(mean, cpu_mean, "mean vs CPU")
    _same_bits(invstd, cpu_invstd, "invstd vs CPU")
    _as_cpu(rm, rm_cpu, "running_mean vs CPU")
    _as_cpu(rv, rv_cpu, "running_var vs CPU")
    # y: x - mean_hi is exact, so float32 keeps float32 accuracy; float64's mean rounds at 2e-12 of 1e4,
    # i.e. 2e-10 of one std
    assert_close(y, exp_y, rtol, max(atol, 1e-9), "y vs oracle")
    assert_close(mean, offset + exp_mean, rtol, atol, "mean vs oracle")
    assert_close(invstd, exp_invstd, rtol * 10, atol, "invstd vs oracle")
    assert_close(rm, offset + exp_rm, rtol, atol, "running_mean vs oracle")
    assert_close(rv, exp_rv, rtol * 10, atol, "running_var vs oracle")

    dy = random_array(rng, shape, dtype)
    cpu_dx, cpu_dgamma, cpu_dbeta = B.batchnorm_backward(dy, x, gamma, mean, invstd)
    exp_dx, exp_dgamma, exp_dbeta = R.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx, dgamma, dbeta = _cuda_backward(dy, x, gamma, mean, invstd)
    _same_bits(dgamma, cpu_dgamma, "dgamma vs CPU")
    _same_bits(dbeta, cpu_dbeta, "dbeta vs CPU")
    _dx_as_cpu(dx, cpu_dx, dy, x, gamma, mean, invstd, exp_dgamma, exp_dbeta)
    assert_close(dx, exp_dx, rtol * 10, atol * 100, "dx vs oracle")
    assert_close(dgamma, exp_dgamma, rtol * 10, atol * 100, "dgamma vs oracle")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # simulator: NumPy scalars
@pytest.mark.parametrize("row", [17, 66], ids=["first_block", "second_block"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_as_on_the_cpu(rng, bad, row):
    """A NaN or Inf in column 3 (in the block that sets the shift, or a later one) gives what the CPU gives:
    NaN in that column's y, statistics and dx, the other columns untouched."""
    shape = (70, 9)
    x, gamma, beta, rm, rv = _inputs(rng, shape, np.float64)
    x[row, 3] = bad
    rm_cpu, rv_cpu = rm.copy(), rv.copy()
    cpu_y, cpu_mean, cpu_invstd = B.batchnorm_forward(x, gamma, beta, rm_cpu, rv_cpu, training=True)
    y, mean, invstd = _cuda_forward(x, gamma, beta, rm, rv, True, momentum=0.1, eps=1e-5)
    assert np.isnan(y[:, 3]).all() and np.isfinite(np.delete(y, 3, axis=1)).all()
    for name, a, e in [("y", y, cpu_y), ("mean", mean, cpu_mean), ("invstd", invstd, cpu_invstd),
                       ("running_mean", rm, rm_cpu), ("running_var", rv, rv_cpu)]:
        _as_cpu(a, e, name)

    dy = random_array(rng, shape, np.float64)
    cpu_dx, cpu_dgamma, cpu_dbeta = B.batchnorm_backward(dy, x, gamma, cpu_mean, cpu_invstd)
    dx, dgamma, dbeta = _cuda_backward(dy, x, gamma, cpu_mean, cpu_invstd)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(cpu_dx))
    assert np.isnan(dx[:, 3]).all() and np.isfinite(np.delete(dx, 3, axis=1)).all()
    _same_bits(dgamma, cpu_dgamma, "dgamma")
    _same_bits(dbeta, cpu_dbeta, "dbeta")


def test_empty_batch(rng):
    """N = 0 is allowed where the CPU allows it: eval with running statistics, and the backward."""
    x, gamma, beta, rm, rv = _inputs(rng, (0, 4), np.float32)
    _, cpu_mean, cpu_invstd = B.batchnorm_forward(x, gamma, beta, rm, rv, training=False)
    y, mean, invstd = _cuda_forward(x, gamma, beta, rm, rv, False, momentum=0.1, eps=1e-5)
    assert y.shape == (0, 4)
    _same_bits(mean, cpu_mean, "mean")
    _same_bits(invstd, cpu_invstd, "invstd")
    dy = np.empty((0, 4), np.float32)
    _, cpu_dgamma, cpu_dbeta = B.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx, dgamma, dbeta = _cuda_backward(dy, x, gamma, mean, invstd)
    assert dx.shape == (0, 4)
    _same_bits(dgamma, cpu_dgamma, "dgamma")
    _same_bits(dbeta, cpu_dbeta, "dbeta")
    assert not dbeta.any()


# ------------------------------------------------------------------------------------------------------
# launch shapes


def test_results_do_not_depend_on_the_launch_shape(rng, monkeypatch):
    # default: one tile of 64 threads, three row-block slots; forced: tiles of 32 columns (two, the second
    # partial), one row-block slot that strides over all three blocks, one 32-thread block striding over the
    # columns in the per-column kernels
    shape = (2 * REDUCE_BLOCK_ROWS + 2, 33)
    x, gamma, beta, rm, rv = _inputs(rng, shape, np.float32)
    dy = random_array(rng, shape, np.float32)

    def run():
        r_m, r_v = rm.copy(), rv.copy()
        y, mean, invstd = _cuda_forward(x, gamma, beta, r_m, r_v, True)
        return (y, mean, invstd, r_m, r_v, *_cuda_backward(dy, x, gamma, mean, invstd))

    default = run()
    monkeypatch.setattr(CB, "column_tiles", lambda nb, c: ((-(-c // 32), 1), 32))
    monkeypatch.setattr(CB, "elementwise_grid", lambda n: (1, 32))
    forced = run()
    names = ["y", "mean", "invstd", "running_mean", "running_var", "dx", "dgamma", "dbeta"]
    for name, a, b in zip(names, forced, default):
        _same_bits(a, b, name)
    cpu_y = B.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=True, momentum=MOMENTUM,
                                eps=EPS)[0]
    _as_cpu(forced[0], cpu_y, "y vs CPU")


def test_column_tiles():
    assert CB.column_tiles(1, 1) == ((1, 1), 32)
    assert CB.column_tiles(3, 33) == ((1, 3), 64)
    assert CB.column_tiles(2, 256) == ((1, 2), 256)
    assert CB.column_tiles(2, 300) == ((2, 2), 256)
    assert CB.column_tiles(10**6, 5) == ((1, CB.MAX_GRID_Y), 32)


def test_exact_fma_rounds_once():
    # (1 + u)^2 - (1 + 2u) = u^2 exactly; rounding the product first loses it
    for t, u in ((np.float32, 2.0**-12), (np.float64, 2.0**-27)):
        a, c = t(1 + u), t(-(1 + 2 * u))
        assert a * a + c == 0 and _exact_fma(a, a, c) == t(u * u)
    # float32 ties go to even: 1 + 2^-24 (halfway between 1 and 1 + 2^-23) rounds to 1
    assert _exact_fma(np.float32(2.0**-12), np.float32(2.0**-12), np.float32(1.0)) == np.float32(1.0)


# ------------------------------------------------------------------------------------------------------
# the public functions on device arrays (kernels.batchnorm dispatching to the launchers above)


@pytest.mark.parametrize("shape", [(7, 33), (65, 5)], ids=["7x33", "65x5"])
@dtypes
def test_public_functions_on_device_arrays(rng, dev, shape, dtype, rtol, atol):
    """Two training steps (running statistics updated in place in the caller's device arrays), eval, and the
    backward: device arrays back, the CPU public functions' values (bitwise in the simulator, see _as_cpu),
    and the oracle's to the CPU tests' tolerances."""
    _, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    d_gamma, d_beta, d_rm, d_rv = (dev.asarray(a) for a in (gamma, beta, rm, rv))
    device_type = type(d_gamma)
    for step in range(2):
        x = _inputs(rng, shape, dtype)[0]
        exp_y, exp_rm, exp_rv, exp_mean, exp_invstd = R.batchnorm_forward_train(
            x, gamma, beta, rm, rv, momentum=MOMENTUM, eps=EPS)
        cpu = B.batchnorm_forward(x, gamma, beta, rm, rv, training=True, momentum=MOMENTUM, eps=EPS)
        d_x = dev.asarray(x)
        res = B.batchnorm_forward(d_x, d_gamma, d_beta, d_rm, d_rv, training=True, momentum=MOMENTUM, eps=EPS)
        assert all(type(r) is device_type for r in res)
        y, mean, invstd = (dev.asnumpy(r) for r in res)
        assert y.shape == shape and mean.shape == invstd.shape == (shape[1],)
        assert y.dtype == mean.dtype == invstd.dtype == dtype
        at = f" (step {step})"
        for name, a, e in [("y", y, cpu[0]), ("mean", mean, cpu[1]), ("invstd", invstd, cpu[2]),
                           ("running_mean", dev.asnumpy(d_rm), rm), ("running_var", dev.asnumpy(d_rv), rv)]:
            _as_cpu(a, e, name + " vs CPU" + at)
        for name, a, e in [("y", y, exp_y), ("mean", mean, exp_mean), ("invstd", invstd, exp_invstd),
                           ("running_mean", dev.asnumpy(d_rm), exp_rm), ("running_var", dev.asnumpy(d_rv), exp_rv)]:
            assert_close(a, e, rtol, atol, name + " vs oracle" + at)

    # eval normalises with the running statistics and leaves them alone; out= receives y
    rm_before = dev.asnumpy(d_rm)
    out = dev.asarray(np.full(shape, np.nan, dtype))
    y_eval, mean_eval, _ = B.batchnorm_forward(d_x, d_gamma, d_beta, d_rm, d_rv, training=False, eps=EPS, out=out)
    assert y_eval is out
    _as_cpu(dev.asnumpy(y_eval), B.batchnorm_forward(x, gamma, beta, rm, rv, training=False, eps=EPS)[0], "eval y")
    assert_close(dev.asnumpy(y_eval), R.batchnorm_forward_eval(x, gamma, beta, rm, rv, eps=EPS), rtol, atol,
                 "eval y vs oracle")
    _same_bits(dev.asnumpy(mean_eval), rm_before, "eval mean is the running mean")
    _same_bits(dev.asnumpy(d_rm), rm_before, "running_mean in eval")

    # backward from the last training step's statistics, into out=
    dy = random_array(rng, shape, dtype)
    cpu_dx, cpu_dgamma, cpu_dbeta = B.batchnorm_backward(dy, x, gamma, cpu[1], cpu[2])
    exp_dx, exp_dgamma, exp_dbeta = R.batchnorm_backward(dy, x, gamma, cpu[1], cpu[2])
    out = dev.asarray(np.full(shape, np.nan, dtype))
    res = B.batchnorm_backward(dev.asarray(dy), d_x, d_gamma, res[1], res[2], out=out)
    assert res[0] is out and all(type(r) is device_type for r in res)
    dx, dgamma, dbeta = (dev.asnumpy(r) for r in res)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    _as_cpu(dgamma, cpu_dgamma, "dgamma vs CPU")
    _as_cpu(dbeta, cpu_dbeta, "dbeta vs CPU")
    _dx_as_cpu(dx, cpu_dx, dy, x, gamma, cpu[1], cpu[2], exp_dgamma, exp_dbeta)
    assert_close(dgamma, exp_dgamma, rtol, atol * np.sqrt(shape[0]), "dgamma vs oracle")
    assert_close(dbeta, exp_dbeta, rtol, atol * np.sqrt(shape[0]), "dbeta vs oracle")
    scale = np.abs(cpu[2].astype(np.float64) * gamma).max()
    assert_close(dx, exp_dx, rtol, atol * max(1.0, scale) * 4, "dx vs oracle")


def test_public_functions_on_device_without_affine_or_running_stats(rng, dev):
    """affine=False and track_running_stats=False: eval uses the batch statistics, the backward returns no
    parameter gradients; a non-contiguous device x is copied on the device."""
    shape, dtype = (7, 33), np.float32
    wide = random_array(rng, (shape[0], 2 * shape[1]), dtype)
    x = np.ascontiguousarray(wide[:, ::2])
    d_x = dev.asarray(wide)[:, ::2]
    assert not d_x.flags.c_contiguous
    y, mean, invstd = B.batchnorm_forward(d_x, None, None, None, None, training=False)
    cpu_y, cpu_mean, cpu_invstd = B.batchnorm_forward(x, None, None, None, None, training=False)
    for name, a, e in [("y", y, cpu_y), ("mean", mean, cpu_mean), ("invstd", invstd, cpu_invstd)]:
        assert type(a) is type(d_x)
        _as_cpu(dev.asnumpy(a), e, name)
    dy = random_array(rng, shape, dtype)
    dx, dgamma, dbeta = B.batchnorm_backward(dev.asarray(dy), d_x, None, mean, invstd)
    assert type(dx) is type(d_x) and dgamma is None and dbeta is None
    _, exp_dgamma, exp_dbeta = R.batchnorm_backward(dy, x, None, cpu_mean, cpu_invstd)
    _dx_as_cpu(dev.asnumpy(dx), B.batchnorm_backward(dy, x, None, cpu_mean, cpu_invstd)[0], dy, x, None, cpu_mean,
               cpu_invstd, exp_dgamma, exp_dbeta)


def test_public_functions_reject_bad_device_input_as_on_the_cpu(rng, dev):
    x, gamma, beta, rm, rv = _inputs(rng, (8, 5), np.float32)
    mean, invstd = rm, rv
    ints = np.ones((8, 5), np.int64)

    def fwd(a, **kw):  # a: how an array gets to the backend under test (identity, or dev.asarray)
        args = {"x": a(x), "gamma": a(gamma), "beta": a(beta), "running_mean": a(rm), "running_var": a(rv)}
        args.update({k: a(v) for k, v in kw.items() if k in args})
        return B.batchnorm_forward(*args.values(), training=kw.get("training", True), out=a(kw.get("out")))

    def out_is_x(a):
        d = a(x)
        return B.batchnorm_forward(d, None, None, None, None, training=True, out=d)

    def stats_overlap(a):
        r = a(rm)
        return B.batchnorm_forward(a(x), None, None, r, r, training=True)

    def out_is_dy(a):
        dy = a(x.copy())
        return B.batchnorm_backward(dy, a(x), None, a(mean), a(invstd), out=dy)

    cases = [
        lambda a: fwd(a, x=ints),
        lambda a: fwd(a, gamma=gamma.astype(np.float64)),
        lambda a: fwd(a, x=x[:1]),  # training needs two rows
        lambda a: fwd(a, beta=beta[:4]),
        lambda a: fwd(a, running_mean=np.zeros(6, np.float32)),
        lambda a: fwd(a, out=np.empty((8, 5), np.float64)),
        lambda a: fwd(a, out=np.empty((8, 4), np.float32)),
        out_is_x,
        stats_overlap,
        lambda a: B.batchnorm_backward(a(x[:7]), a(x), a(gamma), a(mean), a(invstd)),
        lambda a: B.batchnorm_backward(a(x), a(x), a(gamma), a(mean[:4]), a(invstd)),
        lambda a: B.batchnorm_backward(a(x), a(x), None, a(mean), None),
        out_is_dy,
    ]
    for case in cases:
        assert_same_error(lambda: case(lambda v: v),
                          lambda: case(lambda v: None if v is None else dev.asarray(v)))

    # host and device arrays in one call: a TypeError naming one of each, before anything runs
    rm_before = rm.copy()
    with pytest.raises(TypeError, match="^gamma is on the CPU .NumPy. but x is on the GPU"):
        B.batchnorm_forward(dev.asarray(x), gamma, None, None, None, training=True)
    with pytest.raises(TypeError, match="^running_mean is on the CPU .NumPy. but x is on the GPU"):
        B.batchnorm_forward(dev.asarray(x), None, None, rm, dev.asarray(rv), training=True)
    _same_bits(rm, rm_before, "a host running_mean is not touched")
    with pytest.raises(TypeError, match="^x is on the CPU .NumPy. but out is on the GPU"):
        B.batchnorm_forward(x, None, None, None, None, training=True, out=dev.asarray(x))
    with pytest.raises(TypeError, match="^dy is on the CPU .NumPy. but x is on the GPU"):
        B.batchnorm_backward(dy=x, x=dev.asarray(x), gamma=None, mean=dev.asarray(mean), invstd=dev.asarray(invstd))
