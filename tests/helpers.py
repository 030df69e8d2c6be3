"""Shared test helpers: one assert_close that reports the worst element, tolerances per dtype, shapes,
an ulp check, the out= rejection checks and the thread-count determinism check."""

from __future__ import annotations

import re
from contextlib import contextmanager

import numba
import numpy as np
import pytest

# (dtype, rtol, atol) pairs every kernel test runs over. float32 kernels may use a polynomial exp, good to
# a few ulp; float64 kernels compute in full precision and must stay within 1e-10 relative of the oracle.
DTYPE_TOLS = [
    (np.float32, 2e-5, 2e-6),
    (np.float64, 1e-10, 1e-12),
]
DTYPE_IDS = ["float32", "float64"]
DTYPES = [d for d, _, _ in DTYPE_TOLS]
# {dtype: (rtol, atol)}: e.g. assert_close(a, b, *TOLS[np.float32])
TOLS = {d: (rtol, atol) for d, rtol, atol in DTYPE_TOLS}

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


def assert_within_ulp(actual, exact, max_ulp, x=None, name="value"):
    """Assert |actual - exact| <= max_ulp float32 ulps of exact, elementwise (exact given in float64).

    The ulp is np.spacing of |exact| rounded to float32 (np.spacing of a negative number is negative, which
    would make every error on negative values pass). On failure, report the worst element, and its input
    x[i] when x is given. A NaN error (NaN result where exact is finite, or the reverse) counts as a failure.
    """
    actual = np.asarray(actual)
    exact = np.asarray(exact, dtype=np.float64)
    assert actual.shape == exact.shape, f"{name}: shape {actual.shape} != exact {exact.shape}"
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (ulp > 0).all(), f"{name}: exact values outside the float32 range have no float32 ulp"
    with np.errstate(invalid="ignore"):
        err = np.nan_to_num(np.abs(actual.astype(np.float64) - exact) / ulp, nan=np.inf)
    if err.size == 0:
        return
    worst = int(np.argmax(err))
    at = "" if x is None else f" at x = {np.asarray(x).reshape(-1)[worst]!r}"
    assert err.flat[worst] <= max_ulp, (
        f"{name}: {int((err > max_ulp).sum())} of {err.size} elements beyond {max_ulp} ulp; worst "
        f"{err.flat[worst]:.2f} ulp{at}: actual {actual.flat[worst]!r}, exact {exact.flat[worst]!r}")


# ------------------------------------------------------------------------------------------------------
# out= buffers


def assert_rejects_bad_out(call, shape, dtype, aliased, name="out"):
    """Check that call(buffer) rejects every bad output buffer with kernels._util's exact message.

    call: runs the kernel with the given array as its output argument `name`.
    shape, dtype: what that output must be.
    aliased: an array of that shape and dtype that overlaps one of the arrays call reads.
    Checked: wrong shape, wrong dtype, not C-contiguous, read-only, and overlapping an input.
    """
    shape, dtype = tuple(shape), np.dtype(dtype)
    other = np.dtype(np.float64 if dtype == np.float32 else np.float32)
    wrong = shape[:-1] + (shape[-1] + 1,) if shape else (1,)
    with pytest.raises(ValueError, match="^" + re.escape(f"{name} has shape {wrong}, expected {shape}")):
        call(np.empty(wrong, dtype))
    with pytest.raises(TypeError, match="^" + re.escape(f"{name} has dtype {other}, expected {dtype}")):
        call(np.empty(shape, other))
    # every other element along the last axis longer than 1: a strided view NumPy cannot call contiguous
    axis = max(i for i, n in enumerate(shape) if n > 1)
    base = np.empty(shape[:axis] + (2 * shape[axis],) + shape[axis + 1:], dtype)
    strided = base[(slice(None),) * axis + (slice(None, None, 2),)]
    assert strided.shape == shape and not strided.flags.c_contiguous
    with pytest.raises(ValueError, match="^" + re.escape(f"{name} must be C-contiguous")):
        call(strided)
    read_only = np.empty(shape, dtype)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="^" + re.escape(f"{name} is read-only")):
        call(read_only)
    assert aliased.shape == shape and aliased.dtype == dtype and aliased.flags.c_contiguous
    with pytest.raises(ValueError, match="^" + re.escape(f"{name} overlaps an input array")):
        call(aliased)


# ------------------------------------------------------------------------------------------------------
# thread counts


needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                       reason="needs 2 Numba threads (NUMBA_NUM_THREADS >= 2)")


@contextmanager
def numba_threads(n):
    """Run the body with n Numba threads, then restore the previous count."""
    saved = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(saved)


def assert_same_bits_at_one_and_two_threads(fn):
    """fn() returns an iterable of arrays (or NumPy scalars); each must have the same dtype, shape and bytes
    when fn runs on 1 and on 2 Numba threads. Results are copied as they come (fn may reuse buffers)."""
    runs = []
    for threads in (1, 2):
        with numba_threads(threads):
            assert numba.get_num_threads() == threads
            runs.append([np.array(a, copy=True) for a in fn()])
    one, two = runs
    assert len(one) == len(two) > 0, (len(one), len(two))
    for i, (a, b) in enumerate(zip(one, two)):
        assert a.dtype == b.dtype, f"result {i}: dtype {a.dtype} at 1 thread, {b.dtype} at 2"
        assert a.shape == b.shape, f"result {i}: shape {a.shape} at 1 thread, {b.shape} at 2"
        if a.tobytes() != b.tobytes():
            a_bytes = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(a.size, -1)
            b_bytes = np.ascontiguousarray(b).reshape(-1).view(np.uint8).reshape(b.size, -1)
            diff = np.flatnonzero((a_bytes != b_bytes).any(axis=1))
            j = _index(diff[0], a.shape)
            raise AssertionError(f"result {i}: {diff.size} of {a.size} elements differ between 1 and 2 threads; "
                                 f"first at {j}: {a[j]!r} vs {b[j]!r}")


def numeric_grad(f, x, h=1e-6):
    """Central finite differences of the scalar function ``f()`` with respect to the float64 array ``x``,
    perturbing ``x`` in place entry by entry (and restoring it). Truncation error ~h^2, rounding ~1e-16/h."""
    assert x.dtype == np.float64 and np.shares_memory(x.reshape(-1), x)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def non_finite_loss_inputs(rng, dtype):
    """(x, t) of shape (4, 6) for the elementwise losses, with a NaN in x and one in t, x = +inf against
    t = 0.5 and x = -inf against t = 0; every other entry random (t in [0, 1])."""
    x = random_array(rng, (4, 6), dtype)
    t = random_array(rng, (4, 6), dtype, low=0.0, high=1.0)
    x[1, 2] = np.nan
    t[3, 0] = np.nan
    x[0, 0], t[0, 0] = np.inf, 0.5
    x[2, 5], t[2, 5] = -np.inf, 0.0
    return x, t


def assert_same_error(cpu_call, dev_call):
    """The device call raises what the CPU call raises: the same exception type and the same message (the
    public kernels validate both kinds of array with one set of checks)."""
    with pytest.raises((TypeError, ValueError)) as cpu:
        cpu_call()
    with pytest.raises((TypeError, ValueError)) as dev:
        dev_call()
    assert type(dev.value) is type(cpu.value) and str(dev.value) == str(cpu.value), (dev.value, cpu.value)
