"""Elementwise activations and their gradients, taken from the saved output y (as the fused linear layer
saves y = act(z), not z).

    identity     y = x                                 dx = dy
    relu         y = max(x, 0)                         dx = dy  if y > 0 else 0     (relu'(0) = 0, as torch)
    leaky_relu   y = x if x > 0 else a x               dx = dy  if y > 0 else a dy  (a = negative_slope >= 0)
    sigmoid      y = 1 / (1 + exp(-x))                 dx = dy y (1 - y)
    tanh         y = tanh(x)                           dx = dy (1 - y^2)

Any shape; y, dy, dx have the shape of x. Semantics follow torch.nn.functional (relu, leaky_relu, sigmoid,
tanh) and the aten backward ops that take the result (threshold_backward, leaky_relu_backward with
self_is_result, sigmoid_backward, tanh_backward).

Why negative_slope >= 0: the gradient is computed from y alone, and x > 0 must be read off as y > 0. With
a < 0, a negative x gives y = a x > 0 and would get the wrong slope, so a negative slope is rejected with
a ValueError (in the forward too, so a forward always has a matching backward).

Numerics:
* sigmoid is evaluated without overflow for any x: with e = exp(-|x|) in (0, 1],
  sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 (one division, its numerator chosen by a
  select), so exp is only ever taken of a non-positive number. Below x = -87.3 float32 flushes e, hence
  y, to 0 (the exact value is below FLT_MIN anyway).
* tanh in float32: tanh(|x|) = (1 - e) / (1 + e) with e = exp(-2|x|), sign restored by a select. Near 0,
  1 - e cancels, so for |x| < 0.625 an odd minimax polynomial is used instead
  (x + x^3 P(x^2), Cephes tanhf). Measured float32 error over [-20, 20]: sigmoid <= 2.3 ulp, tanh
  <= 1.5 ulp (tests allow 4). float64 uses math.tanh and math.exp.
* float32 exp is the branch-free polynomial of kernels._fastexp so loops vectorise; float64 uses math.exp.
* NaN propagates (NaN in, NaN out); +-inf give the limits (relu(inf) = inf, sigmoid(-inf) = 0,
  tanh(+-inf) = +-1); a finite input never produces NaN. In the backward, relu and leaky_relu select on
  y > 0 exactly as the reference: a NaN y selects the "x <= 0" branch (relu then gives 0).

Design: every activation is one scalar @njit helper (forward of x, gradient of (dy, y)), scalar-only so
the same code compiles for CUDA (kernels/cuda/activations.py). ``apply_activation`` / ``activation_grad``
pick one by an integer code; the code is loop-invariant, so LLVM unswitches the loop into one specialised,
vectorised copy per activation (no per-element branch; checked in the assembly: each copy runs in ymm/zmm lanes,
and matches the speed of a kernel specialised to one activation). kernels.linear fuses these same helpers
into its bias and bias-gradient passes. Arrays of PARALLEL_MIN_ELEMENTS or more take the prange variant.

Device arrays (CuPy, or anything with ``__cuda_array_interface__``) run the kernels of
kernels/cuda/activations.py, which call these same scalar helpers compiled for the GPU, on the current
stream without synchronising; every public function takes them, with the same arguments and errors.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from kernels._fastexp import exp_f32, fast_exp, float32_or_libm
from kernels._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    as_float_array,
    backend_of,
    check_real,
    check_same_shape,
    common_float_dtype,
    out_array,
    serial_and_parallel,
)

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")
IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = range(5)
_CODES = {None: IDENTITY, "identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID,
          "tanh": TANH}

# error_model="numpy": IEEE division (x / 0 = inf) instead of Python's ZeroDivisionError check, whose
# branch would keep the sigmoid and tanh loops from vectorising. No divisor here can be 0 anyway.
_JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


# ----------------------------------------------------------------------------------------------------
# Scalar helpers: one definition per activation. Constants are built with type(x)(...) so float32
# arithmetic stays float32 (a bare Python float literal would promote it to float64).

_T_SMALL = np.float32(0.625)  # below this |x|, tanh uses the polynomial (Cephes tanhf)
_T0 = np.float32(-5.70498872745e-3)
_T1 = np.float32(2.06390887954e-2)
_T2 = np.float32(-5.37397155531e-2)
_T3 = np.float32(1.33314422036e-1)
_T4 = np.float32(-3.33332819422e-1)
_ONE32 = np.float32(1.0)
_MINUS_TWO32 = np.float32(-2.0)


@njit(inline="always", **_JIT)
def relu_scalar(x):
    # "0 if x < 0" rather than "x if x > 0": a NaN x must come out as NaN, as torch.relu gives.
    return type(x)(0.0) if x < type(x)(0.0) else x


@njit(inline="always", **_JIT)
def relu_grad_scalar(dy, y):
    return dy if y > type(y)(0.0) else type(dy)(0.0)


@njit(inline="always", **_JIT)
def leaky_relu_scalar(x, slope):
    return x if x > type(x)(0.0) else slope * x


@njit(inline="always", **_JIT)
def leaky_relu_grad_scalar(dy, y, slope):
    return dy if y > type(y)(0.0) else slope * dy


@njit(inline="always", **_JIT)
def sigmoid_scalar(x):
    one = type(x)(1.0)
    e = fast_exp(-abs(x))  # exp of a non-positive number only: never overflows
    # one division with the numerator chosen by a select: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0
    return (one if x >= type(x)(0.0) else e) / (one + e)


@njit(inline="always", **_JIT)
def sigmoid_grad_scalar(dy, y):
    return dy * (y * (type(y)(1.0) - y))


@njit(inline="always", **_JIT)
def tanh_f32(x):
    """float32 tanh, branch-free: polynomial near 0, (1 - e) / (1 + e) with e = exp(-2|x|) elsewhere."""
    ax = abs(x)
    z = x * x
    # x + x z P(z) keeps the sign of x (and -0.0) by itself
    small = ((((_T0 * z + _T1) * z + _T2) * z + _T3) * z + _T4) * z * x + x
    e = exp_f32(_MINUS_TWO32 * ax)
    t = (_ONE32 - e) / (_ONE32 + e)
    big = -t if x < type(x)(0.0) else t
    return small if ax < _T_SMALL else big


tanh_scalar = float32_or_libm(tanh_f32, math.tanh, "tanh(x): ``tanh_f32`` for float32, ``math.tanh`` for float64.")


@njit(inline="always", **_JIT)
def tanh_grad_scalar(dy, y):
    # (1 - y)(1 + y), not 1 - y^2: near |y| = 1 the product form has no cancellation (1 - y is exact)
    one = type(y)(1.0)
    return dy * ((one - y) * (one + y))


@njit(inline="always", **_JIT)
def apply_activation(x, code, slope):
    """act(x) for the activation with this integer code (IDENTITY, RELU, ...); slope: leaky_relu's a."""
    if code == RELU:
        return relu_scalar(x)
    if code == LEAKY_RELU:
        return leaky_relu_scalar(x, slope)
    if code == SIGMOID:
        return sigmoid_scalar(x)
    if code == TANH:
        return tanh_scalar(x)
    return x


