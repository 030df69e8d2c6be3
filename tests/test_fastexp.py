"""The float32 polynomial exp against the correctly rounded exp, over its whole range and at its edges."""

import math
import re

import numpy as np
from numba import njit

from kernels._fastexp import exp_f32, fast_exp
from kernels._util import FASTMATH
from tests.helpers import assert_within_ulp


@njit(fastmath=FASTMATH)
def _map_fast_exp(x, out):
    for i in range(x.size):
        out[i] = fast_exp(x[i])


def _apply(x):
    out = np.empty_like(x)
    _map_fast_exp(x, out)
    return out


def test_exp_f32_within_two_ulp_over_its_range(rng):
    # a dense sweep plus fresh random points, all inside [ln FLT_MIN, 127.5 ln 2]
    x = np.concatenate([np.linspace(-87.33, 88.37, 2_000_001), rng.uniform(-87.33, 88.37, 200_000)])
    x = x.astype(np.float32)
    y = _apply(x)
    assert y.dtype == np.float32
    assert_within_ulp(y, np.exp(x.astype(np.float64)), 2.0, x, "exp_f32")


def test_exp_f32_edges():
    x = np.array([-np.inf, -1e30, -1e4, -88.0, -87.34, 0.0, -0.0, 88.38, 88.8, 1e4, np.inf, np.nan],
                 dtype=np.float32)
    y = _apply(x)
    assert y[:5].tolist() == [0.0] * 5  # flushed to zero below FLT_MIN, no NaN from -inf
    assert y[5] == 1.0 and y[6] == 1.0
    assert np.isposinf(y[7:11]).all()
    assert np.isnan(y[11])


def test_float64_uses_full_precision_exp(rng):
    # float64 goes through libm's exp: bitwise what Python's math.exp (the same libm) returns
    x = rng.uniform(-700, 700, 10_000)
    np.testing.assert_array_equal(_apply(x), np.array([math.exp(v) for v in x]))


def test_exp_f32_loop_vectorises():
    # The point of the polynomial: a loop over it must compile to SIMD lanes of floats (8 with AVX2, 16 with
    # AVX-512), not to one scalar call per element.
    _apply(np.ones(16, np.float32))
    sig = [s for s in _map_fast_exp.signatures if s[0].dtype.name == "float32"][0]
    llvm = _map_fast_exp.inspect_llvm(sig)
    assert re.search(r"<(8|16) x float>", llvm), "the float32 exp loop did not vectorise"


def test_exp_f32_stays_in_float32():
    # a float64 intermediate would halve the vector width and hide behind an output array's dtype
    assert abs(exp_f32(np.float32(1.0)) - np.e) < 3e-7
    assert all(sig.return_type.name == "float32" for sig in exp_f32.nopython_signatures)
