"""BCE-with-logits, MSE and L1 losses against the float64 oracle (kernels.reference)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from kernels import losses as L
from kernels import reference as ref
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
    non_finite_loss_inputs,
)
from tests.helpers import random_array as _random_array


def random_array(rng, shape, dtype, **kw):
    # np.asarray: astype on a 0-d draw returns a NumPy scalar, and the kernels take arrays only
    return np.asarray(_random_array(rng, shape, dtype, **kw))

REDUCTIONS = ["mean", "sum", "none"]
# plus a 1-D, a 3-D and a 0-d shape, and sizes past PARALLEL_MIN_ELEMENTS (several LOSS_BLOCKs)
SHAPES = AWKWARD_SHAPES + [(1000,), (3, 4, 5), (), (70000,), (2, 3, 9000)]
IDS = SHAPE_IDS + ["1000", "3x4x5", "scalar", "70000", "2x3x9000"]


def _check(loss, dx, ref_loss, ref_dx, shape, dtype, reduction, rtol, atol):
    assert dx.shape == shape
    if reduction == "none":
        assert loss.shape == shape
        assert loss.dtype == dtype
    else:
        assert isinstance(loss, np.generic) and loss.dtype == dtype
    assert dx.dtype == dtype
    assert_close(loss, ref_loss, rtol, atol, "loss")
    assert_close(dx, ref_dx, rtol, atol, "dx")


def _bce_inputs(rng, shape, dtype):
    x = random_array(rng, shape, dtype, scale=3.0)
    t = random_array(rng, shape, dtype, low=0.0, high=1.0)
    return x, t


# --------------------------------------------------------------------------------------------------
# values against the oracle


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, rtol, atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_bce_matches_oracle(shape, dtype, rtol, atol, reduction, rng):
    x, t = _bce_inputs(rng, shape, dtype)
    loss, dx = L.binary_cross_entropy_with_logits(x, t, reduction=reduction)
    r_loss, r_dx = ref.binary_cross_entropy_with_logits(x, t, reduction=reduction)
    _check(loss, dx, r_loss, r_dx, shape, dtype, reduction, rtol, atol)


def _weight_cases(rng, shape, dtype):
    c = shape[-1]
    cases = {
        "full": random_array(rng, shape, dtype, low=0.5, high=2.0),
        "last_axis": random_array(rng, (c,), dtype, low=0.5, high=2.0),
        "scalar": random_array(rng, (), dtype, low=0.5, high=2.0),
        "one_by_one": random_array(rng, (1,) * len(shape), dtype, low=0.5, high=2.0),
    }
    if len(shape) >= 2:
        cases["column"] = random_array(rng, shape[:-1] + (1,), dtype, low=0.5, high=2.0)  # broadcast in the middle
    return cases


WEIGHT_SHAPES = [(1, 1), (1, 37), (64, 1), (7, 1023), (3, 5, 7), (50, 1500), (1000,)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, rtol, atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", WEIGHT_SHAPES, ids=[str(s) for s in WEIGHT_SHAPES])
def test_bce_weight_and_pos_weight_match_oracle(shape, dtype, rtol, atol, reduction, rng):
    x, t = _bce_inputs(rng, shape, dtype)
    pw = random_array(rng, (shape[-1],), dtype, low=0.2, high=3.0)
    for w in _weight_cases(rng, shape, dtype).values():
        for pos_weight in (None, pw, pw[:1]):
            loss, dx = L.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pos_weight, reduction=reduction)
            r_loss, r_dx = ref.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pos_weight,
                                                                reduction=reduction)
            _check(loss, dx, r_loss, r_dx, shape, dtype, reduction, rtol, atol)
    loss, dx = L.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction=reduction)
    r_loss, r_dx = ref.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction=reduction)
    _check(loss, dx, r_loss, r_dx, shape, dtype, reduction, rtol, atol)


@pytest.mark.parametrize("fn, oracle", [(L.mse_loss, ref.mse_loss), (L.l1_loss, ref.l1_loss)], ids=["mse", "l1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, rtol, atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_mse_l1_match_oracle(shape, dtype, rtol, atol, reduction, fn, oracle, rng):
    x = random_array(rng, shape, dtype)
    t = random_array(rng, shape, dtype)
    loss, dx = fn(x, t, reduction=reduction)
    r_loss, r_dx = oracle(x, t, reduction=reduction)
    _check(loss, dx, r_loss, r_dx, shape, dtype, reduction, rtol, atol)


def test_bce_hard_targets_and_torch_values():
    # torch.nn.functional.binary_cross_entropy_with_logits on these inputs (float64), computed by hand:
    # softplus(-x) for t = 1 and softplus(x) for t = 0.
    x = np.array([2.0, -1.0, 0.0, 3.0])
    t = np.array([1.0, 0.0, 1.0, 0.0])
    expected = np.log1p(np.exp(-x * np.where(t == 1, 1, -1)))
    loss, dx = L.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert_close(loss, expected, 1e-14, 0)
    assert_close(dx, 1 / (1 + np.exp(-x)) - t, 1e-14, 1e-16)


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e4), (np.float32, 80.0), (np.float32, 1e30),
                                        (np.float64, 1e300), (np.float64, 800.0)])
def test_bce_large_logits_stay_finite(dtype, big):
    x = np.array([-big, big, -big, big, -big, big], dtype=dtype)
    t = np.array([0, 0, 1, 1, 0.25, 0.75], dtype=dtype)
    for reduction in REDUCTIONS:
        loss, dx = L.binary_cross_entropy_with_logits(x, t, reduction=reduction)
        assert np.isfinite(loss).all() and np.isfinite(dx).all(), (reduction, loss, dx)
    loss, dx = L.binary_cross_entropy_with_logits(x, t, reduction="none")
    r_loss, r_dx = ref.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert_close(loss, r_loss, 1e-6, 0, "loss")
    assert_close(dx, r_dx, 1e-6, 0, "dx")


def test_l1_gradient_zero_where_equal(rng):
    x = random_array(rng, (5, 7), np.float32)
    t = x.copy()
    t[::2] += 1.0
    loss, dx = L.l1_loss(x, t, reduction="none")
    assert (dx[1::2] == 0).all()
    assert (dx[::2] == -1).all()
    assert (loss[1::2] == 0).all()


def test_log1p_unit_f32_within_three_ulp():
    @njit
    def run(e, out):
        for i in range(e.size):
            out[i] = L.log1p_unit_f32(e[i])

    e = np.concatenate([np.float32(2.0) ** -np.arange(0, 150, dtype=np.float32),
                        np.linspace(0, 1, 200001, dtype=np.float32),
                        np.logspace(-40, 0, 100000).astype(np.float32)])
    out = np.empty_like(e)
    run(e, out)
    # at e = 0 the ulp of exact = 0 is the smallest subnormal: log1p(0) must be exactly 0
    assert_within_ulp(out, np.log1p(e.astype(np.float64)), 3.0, e, "log1p_unit_f32")


# --------------------------------------------------------------------------------------------------
# reductions, empty input, determinism, non-finite input


@pytest.mark.parametrize("fn", [L.binary_cross_entropy_with_logits, L.mse_loss, L.l1_loss],
                         ids=["bce", "mse", "l1"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_empty_input(fn, dtype):
    x = np.empty((0, 5), dtype=dtype)
    for reduction in ("mean", "sum"):
        loss, dx = fn(x, x.copy(), reduction=reduction)
        assert loss == 0 and loss.dtype == dtype and not np.isnan(loss)
        assert dx.shape == (0, 5)
    loss, dx = fn(x, x.copy(), reduction="none")
    assert loss.shape == (0, 5) and dx.shape == (0, 5)


@pytest.mark.parametrize("fn", [L.binary_cross_entropy_with_logits, L.mse_loss, L.l1_loss],
                         ids=["bce", "mse", "l1"])
@needs_two_threads
def test_one_vs_two_threads_bitwise(fn, rng):
    x = random_array(rng, (300, 333), np.float32)
    t = random_array(rng, (300, 333), np.float32, low=0.0, high=1.0)
    assert_same_bits_at_one_and_two_threads(lambda: fn(x, t))


@pytest.mark.parametrize("fn, oracle", [(L.binary_cross_entropy_with_logits, ref.binary_cross_entropy_with_logits),
                                        (L.mse_loss, ref.mse_loss), (L.l1_loss, ref.l1_loss)],
                         ids=["bce", "mse", "l1"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_non_finite_inputs_follow_the_formula(fn, oracle, dtype, rng):
    # NaN propagates to that element's loss and gradient (and to a reduced loss); the rest is untouched.
    x, t = non_finite_loss_inputs(rng, dtype)
    loss, dx = fn(x, t, reduction="none")
    with np.errstate(invalid="ignore"):
        r_loss, r_dx = oracle(x, t, reduction="none")
        assert_close(loss, r_loss, *TOLS[dtype], "loss")
        assert_close(dx, r_dx, *TOLS[dtype], "dx")
    assert np.isnan(fn(x, t, reduction="mean")[0])


def test_out_buffer(rng):
    x, t = _bce_inputs(rng, (7, 1023), np.float32)
    out = np.full_like(x, 5.0)
    _, dx = L.mse_loss(x, t, out=out)
    assert dx is out
    assert_close(dx, ref.mse_loss(x, t)[1], *TOLS[np.float32])
    _, dx = L.binary_cross_entropy_with_logits(x, t, reduction="none", out=out)
    assert dx is out
    assert_close(dx, ref.binary_cross_entropy_with_logits(x, t, reduction="none")[1], *TOLS[np.float32])


def test_non_contiguous_inputs_are_copied(rng):
    x = random_array(rng, (40, 30), np.float64).T
    t = random_array(rng, (30, 40), np.float64, low=0.0, high=1.0)[:, ::-1]
    w = random_array(rng, (80,), np.float64, low=0.5, high=2.0)[::2]
    assert not x.flags.c_contiguous and not t.flags.c_contiguous
    for fn, oracle, kw in ((L.binary_cross_entropy_with_logits, ref.binary_cross_entropy_with_logits,
                            {"pos_weight": w, "weight": w}),
                           (L.mse_loss, ref.mse_loss, {}), (L.l1_loss, ref.l1_loss, {})):
        loss, dx = fn(x, t, **kw)
        r_loss, r_dx = oracle(x, t, **kw)
        assert_close(loss, r_loss, *TOLS[np.float64])
        assert_close(dx, r_dx, *TOLS[np.float64])


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("fn", [L.binary_cross_entropy_with_logits, L.mse_loss, L.l1_loss],
                         ids=["bce", "mse", "l1"])
def test_bad_common_arguments(fn):
    x = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="^x has dtype int64"):
        fn(np.ones((3, 4), dtype=np.int64), x)
    with pytest.raises(TypeError, match="^target has dtype float64 but x has dtype float32"):
        fn(x, np.ones((3, 4), dtype=np.float64))
    with pytest.raises(TypeError, match="^target has dtype float16"):
        fn(x, np.ones((3, 4), dtype=np.float16))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        fn([[1.0]], x)
    with pytest.raises(ValueError, match="target has shape"):
        fn(x, np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="^reduction = 'average' is not one of"):
        fn(x, x, reduction="average")
    t = x.copy()
    for aliased in (x, t):
        assert_rejects_bad_out(lambda out: fn(x, t, out=out), x.shape, np.float32, aliased)


def test_bce_bad_weights():
    x = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="weight has shape"):
        L.binary_cross_entropy_with_logits(x, x, weight=np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="weight has shape"):
        L.binary_cross_entropy_with_logits(x, x, weight=np.ones((2, 3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="weight"):
        L.binary_cross_entropy_with_logits(x, x, weight=np.ones(4, dtype=np.float64))
    with pytest.raises(ValueError, match="pos_weight has shape"):
        L.binary_cross_entropy_with_logits(x, x, pos_weight=np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="pos_weight has shape"):
        L.binary_cross_entropy_with_logits(x, x, pos_weight=np.ones((1, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="pos_weight"):
        L.binary_cross_entropy_with_logits(x, x, pos_weight=np.ones(4, dtype=np.float64))
    with pytest.raises(TypeError, match="pos_weight"):
        L.binary_cross_entropy_with_logits(x, x, pos_weight=[1.0, 1.0, 1.0, 1.0])
