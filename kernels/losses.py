"""Elementwise losses with their gradients: binary cross-entropy on logits, mean squared error, L1.

Semantics of torch.nn.functional.{binary_cross_entropy_with_logits, mse_loss, l1_loss}. For logits x,
targets t (same shape, any shape), per-element loss l_i and gradient g_i = d l_i / d x_i:

    BCE:  l_i = -w_i [ pw_c t_i log s(x_i) + (1 - t_i) log s(-x_i) ],   s = sigmoid, c = last-axis index
          g_i = w_i [ (1 - t_i) s(x_i) - pw_c t_i s(-x_i) ]
    MSE:  l_i = (x_i - t_i)^2,   g_i = 2 (x_i - t_i)
    L1:   l_i = |x_i - t_i|,     g_i = sign(x_i - t_i)   (0 where x_i == t_i, as torch)

``weight`` w broadcasts against x (numpy rules); ``pos_weight`` pw has one entry per position of the last
axis. Reductions: "none" returns l (x's shape) and dx = g; "sum" returns sum_i l_i and dx = g; "mean"
returns sum_i l_i / n and dx = g / n, n = x.size. An empty input gives loss 0 with "mean" and "sum" (not
0/0 = NaN) and an empty dx. Every function returns (loss, dx); a reduced loss is a NumPy scalar of the
input dtype (a 0-d device array of that dtype for device input, see below).

Numerics. -log s(x) = max(-x, 0) + log1p(exp(-|x|)) and -log s(-x) = max(x, 0) + log1p(exp(-|x|)): the
exponential never overflows and every term is >= 0 for targets in [0, 1] and non-negative weights, so
there is no cancellation (torch's (1 - t) x + ... form subtracts large terms). s(x) and s(-x) come from
the same e = exp(-|x|) as 1 / (1 + e) and e / (1 + e). Any finite logit gives a finite loss and gradient
(e.g. +-1e4 in float32, +-1e300 in float64). Non-finite input follows the formula: NaN propagates;
x = +-inf with a target that weights the infinite term gives inf, and 0 * inf = NaN where the target
zeroes it exactly (as the float64 oracle and torch do).

float32 uses the polynomial exp of kernels._fastexp and a polynomial log1p (below), so the loops
vectorise; float64 uses math.exp / math.log1p (full precision). Sums accumulate in float64 over fixed
blocks of LOSS_BLOCK elements (blocks in parallel, partials added exactly with math.fsum), so the loss
is bitwise the same at any thread count.

Backends: NumPy arrays run the CPU kernels below; device arrays (CuPy, anything with
``__cuda_array_interface__``) run kernels/cuda/losses.py on the current stream, with the weight and
pos_weight vectors built on the device exactly as here. There "mean" and "sum" are reduced on the device
too (kernels.cuda.reduce.sum_scaled over the float64 block partials) and returned as a 0-d device array,
as torch returns a 0-d tensor: nothing is read back to the host until the caller asks (``float(loss)``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._fastexp import fast_exp, float32_or_libm
from ._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    array_module,
    as_float_array,
    backend_of,
    check_reduction,
    check_same_shape,
    common_float_dtype,
    out_array,
    serial_and_parallel,
)

# error_model="numpy": IEEE division instead of Python's ZeroDivisionError check, whose branch (and
# exception path) would stop the loops from vectorising; no divisor here can be 0 for finite input.
_JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}

# Elements per reduction block: the unit of both the parallel split and the float64 partial sums.
LOSS_BLOCK = 1 << 14

# pos_weight (and a weight that varies along the last axis only) is tiled to a period that is a multiple
# of the last-axis length and at least this long, so the inner loops run over long contiguous segments
# even when the last axis is short.
_MIN_PERIOD = 2048


# --------------------------------------------------------------------------------------------------
# scalar helpers (scalar-only, shareable with CUDA kernels)

_F1 = np.float32(1.0)
_F0 = np.float32(0.0)
_FHALF = np.float32(0.5)
_FSQRT2 = np.float32(1.41421356237)
_LN2_HI = np.float32(0.693359375)  # ln 2 = _LN2_HI + _LN2_LO, _LN2_HI exact in a few bits
_LN2_LO = np.float32(-2.12194440e-4)
# Cephes logf: log(1 + f) = f - f^2 / 2 + f^3 P(f) on f in [sqrt(1/2) - 1, sqrt(2) - 1]
_L0 = np.float32(7.0376836292e-2)
_L1 = np.float32(-1.1514610310e-1)
_L2 = np.float32(1.1676998740e-1)
_L3 = np.float32(-1.2420140846e-1)
_L4 = np.float32(1.4249322787e-1)
_L5 = np.float32(-1.6668057665e-1)
_L6 = np.float32(2.0000714765e-1)
_L7 = np.float32(-2.4999993993e-1)
_L8 = np.float32(3.3333331174e-1)


# Compiled without fast-math on purpose: (e - (u - 1)) is the exact rounding error of u = 1 + e, and
# reassociation would fold it to 0, losing all relative accuracy for small e.
@njit(cache=True, error_model="numpy")
def log1p_unit_f32(e):
    """log(1 + e) for a float32 e in [0, 1] (the range of exp(-|x|)), within 3 ulp; NaN propagates.

    Branch-free so loops calling it vectorise: u = 1 + e lies in [1, 2]; u > sqrt 2 is halved (k = 1),
    so f = u 2^-k - 1 is exact (Sterbenz) and in Cephes' logf range; log(1 + e) = k ln 2 + log(1 + f)
    + (e - (u - 1)) / u, the last term restoring what rounding 1 + e lost.
    """
    u = _F1 + e
    big = u > _FSQRT2
    f = (u * _FHALF if big else u) - _F1
    k = _F1 if big else _F0
    z = f * f
    p = ((((((((_L0 * f + _L1) * f + _L2) * f + _L3) * f + _L4) * f + _L5) * f + _L6) * f + _L7) * f + _L8)
    y = f * z * p - _FHALF * z
    c = (e - (u - _F1)) / u
    return k * _LN2_HI + (f + (y + c + k * _LN2_LO))


log1p_unit = float32_or_libm(log1p_unit_f32, math.log1p,
                             "log1p(e) for e in [0, 1]: the polynomial for float32, math.log1p for float64.")


@njit(inline="always", **_JIT)
def _bce_elem(x, t, w, pw, e, one):
    """(loss, d loss / dx) of one logit x, given e = exp(-|x|); ``one`` is 1 in x's dtype."""
    zero = one - one
    r = one / (one + e)
    er = e * r
    pos = x >= zero
    sig_x = r if pos else er  # sigmoid(x)
    sig_nx = er if pos else r  # sigmoid(-x)
    sp = log1p_unit(e)
    pt = pw * t
    q = one - t
    loss = w * (pt * (max(-x, zero) + sp) + q * (max(x, zero) + sp))
    grad = w * (q * sig_x - pt * sig_nx)
    return loss, grad


