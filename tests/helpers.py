"""Shared test helpers: one assert_close that reports the worst element, tolerances per dtype, shapes."""

from __future__ import annotations

import numpy as np

# (dtype, rtol, atol) pairs every kernel test runs over. float32 kernels may use a polynomial exp, good to
# a few ulp; float64 kernels compute in full precision and must stay within 1e-10 relative of the oracle.
DTYPE_TOLS = [
    (np.float32, 2e-5, 2e-6),
    (np.float64, 1e-10, 1e-12),
]
DTYPE_IDS = ["float32", "float64"]

# Awkward shapes that hit every code path: single element, single row, single column, odd sizes just
# below and above powers of two (vector tails, block remainders).
AWKWARD_SHAPES = [(1, 1), (1, 37), (64, 1), (7, 1023), (33, 1025)]
SHAPE_IDS = ["1x1", "1xC", "Nx1", "7x1023", "33x1025"]


def _index(flat, shape):
    return tuple(int(v) for v in np.unravel_index(flat, shape)) if shape else ()


def assert_close(actual, expected, rtol, atol, name="value"):
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaNs must match NaNs).

    On failure, report the worst element's index, both values and the error, plus any NaN/Inf counts, so a
    failing kernel test says *where* it failed, not just that it did.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    a = actual.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(expected)
    inf_a = np.isinf(a)
    msgs = []
    if (nan_a != nan_e).any():
        i = _index(np.argmax(nan_a != nan_e), a.shape)
        msgs.append(f"NaN mismatch: actual has {int(nan_a.sum())} NaN, expected {int(nan_e.sum())}; first at "
                    f"{i}: actual {a[i]!r}, expected {expected[i]!r}")
    both = ~(nan_a | nan_e)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(both, np.abs(a - expected), 0.0)
        tol = atol + rtol * np.abs(expected)
        excess = np.where(both, err - tol, -np.inf)
    # equal infinities give inf - inf = NaN in err: treat as exact
    same_inf = both & inf_a & (a == expected)
    excess = np.where(same_inf, -np.inf, excess)
    if (np.nan_to_num(excess, nan=np.inf) > 0).any():
        i = _index(np.argmax(np.nan_to_num(excess, nan=np.inf)), a.shape)
        bad = int((np.nan_to_num(excess, nan=np.inf) > 0).sum())
        msgs.append(f"{bad} of {a.size} elements out of tolerance (rtol={rtol}, atol={atol}); worst at {i}: "
                    f"actual {a[i]!r}, expected {expected[i]!r}, |err| {err[i]:.3e} > tol {tol[i]:.3e}")
    if inf_a.any() and not np.isinf(expected).any():
        msgs.append(f"actual has {int(inf_a.sum())} Inf values, expected none")
    assert not msgs, f"{name}: " + "; ".join(msgs)


def random_array(rng, shape, dtype, scale=1.0, low=None, high=None):
    """Fresh random values (never zeros): normal(0, scale), or uniform in [low, high)."""
    if low is not None:
        return rng.uniform(low, high, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * scale).astype(dtype)
