"""kernels.batchnorm against the float64 oracle (kernels.reference): forward in both modes, running
statistics, backward, the |mean| >> std case, affine=False, no running statistics, bad input,
determinism across thread counts, and NaN/Inf input."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import reference as ref
from kernels.batchnorm import batchnorm_backward, batchnorm_forward
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

# Training needs N >= 2. (2, 37) .. (33, 1025) hit the narrow and wide (C >= 1024, 4-row sweep plus
# remainder rows) loops serially; (300, 1100) and (2050, 33) take the parallel path with several blocks.
TRAIN_SHAPES = [(2, 1), (2, 37), (64, 1), (7, 1023), (33, 1025), (300, 1100), (2050, 33)]
TRAIN_IDS = ["2x1", "2x37", "64x1", "7x1023", "33x1025", "300x1100", "2050x33"]
EVAL_SHAPES = [(1, 1), (1, 37), (64, 1), (7, 1023), (33, 1025), (300, 1100)]
EVAL_IDS = ["1x1", "1x37", "64x1", "7x1023", "33x1025", "300x1100"]

dtypes = pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)


def _inputs(rng, shape, dtype, center=0.0):
    c = shape[1]
    x = (center + random_array(rng, shape, np.float64, scale=2.0)).astype(dtype)
    gamma = random_array(rng, c, dtype, low=0.5, high=1.5)
    beta = random_array(rng, c, dtype)
    running_mean = random_array(rng, c, dtype)
    running_var = random_array(rng, c, dtype, low=0.5, high=2.0)
    return x, gamma, beta, running_mean, running_var


@dtypes
@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=TRAIN_IDS)
def test_forward_train_matches_oracle(rng, shape, dtype, rtol, atol):
    x, gamma, beta, rm, rv = _inputs(rng, shape, dtype, center=0.5)
    exp_y, exp_rm, exp_rv, exp_mean, exp_invstd = ref.batchnorm_forward_train(
        x, gamma, beta, rm, rv, momentum=0.2, eps=1e-3)
    rm_obj, rv_obj = rm, rv
    y, mean, invstd = batchnorm_forward(x, gamma, beta, rm, rv, training=True, momentum=0.2, eps=1e-3)
    assert y.shape == shape and mean.shape == invstd.shape == (shape[1],)
    assert y.dtype == mean.dtype == invstd.dtype == dtype
    assert_close(y, exp_y, rtol, atol, "y")
    assert_close(mean, exp_mean, rtol, atol, "mean")
    assert_close(invstd, exp_invstd, rtol, atol, "invstd")
    # updated in place, in the caller's arrays
    assert rm is rm_obj and rv is rv_obj
    assert_close(rm, exp_rm, rtol, atol, "running_mean")
    assert_close(rv, exp_rv, rtol, atol, "running_var")


@dtypes
@pytest.mark.parametrize("shape", EVAL_SHAPES, ids=EVAL_IDS)
def test_forward_eval_matches_oracle(rng, shape, dtype, rtol, atol):
    x, gamma, beta, rm, rv = _inputs(rng, shape, dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = batchnorm_forward(x, gamma, beta, rm, rv, training=False, eps=1e-4)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, ref.batchnorm_forward_eval(x, gamma, beta, rm, rv, eps=1e-4), rtol, atol, "y")
    assert_close(mean, rm0, rtol, atol, "mean")
    assert_close(invstd, 1.0 / np.sqrt(rv0.astype(np.float64) + 1e-4), rtol, atol, "invstd")
    np.testing.assert_array_equal(rm, rm0)  # eval never touches the running statistics
    np.testing.assert_array_equal(rv, rv0)


@dtypes
def test_running_stats_over_several_steps(rng, dtype, rtol, atol):
    c = 37
    rm = random_array(rng, c, dtype)
    rv = random_array(rng, c, dtype, low=0.5, high=2.0)
    exp_rm, exp_rv = rm.astype(np.float64), rv.astype(np.float64)
    for step, n in enumerate((5, 64, 2, 130)):
        x = random_array(rng, (n, c), dtype, scale=1.0 + step)
        _, exp_rm, exp_rv, _, _ = ref.batchnorm_forward_train(x, None, None, exp_rm, exp_rv, momentum=0.3)
        batchnorm_forward(x, None, None, rm, rv, training=True, momentum=0.3)
        assert_close(rm, exp_rm, rtol, atol, f"running_mean after step {step}")
        assert_close(rv, exp_rv, rtol, atol, f"running_var after step {step}")


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_bounds(rng, momentum):
    x, _, _, rm, rv = _inputs(rng, (9, 5), np.float64)
    rm0, rv0 = rm.copy(), rv.copy()
    _, exp_rm, exp_rv, _, _ = ref.batchnorm_forward_train(x, None, None, rm0, rv0, momentum=momentum)
    batchnorm_forward(x, None, None, rm, rv, training=True, momentum=momentum)
    assert_close(rm, exp_rm, 1e-12, 1e-14, "running_mean")
    assert_close(rv, exp_rv, 1e-12, 1e-14, "running_var")


@dtypes
@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=TRAIN_IDS)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
def test_backward_matches_oracle(rng, shape, affine, dtype, rtol, atol):
    x, gamma, beta, rm, rv = _inputs(rng, shape, dtype, center=-0.5)
    if not affine:
        gamma = beta = None
    _, mean, invstd = batchnorm_forward(x, gamma, beta, rm, rv, training=True)
    dy = random_array(rng, shape, dtype)
    exp_dx, exp_dgamma, exp_dbeta = ref.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx, dgamma, dbeta = batchnorm_backward(dy, x, gamma, mean, invstd)
    assert dx.shape == shape and dx.dtype == dtype
    # dx sums cancel (dy - mean(dy) - ...): scale the absolute tolerance by the size of its terms.
    scale = np.abs(np.asarray(invstd, np.float64) * (1.0 if gamma is None else gamma)).max()
    assert_close(dx, exp_dx, rtol, atol * max(1.0, scale) * 4, "dx")
    if affine:
        assert dgamma.shape == dbeta.shape == (shape[1],) and dgamma.dtype == dbeta.dtype == dtype
        assert_close(dgamma, exp_dgamma, rtol, atol * np.sqrt(shape[0]), "dgamma")
        assert_close(dbeta, exp_dbeta, rtol, atol * np.sqrt(shape[0]), "dbeta")
    else:
        assert dgamma is None and dbeta is None


@dtypes
def test_mean_far_from_zero(rng, dtype, rtol, atol):
    """|mean| / std = 1e5: a textbook E[x^2] - E[x]^2 loses every digit of the variance here."""
    shape = (513, 1030)
    x = (1000.0 + 0.01 * rng.standard_normal(shape)).astype(dtype)
    # x - 1000 is exact (Sterbenz), so the oracle on the centred data is an accurate reference.
    centred = x.astype(np.float64) - 1000.0
    exp_y, _, _, exp_mean, exp_invstd = ref.batchnorm_forward_train(centred, None, None, None, None)
    rm, rv = np.zeros(shape[1], dtype), np.ones(shape[1], dtype)
    y, mean, invstd = batchnorm_forward(x, None, None, rm, rv, training=True)
    # float64 y: the batch mean itself rounds at ~1e-13 of 1000, i.e. 1e-11 of one std
    assert_close(y, exp_y, rtol, max(atol, 1e-10), "y")
    assert_close(mean, 1000.0 + exp_mean, rtol, atol, "mean")
    assert_close(invstd, exp_invstd, rtol * 10, atol, "invstd")
    exp_var_unbiased = (1.0 / exp_invstd**2 - 1e-5) * shape[0] / (shape[0] - 1)
    assert_close(rv, 0.9 + 0.1 * exp_var_unbiased, rtol * 10, atol, "running_var")

    dy = random_array(rng, shape, dtype)
    exp_dx, exp_dgamma, _ = ref.batchnorm_backward(dy, x, np.ones(shape[1], dtype), mean, invstd)
    dx, dgamma, _ = batchnorm_backward(dy, x, np.ones(shape[1], dtype), mean, invstd)
    assert_close(dx, exp_dx, rtol * 10, atol * 100, "dx")
    assert_close(dgamma, exp_dgamma, rtol * 10, atol * 100, "dgamma")


@dtypes
def test_without_running_stats_uses_batch_stats(rng, dtype, rtol, atol):
    x, gamma, beta, _, _ = _inputs(rng, (33, 70), dtype)
    exp_y, _, _, exp_mean, exp_invstd = ref.batchnorm_forward_train(x, gamma, beta, None, None)
    for training in (True, False):  # torch: track_running_stats=False normalises with batch stats in eval
        y, mean, invstd = batchnorm_forward(x, gamma, beta, None, None, training=training)
        assert_close(y, exp_y, rtol, atol, f"y (training={training})")
        assert_close(mean, exp_mean, rtol, atol, "mean")
        assert_close(invstd, exp_invstd, rtol, atol, "invstd")


def test_out_and_noncontiguous_input(rng):
    big = random_array(rng, (40, 60), np.float64)
    x = big[:, ::2]
    out = np.empty((40, 30))
    y, _, _ = batchnorm_forward(x, None, None, None, None, training=True, out=out)
    assert y is out
    exp_y = ref.batchnorm_forward_train(x, None, None, None, None)[0]
    assert_close(y, exp_y, *TOLS[np.float64], "y")
    dy = random_array(rng, (40, 60), np.float64)[:, 1::2]
    _, mean, invstd = batchnorm_forward(x, None, None, None, None, training=True)
    dx_out = np.empty((40, 30))
    dx, _, _ = batchnorm_backward(dy, x, None, mean, invstd, out=dx_out)
    assert dx is dx_out
    assert_close(dx, ref.batchnorm_backward(dy, x, None, mean, invstd)[0], *TOLS[np.float64], "dx")


@needs_two_threads
def test_same_bits_at_one_and_two_threads(rng):
    shape = (1000, 1100)  # parallel path, 16 row blocks, wide rows
    x, gamma, beta, rm, rv = _inputs(rng, shape, np.float32, center=3.0)
    dy = random_array(rng, shape, np.float32)

    def run():
        r_m, r_v = rm.copy(), rv.copy()
        y, mean, invstd = batchnorm_forward(x, gamma, beta, r_m, r_v, training=True)
        return (y, mean, invstd, r_m, r_v, *batchnorm_backward(dy, x, gamma, mean, invstd))

    assert_same_bits_at_one_and_two_threads(run)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_stays_in_its_column(rng, bad):
    """A NaN or Inf in column 3 makes column 3 NaN (y, mean/invstd, running stats, dx); the rest is exact."""
    shape = (70, 9)
    x, gamma, beta, rm, rv = _inputs(rng, shape, np.float64)
    x[17, 3] = bad
    good = np.arange(shape[1]) != 3
    exp_y, exp_rm, exp_rv, _, _ = ref.batchnorm_forward_train(x[:, good], gamma[good], beta[good],
                                                              rm[good], rv[good])
    y, mean, invstd = batchnorm_forward(x, gamma, beta, rm, rv, training=True)
    assert np.isnan(y[:, 3]).all() and not np.isfinite(rm[3]) and not np.isfinite(rv[3])
    assert np.isnan(mean[3]) or np.isnan(invstd[3])
    assert_close(y[:, good], exp_y, *TOLS[np.float64], "y (finite columns)")
    assert_close(rm[good], exp_rm, *TOLS[np.float64], "running_mean (finite columns)")
    assert_close(rv[good], exp_rv, *TOLS[np.float64], "running_var (finite columns)")
    dy = random_array(rng, shape, np.float64)
    dx, dgamma, dbeta = batchnorm_backward(dy, x, gamma, mean, invstd)
    assert np.isnan(dx[:, 3]).all() and np.isnan(dgamma[3])
    assert np.isfinite(dx[:, good]).all() and np.isfinite(dgamma[good]).all() and np.isfinite(dbeta).all()


# ------------------------------------------------------------------------------------------------------
# bad input


def _fwd(x, gamma=None, beta=None, rm=None, rv=None, **kw):
    kw.setdefault("training", True)
    return batchnorm_forward(x, gamma, beta, rm, rv, **kw)


@pytest.fixture
def good(rng):
    x, gamma, beta, rm, rv = _inputs(rng, (8, 5), np.float32)
    return x, gamma, beta, rm, rv


def test_training_needs_two_rows(rng):
    x = random_array(rng, (1, 5), np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _fwd(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _fwd(x, training=False)  # no running stats: eval uses batch stats, so the same rule applies
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    y, _, _ = _fwd(x, rm=rm, rv=rv, training=False)  # eval with running stats is fine for one row
    assert_close(y, ref.batchnorm_forward_eval(x, None, None, rm, rv), *TOLS[np.float32], "y")


def test_bad_dtypes(good):
    x, gamma, beta, rm, rv = good
    with pytest.raises(TypeError, match="x has dtype int64"):
        _fwd(np.ones((4, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="gamma has dtype float64"):
        _fwd(x, gamma.astype(np.float64), beta)
    with pytest.raises(TypeError, match="running_var has dtype float64"):
        _fwd(x, gamma, beta, rm, rv.astype(np.float64))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        _fwd([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match="mean has dtype float64"):
        batchnorm_backward(x, x, None, rm.astype(np.float64), rv)
    with pytest.raises(TypeError, match="invstd must be a numpy.ndarray"):
        batchnorm_backward(x, x, None, rm, None)


def test_bad_shapes(good):
    x, gamma, beta, rm, rv = good
    with pytest.raises(ValueError, match="x must be 2-D"):
        _fwd(x[0])
    with pytest.raises(ValueError, match=r"gamma has shape \(4,\)"):
        _fwd(x, gamma[:4], beta)
    with pytest.raises(ValueError, match=r"running_mean has shape \(6,\)"):
        _fwd(x, rm=np.zeros(6, np.float32), rv=np.ones(6, np.float32))
    with pytest.raises(ValueError, match="both be arrays or both be None"):
        _fwd(x, rm=rm)
    with pytest.raises(ValueError, match=r"dy has shape \(7, 5\)"):
        batchnorm_backward(x[:7], x, gamma, rm, rv)
    with pytest.raises(ValueError, match=r"mean has shape \(4,\)"):
        batchnorm_backward(x, x, gamma, rm[:4], rv)


def test_bad_scalars(good):
    x = good[0]
    with pytest.raises(ValueError, match="momentum = 1.5 is out of range"):
        _fwd(x, momentum=1.5)
    with pytest.raises(ValueError, match="momentum = -0.1 is out of range"):
        _fwd(x, momentum=-0.1)
    with pytest.raises(TypeError, match="momentum must be a real number"):
        _fwd(x, momentum=None)
    with pytest.raises(ValueError, match="eps = 0 is out of range"):
        _fwd(x, eps=0)
    with pytest.raises(ValueError, match="eps must not be NaN"):
        _fwd(x, eps=float("nan"))
    with pytest.raises(TypeError, match="training must be a bool"):
        _fwd(x, training=1)


def test_bad_running_stats(good):
    x, _, _, rm, rv = good
    strided = np.zeros(10, np.float32)[::2]
    with pytest.raises(ValueError, match="running_mean must be C-contiguous"):
        _fwd(x, rm=strided, rv=rv)
    ro = rv.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_var is read-only"):
        _fwd(x, rm=rm, rv=ro)
    with pytest.raises(ValueError, match="running_mean and running_var overlap"):
        _fwd(x, rm=rm, rv=rm)


def test_bad_out(good):
    x, gamma, beta, _, _ = good
    with pytest.raises(ValueError, match=r"out has shape \(8, 4\)"):
        _fwd(x, out=np.empty((8, 4), np.float32))
    assert_rejects_bad_out(lambda out: _fwd(x, gamma, beta, out=out), x.shape, np.float32, x)
    _, mean, invstd = _fwd(x)
    dy = x.copy()
    for aliased in (x, dy):
        assert_rejects_bad_out(lambda out: batchnorm_backward(dy, x, gamma, mean, invstd, out=out), x.shape,
                               np.float32, aliased)