@njit(inline="always", **_JIT)
def _sign(d, one):
    """sign(d) as numpy: -1, 0 or 1, NaN for NaN."""
    zero = one - one
    return one if d > zero else (-one if d < zero else d)


# --------------------------------------------------------------------------------------------------
# CPU kernels. Each *_block handles flat elements [i0, i1): it writes dx (and the loss when
# store_loss) and returns the float64 sum of the per-element losses. The inner loops index views that
# start at 0, so indices are provably non-negative and LLVM emits plain vector loads and stores.


@njit(**_JIT)
def _bce_segment(x, t, w, pw, dx, loss, store_loss, scale):
    one = x.dtype.type(1)
    acc = 0.0
    if store_loss:
        for k in range(x.size):
            xk = x[k]
            l, g = _bce_elem(xk, t[k], w[k], pw[k], fast_exp(-abs(xk)), one)
            loss[k] = l
            dx[k] = g * scale
    else:
        for k in range(x.size):
            xk = x[k]
            l, g = _bce_elem(xk, t[k], w[k], pw[k], fast_exp(-abs(xk)), one)
            acc += l
            dx[k] = g * scale
    return acc


@njit(**_JIT)
def _bce_block(x, t, w, w_full, pw, dx, loss, store_loss, scale, i0, i1):
    # pw (and w unless w_full) repeat with period pw.size along the flat index; walk the block in
    # segments that do not wrap around the period.
    period = pw.size
    acc = 0.0
    i = i0
    while i < i1:
        ph = i % period
        m = min(period - ph, i1 - i)
        wo = i if w_full else ph
        ls = loss[i : i + m] if store_loss else loss
        acc += _bce_segment(x[i : i + m], t[i : i + m], w[wo : wo + m], pw[ph : ph + m], dx[i : i + m], ls,
                            store_loss, scale)
        i += m
    return acc