@njit(inline="always", **_JIT)
def activation_grad(dy, y, code, slope):
    """dy * act'(x), written in terms of the activation's output y = act(x)."""
    if code == RELU:
        return relu_grad_scalar(dy, y)
    if code == LEAKY_RELU:
        return leaky_relu_grad_scalar(dy, y, slope)
    if code == SIGMOID:
        return sigmoid_grad_scalar(dy, y)
    if code == TANH:
        return tanh_grad_scalar(dy, y)
    return dy


# ----------------------------------------------------------------------------------------------------
# CPU kernels over flat (1-D, contiguous) arrays. The parallel variants give each thread a contiguous
# range of elements; every element is written by exactly one thread and depends on its inputs only, so
# they are race-free and give the same bits at any thread count. Each loop is compiled serial and parallel.


def _forward(x, y, code, slope):
    for i in prange(x.size):
        y[i] = apply_activation(x[i], code, slope)


def _backward(dy, y, dx, code, slope):
    for i in prange(dy.size):
        dx[i] = activation_grad(dy[i], y[i], code, slope)


_forward_serial, _forward_parallel = serial_and_parallel(_forward, **_JIT)
_backward_serial, _backward_parallel = serial_and_parallel(_backward, **_JIT)


# ----------------------------------------------------------------------------------------------------
# Public API


