"""A vectorisable exp for float32 kernels, and ``fast_exp`` choosing it by dtype.

``np.exp`` / ``math.exp`` inside an @njit loop compile to a scalar libm call (the llvmlite wheels ship no
SVML), which keeps the loop from vectorising and caps a softmax at a few GB/s. ``exp_f32`` is branch-free
straight-line code that LLVM turns into AVX2 lanes:

    exp(x) = 2^k * exp(r),   k = round(x / ln 2),   r = x - k ln 2  in [-ln2/2, ln2/2]

with ln 2 split in two (Cody-Waite: C1 exact in few bits, C2 the remainder) so ``r`` is exact, exp(r)
from the degree-7 minimax polynomial of Cephes' ``expf`` (1 + r + r^2 (c0 + c1 r + ... + c5 r^5)), and
2^k built directly in the exponent bits. Accuracy: within 2 ulp (1.003 ulp worst seen) of the correctly rounded result on
[-87.33, 88.37] (tests/test_fastexp.py sweeps it). Outside: below -87.33654 (where exp(x) < FLT_MIN) the
result is flushed to 0; above 88.376 (= 127.5 ln 2) it is +inf, a little earlier than float32's true
overflow at 88.72; NaN propagates. Softmax, sigmoid and tanh only ever call it with x <= 0.

float64 kernels keep ``math.exp`` (correctly rounded to within an ulp): the 1e-10 relative accuracy we
promise for float64 is not worth trading.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ._util import FASTMATH


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the 32 bits of an int32 as a float32 (no conversion)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _floor_f32(typingctx, x):
    """floor of a float32, as a float32: LLVM's llvm.floor.f32, which vectorises on the CPU (vrndscaleps)
    and compiles on the GPU (cvt.rmi), unlike np.floor (no device lowering in numba-cuda) or math.floor
    (returns int64, and the round trip through int64 does not vectorise)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.floor", [ir.FloatType()])
        return builder.call(fn, args)

    return types.float32(types.float32), codegen


_LOG2E = np.float32(1.44269504088896341)
_C1 = np.float32(0.693359375)  # ln 2 rounded to 12 bits: k * C1 is exact for |k| < 2^12
_C2 = np.float32(-2.12194440e-4)  # ln 2 - C1
_P0 = np.float32(1.9875691500e-4)
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)
_LO = np.float32(-87.33654)  # ln(FLT_MIN): below this 2^k would need a subnormal exponent
_HI = np.float32(88.37626)  # 127.5 ln 2: keeps k <= 127
_INF = np.float32(np.inf)


# Only 'contract' (FMA) here, no 'reassoc': reassociation would fold k*C1 + k*C2 back into k*ln2 and lose
# the Cody-Waite split (4.5 ulp near x = 88 instead of 0.5). No Numba-level inlining either, which would
# compile this body under the caller's flags; LLVM still inlines it and keeps these per-instruction flags.
@njit(cache=True, fastmath={"contract"})
def exp_f32(x):
    """exp(x) for a float32 scalar, written without branches so loops calling it vectorise."""
    xc = min(max(x, _LO), _HI)
    k = _floor_f32(xc * _LOG2E + _HALF)
    r = xc - k * _C1 - k * _C2
    z = r * r
    p = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * z + r + _ONE
    e = _float32_from_bits(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))
    y = p * e
    # Selects, not branches: flush below FLT_MIN, overflow to inf, and let NaN through (the clamps above
    # would otherwise turn a NaN into a finite number).
    y = _ZERO if x < _LO else y
    y = _INF if x > _HI else y
    return x if x != x else y


def float32_or_libm(f32_impl, libm_func, doc):
    """A scalar function for @njit code: ``f32_impl`` on float32 arguments, ``libm_func`` on float64.

    float32 kernels get a vectorisable polynomial; float64 keeps libm's full precision. Chosen at compile
    time from the argument's type, so the loops carry no branch.
    """

    def func(x):
        return libm_func(x)

    func.__doc__ = doc

    @overload(func, jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
    def _choose(x):
        if x == types.float32:
            return lambda x: f32_impl(x)
        if isinstance(x, types.Float):
            return lambda x: libm_func(x)
        return None

    return func


fast_exp = float32_or_libm(exp_f32, math.exp, "exp(x): ``exp_f32`` for float32, ``math.exp`` for float64 (njit only).")