def _bce_blocks(x, t, w, w_full, pw, dx, loss, store_loss, scale, partials):
    # Blocks are disjoint element ranges, each with its own partial: race-free.
    n = x.size
    for b in prange(partials.size):
        i0 = b * LOSS_BLOCK
        partials[b] = _bce_block(x, t, w, w_full, pw, dx, loss, store_loss, scale, i0, min(n, i0 + LOSS_BLOCK))


_bce_serial, _bce_parallel = serial_and_parallel(_bce_blocks, **_JIT)

# Losses of the difference d = x - t, chosen by a loop-invariant code (LLVM unswitches the loop into one
# vectorised copy per loss). Each returns (l, g) with the gradient g * gscale:
# MSE: l = d^2, g = d with gscale = 2 * scale;  L1: l = |d|, g = sign(d) with gscale = scale.
MSE, L1 = 0, 1


@njit(inline="always", **_JIT)
def _diff_elem(d, code, one):
    if code == MSE:
        return d * d, d
    return abs(d), _sign(d, one)


@njit(**_JIT)
def _diff_block(x, t, dx, loss, store_loss, gscale, code):
    one = x.dtype.type(1)
    acc = 0.0
    if store_loss:
        for k in range(x.size):
            l, g = _diff_elem(x[k] - t[k], code, one)
            loss[k] = l
            dx[k] = g * gscale
    else:
        for k in range(x.size):
            l, g = _diff_elem(x[k] - t[k], code, one)
            acc += l
            dx[k] = g * gscale
    return acc


def _diff_blocks(x, t, dx, loss, store_loss, gscale, code, partials):
    n = x.size
    for b in prange(partials.size):
        i0 = b * LOSS_BLOCK
        i1 = min(n, i0 + LOSS_BLOCK)
        ls = loss[i0:i1] if store_loss else loss
        partials[b] = _diff_block(x[i0:i1], t[i0:i1], dx[i0:i1], ls, store_loss, gscale, code)


_diff_serial, _diff_parallel = serial_and_parallel(_diff_blocks, **_JIT)


# --------------------------------------------------------------------------------------------------
# public functions


def _prepare(x, target, reduction, out, **weights):
    """Validate the common arguments; return (backend, x, t, dtype, reduction, dx, loss buffer, store_loss)."""
    backend = backend_of(x=x, target=target, out=out, **weights)
    dtype = common_float_dtype(x=x, target=target)
    x = as_float_array("x", x)
    t = as_float_array("target", target)
    check_same_shape("x", x, "target", t)
    reduction = check_reduction(reduction)
    dx = out_array("out", out, x.shape, dtype, inputs=(x, t))
    store = reduction == "none"
    loss = array_module(x).empty(x.shape if store else (0,), dtype=dtype)
    return backend, x, t, dtype, reduction, dx, loss, store


def _finish(reduction, loss, partials, n, dtype):
    """The loss to return, from the CPU kernel's outputs (kernels.cuda.losses.reduced_loss on the device)."""
    if reduction == "none":
        return loss
    total = math.fsum(partials.tolist())
    if reduction == "mean":
        total = total / n if n else 0.0
    return dtype.type(total)


def _scale(reduction, n):
    """The gradient factor of the reduction: 1 / n for "mean" (0 for an empty input), else 1."""
    return 1.0 / n if reduction == "mean" and n else 1.0