def activation_code(kind) -> int:
    """The integer code of an activation name (None means identity); ValueError listing the allowed ones."""
    try:
        return _CODES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"activation = {kind!r} is not one of {ACTIVATIONS} (or None for identity)") from None


def check_negative_slope(negative_slope, dtype):
    """Validate leaky_relu's slope and return it as a scalar of ``dtype`` (no float64 promotion)."""
    a = check_real("negative_slope", negative_slope)
    if not (0.0 <= a < math.inf):
        raise ValueError(
            f"negative_slope = {negative_slope} is out of range: must be finite and >= 0, because the "
            "backward reads the sign of x off the saved output y (with a slope < 0, y > 0 no longer means x > 0)"
        )
    return np.dtype(dtype).type(a)


def activation_forward(x, kind, *, negative_slope=0.01, out=None):
    """y = act(x) elementwise, for kind in ACTIVATIONS (None = identity). Returns y (``out`` if given)."""
    backend = backend_of(x=x, out=out)
    code = activation_code(kind)
    x = as_float_array("x", x)
    slope = check_negative_slope(negative_slope, x.dtype)
    y = out_array("out", out, x.shape, x.dtype, inputs=(x,))
    xf, yf = x.reshape(-1), y.reshape(-1)
    if backend == "cuda":
        from kernels.cuda import activations as cuda_act

        cuda_act.run_forward(xf, yf, code, slope)
    elif x.size >= PARALLEL_MIN_ELEMENTS:
        _forward_parallel(xf, yf, code, slope)
    else:
        _forward_serial(xf, yf, code, slope)
    return y


def activation_backward(dy, y, kind, *, negative_slope=0.01, out=None):
    """dx = dy * act'(x) from the upstream gradient dy and the saved output y = act(x). Returns dx."""
    backend = backend_of(dy=dy, y=y, out=out)
    code = activation_code(kind)
    dtype = common_float_dtype(dy=dy, y=y)
    dy = as_float_array("dy", dy)
    y = as_float_array("y", y)
    check_same_shape("dy", dy, "y", y)
    slope = check_negative_slope(negative_slope, dtype)
    dx = out_array("out", out, dy.shape, dtype, inputs=(dy, y))
    dyf, yf, dxf = dy.reshape(-1), y.reshape(-1), dx.reshape(-1)
    if backend == "cuda":
        from kernels.cuda import activations as cuda_act

        cuda_act.run_backward(dyf, yf, dxf, code, slope)
    elif dy.size >= PARALLEL_MIN_ELEMENTS:
        _backward_parallel(dyf, yf, dxf, code, slope)
    else:
        _backward_serial(dyf, yf, dxf, code, slope)
    return dx


def relu(x, *, out=None):
    """max(x, 0), NaN-propagating."""
    return activation_forward(x, "relu", out=out)


def relu_backward(dy, y, *, out=None):
    """dy where y > 0, else 0 (relu'(0) = 0)."""
    return activation_backward(dy, y, "relu", out=out)


def leaky_relu(x, negative_slope=0.01, *, out=None):
    """x where x > 0, else negative_slope * x (negative_slope >= 0)."""
    return activation_forward(x, "leaky_relu", negative_slope=negative_slope, out=out)


def leaky_relu_backward(dy, y, negative_slope=0.01, *, out=None):
    """dy where y > 0, else negative_slope * dy."""
    return activation_backward(dy, y, "leaky_relu", negative_slope=negative_slope, out=out)


def sigmoid(x, *, out=None):
    """1 / (1 + exp(-x)), evaluated without overflow."""
    return activation_forward(x, "sigmoid", out=out)


def sigmoid_backward(dy, y, *, out=None):
    """dy * y * (1 - y)."""
    return activation_backward(dy, y, "sigmoid", out=out)


def tanh(x, *, out=None):
    """tanh(x)."""
    return activation_forward(x, "tanh", out=out)


def tanh_backward(dy, y, *, out=None):
    """dy * (1 - y^2)."""
    return activation_backward(dy, y, "tanh", out=out)
