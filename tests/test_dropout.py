"""Philox4x32-10 and inverted dropout against the oracle (kernels.reference) and the published vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from kernels import dropout as D
from kernels import reference as ref
from kernels.philox import philox4x32_10
from tests.helpers import (
    AWKWARD_SHAPES,
    DTYPE_IDS,
    DTYPE_TOLS,
    DTYPES,
    SHAPE_IDS,
    assert_close,
    assert_rejects_bad_out,
    assert_same_bits_at_one_and_two_threads,
    needs_two_threads,
    random_array,
)

# DESIGN.md section 3: (counter words, key words) -> output words
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@njit
def _philox(c0, c1, c2, c3, k0, k1):
    return philox4x32_10(c0, c1, c2, c3, k0, k1)


def _philox_py(ctr, key):
    return tuple(int(v) for v in _philox(*(np.uint64(v) for v in (*ctr, *key))))


@pytest.mark.parametrize("ctr, key, expected", KNOWN_ANSWERS, ids=["zeros", "ones", "pi"])
def test_philox_known_answers(ctr, key, expected):
    assert _philox_py(ctr, key) == expected
    assert ref.philox4x32_10(ctr, key) == expected


def test_philox_matches_oracle_on_random_inputs(rng):
    for _ in range(50):
        words = [int(v) for v in rng.integers(0, 2**32, size=6, dtype=np.uint64)]
        assert _philox_py(words[:4], words[4:]) == ref.philox4x32_10(words[:4], words[4:])


# --------------------------------------------------------------------------------------------------
# mask


MASK_SHAPES = [(1,), (3,), (5,), (1, 1), (7, 13), (4096,), (4097,), (3, 5, 7), (19999,)]


@pytest.mark.parametrize("shape", MASK_SHAPES, ids=[str(s) for s in MASK_SHAPES])
def test_mask_equals_oracle(shape, rng):
    p = float(rng.uniform(0.05, 0.95))
    seed = int(rng.integers(0, 2**63)) * 2 + 1  # exercises the high key word
    counter = int(rng.integers(0, 2**40))
    m = D.dropout_mask(shape, p, seed, counter)
    assert m.shape == shape
    assert m.dtype == np.bool_
    np.testing.assert_array_equal(m, ref.dropout_mask(shape, p, seed, counter))


def test_mask_parallel_path_prefix_equals_oracle(rng):
    # The mask of element i does not depend on n, so the oracle's 20000-element stream must be the
    # prefix of a mask long enough to take the parallel path.
    seed, counter, p = int(rng.integers(0, 2**64, dtype=np.uint64)), 2**32 + 3, 0.3
    m = D.dropout_mask((5 * D.PARALLEL_MIN_ELEMENTS + 3,), p, seed, counter)
    np.testing.assert_array_equal(m[:20000], ref.dropout_mask((20000,), p, seed, counter))


def test_group_keep_high_block_index_uses_hi_word(rng):
    # Blocks at and above 2^32 (n > 2^34 elements, too big to allocate) carry hi32(i // 4) in word 1.
    # The groups on either side of 2^32 are checked against the oracle's words, at thresholds that
    # between them see every bit of each word's top byte.
    key = [int(v) for v in rng.integers(0, 2**32, size=2, dtype=np.uint64)]
    ctr = [int(v) for v in rng.integers(0, 2**32, size=2, dtype=np.uint64)]
    keep4 = np.empty(D.GROUP_BLOCKS, dtype=np.uint32)
    u = np.uint64
    for block0, js in ((2**32 - D.GROUP_BLOCKS, range(D.GROUP_BLOCKS - 3, D.GROUP_BLOCKS)), (2**32, range(3))):
        expected = [ref.philox4x32_10(((block0 + j) & 0xFFFFFFFF, (block0 + j) >> 32, ctr[0], ctr[1]), key)
                    for j in js]
        for threshold in range(0, 2**32, 2**24):
            D._group_keep(keep4, block0, D.GROUP_BLOCKS, u(threshold), u(ctr[0]), u(ctr[1]), u(key[0]), u(key[1]))
            keep = keep4.view(np.uint8)
            for j, words in zip(js, expected):
                assert tuple(keep[4 * j : 4 * j + 4]) == tuple(int(w >= threshold) for w in words), (block0, j)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1e-3])
def test_keep_rate_within_four_sigma(p):
    n = 10**6
    kept = int(D.dropout_mask((n,), p, seed=12345, counter=678).sum())
    mean, sd = n * (1 - p), math.sqrt(n * p * (1 - p))
    assert abs(kept - mean) <= 4 * sd, (kept, mean, sd)


def test_different_counters_and_seeds_give_different_masks():
    base = D.dropout_mask((4096,), 0.5, 1, 1)
    for other in (D.dropout_mask((4096,), 0.5, 1, 2), D.dropout_mask((4096,), 0.5, 2, 1),
                  D.dropout_mask((4096,), 0.5, 1 + 2**32, 1), D.dropout_mask((4096,), 0.5, 1, 1 + 2**32)):
        # independent masks agree on about half the elements; identical or complementary ones would not
        agree = float((base == other).mean())
        assert 0.4 < agree < 0.6, agree


def test_mask_accepts_int_shape_and_empty():
    np.testing.assert_array_equal(D.dropout_mask(5, 0.5, 1, 2), ref.dropout_mask((5,), 0.5, 1, 2))
    assert D.dropout_mask((0, 3), 0.5, 1, 2).shape == (0, 3)


# --------------------------------------------------------------------------------------------------
# forward / backward


@pytest.mark.parametrize("dtype, rtol, atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", AWKWARD_SHAPES + [(3, 2, 5), (2, 40000)], ids=SHAPE_IDS + ["3x2x5", "2x40000"])
def test_forward_backward_match_oracle(shape, dtype, rtol, atol, rng):
    x = random_array(rng, shape, dtype)
    dy = random_array(rng, shape, dtype)
    p = float(rng.uniform(0.1, 0.9))
    seed, counter = int(rng.integers(0, 2**63)), int(rng.integers(0, 2**63))
    y = D.dropout_forward(x, p, seed, counter)
    assert y.shape == x.shape
    assert y.dtype == dtype
    assert_close(y, ref.dropout_forward(x, p, seed, counter), rtol, atol, "y")
    dx = D.dropout_backward(dy, p, seed, counter)
    assert dx.shape == x.shape
    assert dx.dtype == dtype
    assert_close(dx, ref.dropout_backward(dy, p, seed, counter), rtol, atol, "dx")
    # the same mask in both passes, and the scale rounded once to the dtype
    keep = ref.dropout_mask(shape, p, seed, counter)
    np.testing.assert_array_equal(y != 0, keep)
    scale = dtype(1.0 / (1.0 - p))
    np.testing.assert_array_equal(y[keep], x[keep] * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_p_zero_returns_copy(dtype, rng):
    x = random_array(rng, (7, 9), dtype)
    y = D.dropout_forward(x, 0.0, 1, 2)
    assert y is not x and not np.shares_memory(x, y)
    np.testing.assert_array_equal(y, x)
    out = np.empty_like(x)
    assert D.dropout_backward(x, 0, 1, 2, out=out) is out
    np.testing.assert_array_equal(out, x)


def test_out_is_written_and_returned(rng):
    x = random_array(rng, (33, 1025), np.float32)
    out = np.full_like(x, 7.0)
    y = D.dropout_forward(x, 0.25, 9, 10, out=out)
    assert y is out
    np.testing.assert_array_equal(out, D.dropout_forward(x, 0.25, 9, 10))


def test_non_contiguous_input_is_copied(rng):
    x = random_array(rng, (64, 50), np.float64)
    xt = x.T
    assert_close(D.dropout_forward(xt, 0.5, 3, 4), ref.dropout_forward(xt, 0.5, 3, 4), 1e-12, 0)


@needs_two_threads
def test_one_vs_two_threads_bitwise(rng):
    x = random_array(rng, (300, 1001), np.float32)
    assert_same_bits_at_one_and_two_threads(
        lambda: (D.dropout_forward(x, 0.4, 77, 88), D.dropout_backward(x, 0.4, 77, 88),
                 D.dropout_mask(x.shape, 0.4, 77, 88)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_non_finite_kept_propagates_dropped_is_zero(dtype):
    # Documented choice (module docstring): a select, as the oracle; torch multiplies and gives NaN.
    n = 4000
    keep = ref.dropout_mask((n,), 0.5, 5, 6)
    x = np.full(n, np.nan, dtype=dtype)
    x[1::2] = np.inf
    y = D.dropout_forward(x, 0.5, 5, 6)
    assert np.isnan(y[keep & np.isnan(x)]).all()
    assert np.isposinf(y[keep & np.isinf(x)]).all()
    assert (y[~keep] == 0).all()


def test_extreme_p_values():
    x = np.ones(10000, dtype=np.float32)
    y = D.dropout_forward(x, 1 - 2**-20, 1, 1)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y != 0, ref.dropout_mask(x.shape, 1 - 2**-20, 1, 1))


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("p, err", [(1, ValueError), (1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                                    (2.5, ValueError), ("0.5", TypeError), (None, TypeError), (True, TypeError)])
def test_bad_p(p, err):
    x = np.ones(4, dtype=np.float32)
    match = r"^p( =| must)"
    with pytest.raises(err, match=match):
        D.dropout_forward(x, p, 1, 2)
    with pytest.raises(err, match=match):
        D.dropout_backward(x, p, 1, 2)
    with pytest.raises(err, match=match):
        D.dropout_mask((4,), p, 1, 2)


@pytest.mark.parametrize("value, err", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("3", TypeError),
                                        (np.float64(2.0), TypeError)])
@pytest.mark.parametrize("name", ["seed", "counter"])
def test_bad_seed_counter(name, value, err):
    x = np.ones(4, dtype=np.float32)
    kw = {"seed": 1, "counter": 2, name: value}
    match = rf"^{name}( =| must)"
    with pytest.raises(err, match=match):
        D.dropout_forward(x, 0.5, **kw)
    with pytest.raises(err, match=match):
        D.dropout_mask((4,), 0.5, **kw)


def test_seed_counter_extremes_accepted():
    x = np.ones(8, dtype=np.float64)
    top = 2**64 - 1
    assert_close(D.dropout_forward(x, 0.5, top, np.uint64(top)), ref.dropout_forward(x, 0.5, top, top), 1e-12, 0)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64])
def test_bad_dtype(dtype):
    name = np.dtype(dtype).name
    with pytest.raises(TypeError, match=f"^x has dtype {name}; allowed dtypes: float32, float64"):
        D.dropout_forward(np.ones(4, dtype=dtype), 0.5, 1, 2)
    with pytest.raises(TypeError, match=f"^dy has dtype {name}; allowed dtypes: float32, float64"):
        D.dropout_backward(np.ones(4, dtype=dtype), 0.5, 1, 2)


def test_bad_x_type():
    with pytest.raises(TypeError, match="^x must be a numpy.ndarray or a CUDA device array .CuPy., got list"):
        D.dropout_forward([1.0, 2.0], 0.5, 1, 2)


@pytest.mark.parametrize("p", [0.5, 0.0], ids=["p0.5", "p0"])
def test_bad_out(p):
    x = np.ones((4, 5), dtype=np.float32)
    assert_rejects_bad_out(lambda out: D.dropout_forward(x, p, 1, 2, out=out), x.shape, np.float32, x)
    assert_rejects_bad_out(lambda out: D.dropout_backward(x, p, 1, 2, out=out), x.shape, np.float32, x)


def test_bad_mask_shape():
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        D.dropout_mask((3, -1), 0.5, 1, 2)
    with pytest.raises(TypeError, match="shape"):
        D.dropout_mask([3, 4], 0.5, 1, 2)
    with pytest.raises(TypeError, match=r"shape\[0\]"):
        D.dropout_mask((2.0,), 0.5, 1, 2)