def _periodic(xp, a, c, period):
    """A length-c vector tiled to ``period`` (a multiple of c), contiguous, by the array module xp."""
    return xp.ascontiguousarray(xp.tile(xp.ascontiguousarray(a), period // c))


def binary_cross_entropy_with_logits(x, target, *, weight=None, pos_weight=None, reduction="mean", out=None):
    """BCE on logits (torch.nn.functional.binary_cross_entropy_with_logits); returns (loss, dx).

    x: float32/float64 logits of any shape; target: same shape and dtype, probabilities (usually 0/1);
    weight: optional array of the same dtype broadcastable to x.shape; pos_weight: optional 1-D array of
    the same dtype with x.shape[-1] entries (or 1), weighting the positive term per last-axis position;
    reduction: "mean" | "sum" | "none"; out: optional buffer for dx (x's shape and dtype, C-contiguous,
    not overlapping an input). loss is a dtype scalar ("mean"/"sum"; a 0-d device array for device input)
    or an array of x's shape ("none"); dx = d loss / dx (elementwise d l_i / d x_i for "none").
    """
    backend, x, t, dtype, reduction, dx, loss, store = _prepare(x, target, reduction, out, weight=weight,
                                                                pos_weight=pos_weight)
    xp = array_module(x)  # numpy, or the device module: the weight vectors are built where x lives
    common_float_dtype(x=x, weight=weight, pos_weight=pos_weight)
    n = x.size
    c = x.shape[-1] if x.ndim else 1
    period = c * -(-_MIN_PERIOD // c) if 0 < c <= _MIN_PERIOD else max(c, 1)

    w_full = False
    if weight is None:
        w = xp.ones(period, dtype=dtype)
    else:
        weight = as_float_array("weight", weight, dtype=dtype)
        try:
            shape = np.broadcast_shapes(weight.shape, x.shape)
        except ValueError:
            shape = None
        if shape != x.shape:
            raise ValueError(f"weight has shape {weight.shape}, which does not broadcast to x's shape {x.shape}")
        wb = xp.broadcast_to(weight, x.shape)
        if x.ndim and all(s == 0 for s in wb.strides[:-1]) and n:
            # varies along the last axis only: keep it periodic instead of materialising n values
            w = _periodic(xp, wb[(0,) * (x.ndim - 1)], c, period)
        else:
            # x's shape: weight itself (contiguous), not the read-only broadcast view of it, which a
            # simulated launch could not copy its (unchanged) values back into
            w = weight.reshape(-1) if weight.shape == x.shape else xp.ascontiguousarray(wb).reshape(-1)
            w_full = True

    if pos_weight is None:
        pw = xp.ones(period, dtype=dtype)
    else:
        pos_weight = as_float_array("pos_weight", pos_weight, dtype=dtype)
        if pos_weight.ndim != 1 or pos_weight.shape[0] not in (c, 1):
            raise ValueError(
                f"pos_weight has shape {pos_weight.shape}, expected ({c},): one weight per position of x's "
                "last axis"
            )
        pw = _periodic(xp, xp.broadcast_to(pos_weight, (c,)), c, period) if n else xp.ones(1, dtype=dtype)

    args = (x.reshape(-1), t.reshape(-1), w, w_full, pw, dx.reshape(-1), loss.reshape(-1), store,
            dtype.type(_scale(reduction, n)))
    if backend == "cuda":
        from kernels.cuda import losses as cuda_losses

        partials = xp.empty(-(-n // LOSS_BLOCK), dtype=np.float64)  # every block writes its own
        cuda_losses.run_bce(*args, partials)
        return cuda_losses.reduced_loss(reduction, loss, partials, n, dtype), dx
    partials = np.zeros(-(-n // LOSS_BLOCK), dtype=np.float64)
    if n:
        kernel = _bce_parallel if n >= PARALLEL_MIN_ELEMENTS else _bce_serial
        kernel(*args, partials)
    return _finish(reduction, loss, partials, n, dtype), dx


def _diff_loss(x, target, reduction, out, code):
    backend, x, t, dtype, reduction, dx, loss, store = _prepare(x, target, reduction, out)
    n = x.size
    gscale = dtype.type((2.0 if code == MSE else 1.0) * _scale(reduction, n))
    args = (x.reshape(-1), t.reshape(-1), dx.reshape(-1), loss.reshape(-1), store, gscale, code)
    if backend == "cuda":
        from kernels.cuda import losses as cuda_losses

        partials = array_module(x).empty(-(-n // LOSS_BLOCK), dtype=np.float64)  # every block writes its own
        cuda_losses.run_diff(*args, partials)
        return cuda_losses.reduced_loss(reduction, loss, partials, n, dtype), dx
    partials = np.zeros(-(-n // LOSS_BLOCK), dtype=np.float64)
    if n:
        kernel = _diff_parallel if n >= PARALLEL_MIN_ELEMENTS else _diff_serial
        kernel(*args, partials)
    return _finish(reduction, loss, partials, n, dtype), dx


def mse_loss(x, target, *, reduction="mean", out=None):
    """Mean squared error (torch.nn.functional.mse_loss); returns (loss, dx).

    x, target: float32/float64 arrays of one shape and dtype; reduction: "mean" | "sum" | "none";
    out: optional buffer for dx. dx = 2 (x - target) times 1/n for "mean".
    """
    return _diff_loss(x, target, reduction, out, MSE)


def l1_loss(x, target, *, reduction="mean", out=None):
    """Mean absolute error (torch.nn.functional.l1_loss); returns (loss, dx).

    x, target: float32/float64 arrays of one shape and dtype; reduction: "mean" | "sum" | "none";
    out: optional buffer for dx. dx = sign(x - target) (0 where they are equal), times 1/n for "mean".
    """
    return _diff_loss(x, target, reduction, out, L1)
