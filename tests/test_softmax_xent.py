"""kernels.softmax_xent against the float64 oracle: softmax family, fused cross-entropy, nll_loss.

Order in each test: shape, dtype, forward values, gradients, then non-finite inputs. Shapes cover the
awkward ones (1x1, 1xC, Nx1, 7x1023, 33x1025), rows of several pass-1 blocks (C = 32769) and inputs big
enough for the parallel drivers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import reference as ref
from kernels import softmax_xent as sx
from kernels._util import PARALLEL_MIN_ELEMENTS
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
    needs_two_threads,
    random_array,
)

# rows spanning several pass-1 blocks plus a tail, and an N x C above the parallel threshold
BIG_SHAPES = [(3, 32769), (96, 1031)]
BIG_IDS = ["3x32769", "96x1031"]
SHAPES = AWKWARD_SHAPES + BIG_SHAPES
IDS = SHAPE_IDS + BIG_IDS
assert all(n * c >= PARALLEL_MIN_ELEMENTS for n, c in BIG_SHAPES)

dtypes = pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
shapes = pytest.mark.parametrize("shape", SHAPES, ids=IDS)


def _labels(rng, n, c, ignore_some=False, ignore_index=-100):
    t = rng.integers(0, c, size=n)
    if ignore_some and n > 1:
        t[rng.random(n) < 0.3] = ignore_index
        t[0] = ignore_index
    return t


def _probs(rng, shape, dtype):
    p = rng.uniform(0.01, 1.0, size=shape)
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _check_loss(loss, expected, reduction, dtype, rtol, atol):
    if reduction == "none":
        assert loss.shape == np.shape(expected)
    else:
        assert np.ndim(loss) == 0 and isinstance(loss, np.generic)
    assert loss.dtype == dtype
    assert_close(loss, expected, rtol, atol, "loss")


# --------------------------------------------------------------------------------------------------
# softmax family


@dtypes
@shapes
def test_softmax_and_log_softmax_match_oracle(rng, shape, dtype, rtol, atol):
    x = random_array(rng, shape, dtype, scale=3.0)
    y = sx.softmax(x)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, ref.softmax(x), rtol, atol, "softmax")
    ly = sx.log_softmax(x)
    assert ly.shape == shape and ly.dtype == dtype
    assert_close(ly, ref.log_softmax(x), rtol, atol, "log_softmax")


@dtypes
@shapes
def test_softmax_backward_family_matches_oracle(rng, shape, dtype, rtol, atol):
    x = random_array(rng, shape, dtype, scale=2.0)
    dy = random_array(rng, shape, dtype)
    y = ref.softmax(x).astype(dtype)
    dx = sx.softmax_backward(dy, y)
    assert dx.shape == shape and dx.dtype == dtype
    assert_close(dx, ref.softmax_backward(dy, y), rtol, atol, "softmax_backward")
    ly = ref.log_softmax(x).astype(dtype)
    dx = sx.log_softmax_backward(dy, ly)
    assert dx.shape == shape and dx.dtype == dtype
    assert_close(dx, ref.log_softmax_backward(dy, ly), rtol, atol, "log_softmax_backward")


@dtypes
@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_softmax_family_along_any_axis(rng, axis, dtype, rtol, atol):
    x = random_array(rng, (3, 5, 6), dtype)
    dy = random_array(rng, (3, 5, 6), dtype)
    out = np.empty_like(x)
    assert sx.softmax(x, axis, out=out) is out
    assert_close(out, ref.softmax(x, axis=axis), rtol, atol, "softmax")
    assert_close(sx.log_softmax(x, axis=axis), ref.log_softmax(x, axis=axis), rtol, atol, "log_softmax")
    y = ref.softmax(x, axis=axis).astype(dtype)
    assert_close(sx.softmax_backward(dy, y, axis), ref.softmax_backward(dy, y, axis=axis), rtol, atol, "dx")
    ly = ref.log_softmax(x, axis=axis).astype(dtype)
    assert_close(sx.log_softmax_backward(dy, ly, axis=axis), ref.log_softmax_backward(dy, ly, axis=axis),
                 rtol, atol, "dx")


@dtypes
def test_softmax_1d_and_noncontiguous(rng, dtype, rtol, atol):
    v = random_array(rng, (50,), dtype)
    assert_close(sx.softmax(v), ref.softmax(v), rtol, atol, "1-D")
    x = random_array(rng, (40, 30), dtype)[::2, ::3]
    assert not x.flags.c_contiguous
    before = x.copy()
    assert_close(sx.log_softmax(x), ref.log_softmax(x), rtol, atol, "strided")
    assert np.array_equal(x, before)
    assert sx.softmax(np.empty((0, 4), dtype)).shape == (0, 4)


@dtypes
def test_softmax_huge_and_masked_logits(rng, dtype, rtol, atol):
    big = 1e4 if dtype == np.float32 else 1e300
    x = random_array(rng, (6, 2500), dtype, low=-big, high=big)
    x[1, 1500] = big  # the maximum in a later block than the first: pass 1 must rebase
    x[2] = np.linspace(-1000, 1000, 2500)  # steadily rising: a rebase in every block
    y = sx.softmax(x)
    assert np.isfinite(y).all()
    assert_close(y, ref.softmax(x), rtol, atol, "softmax")
    assert_close(sx.log_softmax(x), ref.log_softmax(x), rtol, atol, "log_softmax")
    # -inf logits are masked classes (probability 0), including a whole first block of them
    m = random_array(rng, (3, 2100), dtype)
    m[0, :1500] = -np.inf
    m[1, ::2] = -np.inf
    m[2, 0] = -np.inf
    assert_close(sx.softmax(m), ref.softmax(m), rtol, atol, "masked softmax")


@dtypes
def test_softmax_nan_rows_stay_in_their_row(rng, dtype, rtol, atol):
    x = random_array(rng, (4, 1500), dtype)
    x[1, 700] = np.nan
    x[2, 0] = np.nan
    x[3, :] = -np.inf  # no finite logit: undefined, NaN like the oracle and torch
    for f in (sx.softmax, sx.log_softmax):
        y = f(x)
        assert np.isnan(y[1:]).all()
        assert np.isfinite(y[0]).all()
    assert_close(sx.softmax(x[:1]), ref.softmax(x[:1]), rtol, atol, "row 0")


def test_softmax_out_errors(rng):
    x = random_array(rng, (4, 5), np.float32)
    y = x.copy()
    with pytest.raises(ValueError, match=r"out has shape \(5, 4\), expected \(4, 5\)"):
        sx.softmax(x, out=np.empty((5, 4), np.float32))
    for f in (sx.softmax, sx.log_softmax):
        assert_rejects_bad_out(lambda out, f=f: f(x, out=out), x.shape, np.float32, x)
    for f in (sx.softmax_backward, sx.log_softmax_backward):
        for aliased in (x, y):
            assert_rejects_bad_out(lambda out, f=f: f(x, y, out=out), x.shape, np.float32, aliased)


def test_softmax_bad_inputs(rng):
    x = random_array(rng, (4, 5), np.float32)
    with pytest.raises(TypeError, match="x has dtype int64"):
        sx.softmax(np.ones((2, 3), np.int64))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray or a CUDA device array .CuPy., got list"):
        sx.log_softmax([1.0, 2.0])
    with pytest.raises(ValueError, match="x must have at least 1"):
        sx.softmax(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match="axis = 2 is out of range for an array of ndim 2"):
        sx.softmax(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        sx.softmax(x, axis=1.0)
    with pytest.raises(TypeError, match="y has dtype float64 but dy has dtype float32"):
        sx.softmax_backward(x, x.astype(np.float64))
    with pytest.raises(ValueError, match=r"dy has shape \(4, 4\) but y has shape \(4, 5\)"):
        sx.log_softmax_backward(x[:, :4].copy(), x)


# --------------------------------------------------------------------------------------------------
# fused cross-entropy


@dtypes
@shapes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target_kind, smoothing", [("hard", 0.0), ("hard", 0.1), ("soft", 0.0), ("soft", 0.25)],
                         ids=["hard-eps0", "hard-eps0.1", "soft-eps0", "soft-eps0.25"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_cross_entropy_matches_oracle(rng, shape, dtype, rtol, atol, reduction, target_kind, smoothing, weighted):
    """Class-index targets (some rows ignore_index) and probability targets."""
    n, c = shape
    x = random_array(rng, shape, dtype, scale=3.0)
    t = _labels(rng, n, c, ignore_some=True) if target_kind == "hard" else _probs(rng, shape, dtype)
    w = random_array(rng, (c,), dtype, low=0.5, high=2.0) if weighted else None
    kw = dict(weight=w, label_smoothing=smoothing, reduction=reduction)
    loss, g = sx.softmax_cross_entropy(x, t, **kw)
    eloss, eg = ref.cross_entropy(x, t, **kw)
    assert g.shape == shape and g.dtype == dtype
    _check_loss(loss, eloss, reduction, dtype, rtol, atol)
    assert_close(g, eg, rtol, atol, "dlogits")
    if target_kind == "hard":
        assert not g[t == -100].any()


@dtypes
def test_cross_entropy_integer_dtypes_and_ignore_index_values(rng, dtype, rtol, atol):
    x = random_array(rng, (9, 6), dtype)
    t = _labels(rng, 9, 6)
    expected = ref.cross_entropy(x, t)
    for idt in (np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64):
        loss, g = sx.softmax_cross_entropy(x, t.astype(idt))
        assert_close(loss, expected[0], rtol, atol, f"loss {idt.__name__}")
        assert_close(g, expected[1], rtol, atol, f"dlogits {idt.__name__}")
    # ignore_index may be a real class: rows with that label are skipped, as in torch
    t[:3] = 2
    for ii in (2, -1):
        loss, g = sx.softmax_cross_entropy(x, t, ignore_index=ii, label_smoothing=0.2)
        eloss, eg = ref.cross_entropy(x, t, ignore_index=ii, label_smoothing=0.2)
        assert_close(loss, eloss, rtol, atol, "loss")
        assert_close(g, eg, rtol, atol, "dlogits")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_all_ignored_and_empty_batch(rng, dtype, reduction):
    x = random_array(rng, (5, 7), dtype)
    t = np.full(5, -100)
    loss, g = sx.softmax_cross_entropy(x, t, reduction=reduction, label_smoothing=0.1)
    assert np.all(loss == 0) and loss.dtype == dtype  # torch gives NaN for "mean" (0 / 0)
    assert g.shape == (5, 7) and not g.any()
    loss, g = sx.softmax_cross_entropy(np.empty((0, 7), dtype), np.empty(0, np.int64), reduction=reduction)
    assert g.shape == (0, 7)
    if reduction == "none":
        assert loss.shape == (0,)
    else:
        assert loss == 0 and loss.dtype == dtype  # documented: N == 0 gives loss 0, torch gives NaN


@dtypes
@pytest.mark.parametrize("target_kind", ["hard", "soft"])
def test_cross_entropy_out_reuse_and_noncontiguous_inputs(rng, dtype, rtol, atol, target_kind):
    big = random_array(rng, (20, 14), dtype, scale=2.0)
    x = big[::2, ::2]  # (10, 7) strided view
    if target_kind == "hard":
        t = np.repeat(_labels(rng, 10, 7), 2)[::2]
    else:
        t = np.asfortranarray(_probs(rng, (10, 7), dtype))
    w = random_array(rng, (14,), dtype, low=0.5, high=2.0)[::2]
    eloss, eg = ref.cross_entropy(x, t, weight=w, label_smoothing=0.05)
    out = np.full((10, 7), 123.0, dtype)
    for _ in range(2):  # a dirty buffer must be fully overwritten, and reusable
        loss, g = sx.softmax_cross_entropy(x, t, weight=w, label_smoothing=0.05, out=out)
        assert g is out
        assert_close(loss, eloss, rtol, atol, "loss")
        assert_close(g, eg, rtol, atol, "dlogits")


@dtypes
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_huge_logits_stay_finite(rng, dtype, rtol, atol, smoothing):
    big = 1e4 if dtype == np.float32 else 1e300
    x = random_array(rng, (5, 2100), dtype, low=-big, high=big)
    x[0, 2000] = big  # maximum in the last block
    x[1, 0] = -big  # the first reference far below the maximum
    t = _labels(rng, 5, 2100)
    t[2] = int(np.argmax(x[2]))
    loss, g = sx.softmax_cross_entropy(x, t, label_smoothing=smoothing, reduction="none")
    assert np.isfinite(loss).all() and np.isfinite(g).all()
    eloss, eg = ref.cross_entropy(x, t, label_smoothing=smoothing, reduction="none")
    assert_close(loss, eloss, rtol, atol, "loss")
    assert_close(g, eg, rtol, atol, "dlogits")


@dtypes
def test_cross_entropy_nan_and_masked_logits(rng, dtype, rtol, atol):
    x = random_array(rng, (4, 1100), dtype)
    t = _labels(rng, 4, 1100)
    x[1, 5] = np.nan
    x[2, ::3] = -np.inf  # masked classes
    t[2] = 1
    loss, g = sx.softmax_cross_entropy(x, t, reduction="none")
    assert np.isnan(loss[1]) and np.isnan(g[1]).all()  # documented: a NaN row is NaN ...
    keep = [0, 2, 3]  # ... and the other rows are unaffected
    eloss, eg = ref.cross_entropy(x[keep], t[keep], reduction="none")
    assert_close(loss[keep], eloss, rtol, atol, "loss")
    assert_close(g[keep], eg, rtol, atol, "dlogits")
    total, g_mean = sx.softmax_cross_entropy(x, t)
    assert np.isnan(total)
    assert_close(g_mean[keep] * 4, eg, rtol, atol, "mean dlogits")


def test_cross_entropy_bad_inputs(rng):
    x = random_array(rng, (4, 5), np.float32)
    t = np.array([0, 1, 4, 2])
    with pytest.raises(ValueError, match=r"target\[2\] = 5 is outside the valid class range \[0, 5\)"):
        sx.softmax_cross_entropy(x, np.array([0, 1, 5, -100]))
    with pytest.raises(ValueError, match=r"target\[1\] = -1 is outside .* and is not ignore_index=-100"):
        sx.softmax_cross_entropy(x, np.array([0, -1, 1, 1]))
    with pytest.raises(ValueError, match="target has length 3, expected 4"):
        sx.softmax_cross_entropy(x, t[:3])
    with pytest.raises(ValueError, match=r"target has shape \(4, 4\); probability targets must have"):
        sx.softmax_cross_entropy(x, np.full((4, 4), 0.25, np.float32))
    with pytest.raises(TypeError, match="target has dtype float64 but logits has dtype float32"):
        sx.softmax_cross_entropy(x, np.full((4, 5), 0.2))
    with pytest.raises(TypeError, match="target has dtype bool"):
        sx.softmax_cross_entropy(x, np.ones(4, bool))
    with pytest.raises(TypeError, match="weight has dtype float64 but logits has dtype float32"):
        sx.softmax_cross_entropy(x, t, weight=np.ones(5))
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(5,\)"):
        sx.softmax_cross_entropy(x, t, weight=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="logits has dtype float16"):
        sx.softmax_cross_entropy(x.astype(np.float16), t)
    with pytest.raises(ValueError, match="logits must be 2-D"):
        sx.softmax_cross_entropy(x[0], t[:1])
    with pytest.raises(ValueError, match="at least one class"):
        sx.softmax_cross_entropy(np.empty((4, 0), np.float32), t)
    with pytest.raises(ValueError, match="reduction = 'avg' is not one of"):
        sx.softmax_cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing = 1.5 is out of range"):
        sx.softmax_cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        sx.softmax_cross_entropy(x, t, label_smoothing="0.1")
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        sx.softmax_cross_entropy(x, t, ignore_index=-100.0)
    with pytest.raises(TypeError, match="target must be a numpy.ndarray or a CUDA device array .CuPy., got list"):
        sx.softmax_cross_entropy(x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"out has shape \(5, 4\), expected \(4, 5\)"):
        sx.softmax_cross_entropy(x, t, out=np.empty((5, 4), np.float32))
    assert_rejects_bad_out(lambda out: sx.softmax_cross_entropy(x, t, out=out), x.shape, np.float32, x)
    p = np.full((4, 5), 0.2, np.float32)  # probability targets: an out aliasing them is rejected too
    for aliased in (x, p):
        assert_rejects_bad_out(lambda out: sx.softmax_cross_entropy(x, p, out=out), x.shape, np.float32, aliased)


# --------------------------------------------------------------------------------------------------
# nll_loss


@dtypes
@shapes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_nll_loss_matches_oracle(rng, shape, dtype, rtol, atol, reduction, weighted):
    n, c = shape
    logp = ref.log_softmax(random_array(rng, shape, dtype, scale=2.0)).astype(dtype)
    t = _labels(rng, n, c, ignore_some=True)
    w = random_array(rng, (c,), dtype, low=0.5, high=2.0) if weighted else None
    out = np.full(shape, 7.0, dtype)
    loss, g = sx.nll_loss(logp, t, weight=w, reduction=reduction, out=out)
    eloss, eg = ref.nll_loss(logp, t, weight=w, reduction=reduction)
    assert g is out and g.shape == shape and g.dtype == dtype
    _check_loss(loss, eloss, reduction, dtype, rtol, atol)
    assert_close(g, eg, rtol, atol, "dlogp")


def test_nll_loss_all_ignored_and_bad_inputs(rng):
    logp = random_array(rng, (3, 4), np.float64, low=-3.0, high=-0.1)
    loss, g = sx.nll_loss(logp, np.full(3, 1), ignore_index=1)
    assert loss == 0 and not g.any()
    with pytest.raises(TypeError, match="nll_loss takes integer class indices"):
        sx.nll_loss(logp, np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"target\[0\] = 4 is outside the valid class range \[0, 4\)"):
        sx.nll_loss(logp, np.array([4, 0, 0]))
    with pytest.raises(TypeError, match="weight has dtype float32 but logp has dtype float64"):
        sx.nll_loss(logp, np.array([0, 0, 0]), weight=np.ones(4, np.float32))


# --------------------------------------------------------------------------------------------------
# properties


_rows = st.integers(1, 6)
_cols = st.integers(1, 40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=_rows, c=_cols, shift=st.floats(-50.0, 50.0), seed=st.integers(0, 2**32 - 1))
def test_properties_shift_invariance_and_sums(n, c, shift, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)) * 4.0
    t = rng.integers(0, c, size=n)
    y = sx.softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(sx.softmax(x + shift), y, rtol=1e-9, atol=1e-15)
    loss, g = sx.softmax_cross_entropy(x, t, reduction="sum")
    loss2, g2 = sx.softmax_cross_entropy(x + shift, t, reduction="sum")
    np.testing.assert_allclose(loss2, loss, rtol=1e-9, atol=1e-9 * n * (1 + abs(shift)))
    np.testing.assert_allclose(g2, g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)
    # the same holds in float32 within float32 rounding
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(sx.softmax(x32).sum(axis=1), 1.0, rtol=1e-5)
    _, g32 = sx.softmax_cross_entropy(x32, t, reduction="none")
    np.testing.assert_allclose(g32.sum(axis=1), 0.0, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# determinism across thread counts


@needs_two_threads
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_one_vs_two_threads_bitwise(rng, dtype):
    n, c = 200, 1500
    assert n * c >= PARALLEL_MIN_ELEMENTS
    x = random_array(rng, (n, c), dtype, scale=3.0)
    t = _labels(rng, n, c, ignore_some=True)
    p = _probs(rng, (n, c), dtype)
    w = random_array(rng, (c,), dtype, low=0.5, high=2.0)
    dy = random_array(rng, (n, c), dtype)

    def run_all():
        return [
            sx.softmax(x), sx.log_softmax(x), sx.softmax_backward(dy, x), sx.log_softmax_backward(dy, -x * x),
            *sx.softmax_cross_entropy(x, t, weight=w, label_smoothing=0.1),
            *sx.softmax_cross_entropy(x, p, weight=w),
            *sx.nll_loss(x, t, weight=w),
        ]

    assert_same_bits_at_one_and_two_threads(run_all)


# --------------------------------------------------------------------------------------------------
# parity with PyTorch


# Against torch: float32 deliberately tighter than TOLS[float32] (rtol 1e-5, atol 1e-6); float64 as TOLS.
TORCH_TOLS = [(np.float32, 1e-5, 1e-6), (np.float64, *TOLS[np.float64])]


@pytest.mark.parametrize("dtype,rtol,atol", TORCH_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("opts", [
    dict(),
    dict(weight=True, reduction="sum"),
    dict(label_smoothing=0.2, reduction="none"),
    dict(weight=True, label_smoothing=0.1, ignore=True),
    dict(soft=True, weight=True, label_smoothing=0.3),
], ids=["plain", "weighted-sum", "smooth-none", "weighted-smooth-ignore", "soft"])
def test_parity_with_torch(rng, dtype, rtol, atol, opts):
    torch = pytest.importorskip("torch")
    n, c = 37, 53
    x = random_array(rng, (n, c), dtype, scale=3.0)
    w = random_array(rng, (c,), dtype, low=0.5, high=2.0) if opts.get("weight") else None
    t = _probs(rng, (n, c), dtype) if opts.get("soft") else _labels(rng, n, c, ignore_some=opts.get("ignore", False))
    reduction = opts.get("reduction", "mean")
    eps = opts.get("label_smoothing", 0.0)
    loss, g = sx.softmax_cross_entropy(x, t, weight=w, label_smoothing=eps, reduction=reduction)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    tl = torch.from_numpy(t)
    tloss = torch.nn.functional.cross_entropy(
        xt, tl, weight=None if w is None else torch.from_numpy(w), label_smoothing=eps, reduction=reduction)
    # "none": row i of dlogits is d loss[i] / d logits[i], i.e. the gradient of the sum
    tloss.sum().backward()
    assert_close(loss, tloss.detach().numpy().astype(np.float64), rtol, atol, "loss vs torch")
    assert_close(g, xt.grad.numpy().astype(np.float64), rtol, atol, "dlogits vs torch")


# --------------------------------------------------------------------------------------------------
# the course's worked examples (DESIGN.md section 5): the slides truncate to the digits they show


def _truncates_to(value, shown, digits):
    step = 10.0**-digits
    return shown - 1e-12 <= value < shown + step


def test_course_softmax_example():
    p = sx.softmax(np.array([1.0, 2.0, 5.0, 6.0]))
    for v, shown in zip(p, [0.004, 0.013, 0.264, 0.717]):
        assert _truncates_to(v, shown, 3), (v, shown)


def test_course_nll_examples():
    x = np.array([[1.0, 2.0, 0.5, 6.0]] * 3 + [[1.0, 2.0, 5.0, 6.0]] * 3)
    t = np.array([0, 2, 3] * 2)  # classes 1, 3, 4 (1-based)
    loss, _ = sx.softmax_cross_entropy(x, t, reduction="none")
    for v, shown in zip(loss, [5.02, 5.52, 0.02, 5.33, 1.33, 0.33]):
        assert _truncates_to(v, shown, 2), (v, shown)


def test_course_cross_entropy_base10_examples():
    x = np.array([[1.0, 2.0, 5.0, 6.0]])
    loss, _ = sx.softmax_cross_entropy(x, np.array([[0.0, 0.25, 0.0, 0.75]]))
    # the slide evaluates the logs at the 3-digit probabilities (0.013, 0.717), which gives 0.579; the
    # exact value is 0.5782
    assert abs(loss / math.log(10) - 0.579) < 1.5e-3
    loss, _ = sx.softmax_cross_entropy(x, np.array([3]))
    assert abs(loss / math.log(10) - 0.144) < 5e-4


def test_course_log2_examples():
    logp = np.log(np.array([[0.775, 0.225], [0.064, 0.936]]))
    loss, _ = sx.nll_loss(logp, np.array([0, 1]), reduction="none")
    bits = loss / math.log(2)
    assert _truncates_to(bits[0], 0.3677, 4), bits
    assert _truncates_to(bits[1], 0.095, 3), bits
