"""Batch normalisation over the rows of a 2-D batch (torch.nn.BatchNorm1d semantics on x of shape (N, C)).

Forward, for every column (channel) c, with the batch statistics in training mode:

    mean_c   = 1/N sum_i x_ic
    var_c    = 1/N sum_i (x_ic - mean_c)^2                  (biased: used to normalise)
    invstd_c = 1 / sqrt(var_c + eps)
    xhat_ic  = (x_ic - mean_c) * invstd_c
    y_ic     = gamma_c * xhat_ic + beta_c

and the running estimates are updated in place (momentum m, as torch):

    running_mean = (1 - m) * running_mean + m * mean
    running_var  = (1 - m) * running_var  + m * var * N / (N - 1)      (unbiased)

In eval mode the running estimates replace the batch statistics. Without running estimates
(track_running_stats=False) eval mode normalises with the batch statistics, as torch does.

Backward in training mode, through the batch statistics (g = gamma, or 1 without affine):

    dbeta_c  = sum_i dy_ic
    dgamma_c = sum_i dy_ic * xhat_ic
    dx_ic    = g_c * invstd_c * (dy_ic - dbeta_c / N - xhat_ic * dgamma_c / N)

Shapes: x, y, dy, dx (N, C); gamma, beta, running_mean, running_var, mean, invstd, dgamma, dbeta (C,).
Source: Ioffe & Szegedy, "Batch Normalization" (2015); the torch.nn.BatchNorm1d / F.batch_norm API.

Numerics. The statistics come from one pass over x that sums d = x - shift and d^2 per column, with the
mean of the first REDUCE_BLOCK_ROWS rows (rounded to x's dtype) as the per-column shift; then
mean = shift + S1/N and var = (S2 - S1^2/N)/N. Shifting avoids the catastrophic cancellation of the
textbook sum-of-squares formula when |mean| >> std: the cancellation left is (shift - mean)^2 / var, about
1 / REDUCE_BLOCK_ROWS for exchangeable rows (at most N). The elementwise work runs in x's dtype (a float32
pass runs at full SIMD width with no conversions); each block sums its REDUCE_BLOCK_ROWS rows in x's
dtype and the block partials are added in float64, so a float32 sum carries the rounding of a block,
not N. The forward pass subtracts the float64 mean as a pair mean_hi = mean rounded to x's dtype and
mean_lo = mean - mean_hi, folding mean_lo into the per-column shift: x - mean_hi is exact when
|mean| >> std (Sterbenz), so a float32 y keeps float32 accuracy even when x sits far from zero. The
per-column coefficients are folded in float64 and rounded once to x's dtype. The float64 path is float64
throughout (mean_lo = 0). The saved mean and invstd are returned in x's dtype (as torch does), and the
backward pass subtracts that saved mean.

Parallelism and determinism: the rows are cut into fixed blocks of REDUCE_BLOCK_ROWS rows; each block
writes its own row of a partial-sum array (x's dtype), the blocks run in parallel (prange), and the block
partials are then added serially in block order.
The cut does not depend on the thread count, so results are bitwise the same at any number of threads.
Every inner loop runs along C, contiguous in memory, so it vectorises.

Backends: NumPy arrays run the CPU kernels below; device arrays (CuPy, anything with
``__cuda_array_interface__``) run the same algorithm as CUDA kernels (kernels/cuda/batchnorm.py) on the
current stream, without synchronising: y, mean, invstd, dx, dgamma and dbeta come back as device arrays
and the running statistics are updated in place in the caller's device arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from kernels._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    REDUCE_BLOCK_ROWS,
    as_float_array,
    backend_of,
    check_real,
    common_float_dtype,
    may_share_memory,
    num_row_blocks,
    out_array,
    serial_and_parallel,
    writable_float_array,
)

# ----------------------------------------------------------------------------------------------------
# CPU kernels. Task b handles rows [b * REDUCE_BLOCK_ROWS, (b + 1) * REDUCE_BLOCK_ROWS) and writes only
# its own rows of the outputs. A task streams whole rows: cutting the columns into chunks as well measured
# 3-5x slower here (each chunk of a block starts a new 4 KiB page per row; the prefetchers lose track).
# Inner loops index from 0 over a row view so LLVM sees non-negative indices and vectorises them.
#
# On wide rows (C >= _WIDE) the per-column state (partial sums, or mean/scale/shift) no longer
# fits in L1, and re-reading and re-writing it for every row costs more than streaming x itself, so the
# tasks sweep _SWEEP rows per pass over the columns and touch that state once per sweep. Narrow rows keep
# the one-row loop: there the state is L1-resident and the 4 short interleaved row streams measured slower.
#
# The rows of one sweep lie a multiple of the row stride apart, so on rows of a multiple of 4 KiB they
# all map to one set of the 8-way L1: grad_x streams 3 arrays and sweeps only _SWEEP_DX = 2 rows
# (6 lines per set; 4 rows measured 10% slower, 8 rows 15x slower), the other passes 2 arrays x 4 rows.
_WIDE = 1024
_SWEEP = 4
_SWEEP_DX = 2


@njit(cache=True, fastmath=FASTMATH)
def _shifted_sums_task(x, shift, s1, s2, b):
    """Block partials of sum(x - shift) and sum((x - shift)^2) over block b's rows, in x's dtype."""
    r0 = b * REDUCE_BLOCK_ROWS
    r1 = min(r0 + REDUCE_BLOCK_ROWS, x.shape[0])
    p1 = s1[b]
    p2 = s2[b]
    p1[:] = 0.0
    p2[:] = 0.0
    i = r0
    if x.shape[1] >= _WIDE:
        while i + _SWEEP <= r1:
            xs = x[i:i + _SWEEP]
            for k in range(xs.shape[1]):
                t1 = p1[k]
                t2 = p2[k]
                for j in range(_SWEEP):
                    d = xs[j, k] - shift[k]
                    t1 += d
                    t2 += d * d
                p1[k] = t1
                p2[k] = t2
            i += _SWEEP
    for i in range(i, r1):
        xi = x[i]
        for k in range(xi.shape[0]):
            d = xi[k] - shift[k]
            p1[k] += d
            p2[k] += d * d


def _shifted_sums(x, shift, s1, s2):
    # Race-free: task b writes only row b of s1 and s2.
    for b in prange(s1.shape[0]):
        _shifted_sums_task(x, shift, s1, s2, b)


_shifted_sums_serial, _shifted_sums_parallel = serial_and_parallel(_shifted_sums, cache=True, fastmath=FASTMATH)


@njit(cache=True, fastmath=FASTMATH)
def _sum_blocks(s1, s2):
    """Float64 column totals of the block partials, added in block order (fixed, thread-independent)."""
    nb, c = s1.shape
    t1 = np.zeros(c, dtype=np.float64)
    t2 = np.zeros(c, dtype=np.float64)
    for b in range(nb):
        for k in range(c):
            t1[k] += np.float64(s1[b, k])
            t2[k] += np.float64(s2[b, k])
    return t1, t2


@njit(cache=True, fastmath=FASTMATH)
def _finish_stats(s1, s2, shift, n, mean, var):
    """Float64 mean and biased var from the block partials of the shifted sums."""
    t1, t2 = _sum_blocks(s1, s2)
    inv_n = 1.0 / n
    for k in range(t1.shape[0]):
        m1 = t1[k] * inv_n
        v = (t2[k] - t1[k] * m1) * inv_n
        # S2 >= S1^2/N exactly; rounding can push a constant column a hair below 0 (NaN stays NaN).
        if v < 0.0:
            v = 0.0
        mean[k] = np.float64(shift[k]) + m1
        var[k] = v


@njit(cache=True)
def _first_block_mean(x, shift):
    """shift = float64 mean of the first REDUCE_BLOCK_ROWS rows (N >= 1), rounded to x's dtype."""
    r = min(REDUCE_BLOCK_ROWS, x.shape[0])
    acc = np.zeros(x.shape[1], dtype=np.float64)
    for i in range(r):  # row by row: contiguous, vectorised along the columns
        xi = x[i]
        for k in range(xi.shape[0]):
            acc[k] += xi[k]
    for k in range(acc.shape[0]):
        shift[k] = acc[k] / r


# The per-column steps between the passes (C values each) are compiled too: a dozen small NumPy
# expressions cost more than the passes themselves at training-step sizes (N x C = 64 x 128). No fastmath:
# plain float64 arithmetic, rounded once to x's dtype.
@njit(cache=True)
def _fold_forward(mu_src, var_src, eps, gamma, beta, momentum, unbias, rm, rv, mean_hi, scale, shift, mean, invstd):
    """From the statistics used (batch mean/var in float64, or the running ones), update the running
    statistics in place when rm/rv are given (momentum, unbiased variance), and write the per-column
    affine map y = (x - mean_hi) * scale + shift and the (mean, invstd) handed to the backward."""
    for k in range(mean_hi.shape[0]):
        mu = np.float64(mu_src[k])
        var = np.float64(var_src[k])
        if rm is not None:
            rm[k] = (1.0 - momentum) * np.float64(rm[k]) + momentum * mu
            rv[k] = (1.0 - momentum) * np.float64(rv[k]) + momentum * (var * unbias)
        inv = 1.0 / math.sqrt(var + eps)  # math, not np: the CUDA kernels compile this function too
        mean_hi[k] = mu
        lo = mu - np.float64(mean_hi[k])
        sc = inv if gamma is None else inv * np.float64(gamma[k])
        scale[k] = sc
        shift[k] = -lo * sc if beta is None else np.float64(beta[k]) - lo * sc
        mean[k] = mu
        invstd[k] = inv


@njit(cache=True)
def _fold_backward(sum_dy, sum_dy_xmu, invstd, gamma, n, a, b1, c0, dgamma, dbeta):
    """Per-column coefficients of dx = a dy - b1 (x - mean) - c0 and the parameter gradients, from the
    float64 column sums of dy and dy (x - mean)."""
    for k in range(a.shape[0]):
        inv = np.float64(invstd[k])
        sum_dy_xhat = sum_dy_xmu[k] * inv
        ak = inv if gamma is None else inv * np.float64(gamma[k])
        a[k] = ak
        if n:
            b1[k] = ak * inv * sum_dy_xhat / n
            c0[k] = ak * sum_dy[k] / n
        dgamma[k] = sum_dy_xhat
        dbeta[k] = sum_dy[k]


@njit(cache=True, fastmath=FASTMATH)
def _affine_task(x, mean_hi, scale, shift, y, b):
    """y = (x - mean_hi) * scale + shift, in x's dtype."""
    r0 = b * REDUCE_BLOCK_ROWS
    r1 = min(r0 + REDUCE_BLOCK_ROWS, x.shape[0])
    i = r0
    if x.shape[1] >= _WIDE:
        while i + _SWEEP <= r1:
            xs = x[i:i + _SWEEP]
            ys = y[i:i + _SWEEP]
            for k in range(xs.shape[1]):
                m = mean_hi[k]
                sc = scale[k]
                sh = shift[k]
                for j in range(_SWEEP):
                    ys[j, k] = (xs[j, k] - m) * sc + sh
            i += _SWEEP
    for i in range(i, r1):
        xi = x[i]
        yi = y[i]
        for k in range(xi.shape[0]):
            yi[k] = (xi[k] - mean_hi[k]) * scale[k] + shift[k]


def _affine(x, mean_hi, scale, shift, y):
    # Race-free: tasks write disjoint row blocks of y.
    for b in prange(num_row_blocks(x.shape[0])):
        _affine_task(x, mean_hi, scale, shift, y, b)


_affine_serial, _affine_parallel = serial_and_parallel(_affine, cache=True, fastmath=FASTMATH)


@njit(cache=True, fastmath=FASTMATH)
def _grad_sums_task(dy, x, mean, s1, s2, b):
    """Block partials of sum(dy) and sum(dy * (x - mean)) over block b's rows, in x's dtype."""
    r0 = b * REDUCE_BLOCK_ROWS
    r1 = min(r0 + REDUCE_BLOCK_ROWS, x.shape[0])
    p1 = s1[b]
    p2 = s2[b]
    p1[:] = 0.0
    p2[:] = 0.0
    i = r0
    if x.shape[1] >= _WIDE:
        while i + _SWEEP <= r1:
            gs = dy[i:i + _SWEEP]
            xs = x[i:i + _SWEEP]
            for k in range(xs.shape[1]):
                t1 = p1[k]
                t2 = p2[k]
                m = mean[k]
                for j in range(_SWEEP):
                    g = gs[j, k]
                    t1 += g
                    t2 += g * (xs[j, k] - m)
                p1[k] = t1
                p2[k] = t2
            i += _SWEEP
    for i in range(i, r1):
        dyi = dy[i]
        xi = x[i]
        for k in range(xi.shape[0]):
            g = dyi[k]
            p1[k] += g
            p2[k] += g * (xi[k] - mean[k])


def _grad_sums(dy, x, mean, s1, s2):
    # Race-free: task b writes only row b of s1 and s2.
    for b in prange(s1.shape[0]):
        _grad_sums_task(dy, x, mean, s1, s2, b)


_grad_sums_serial, _grad_sums_parallel = serial_and_parallel(_grad_sums, cache=True, fastmath=FASTMATH)


@njit(cache=True, fastmath=FASTMATH)
def _grad_x_task(dy, x, mean, a, b1, c0, dx, b):
    """dx = a * dy - (x - mean) * b1 - c0, in x's dtype."""
    r0 = b * REDUCE_BLOCK_ROWS
    r1 = min(r0 + REDUCE_BLOCK_ROWS, x.shape[0])
    i = r0
    if x.shape[1] >= _WIDE:
        while i + _SWEEP_DX <= r1:
            gs = dy[i:i + _SWEEP_DX]
            xs = x[i:i + _SWEEP_DX]
            ds = dx[i:i + _SWEEP_DX]
            for k in range(xs.shape[1]):
                m = mean[k]
                ak = a[k]
                bk = b1[k]
                ck = c0[k]
                for j in range(_SWEEP_DX):
                    ds[j, k] = ak * gs[j, k] - (xs[j, k] - m) * bk - ck
            i += _SWEEP_DX
    for i in range(i, r1):
        dyi = dy[i]
        xi = x[i]
        dxi = dx[i]
        for k in range(xi.shape[0]):
            dxi[k] = a[k] * dyi[k] - (xi[k] - mean[k]) * b1[k] - c0[k]


def _grad_x(dy, x, mean, a, b1, c0, dx):
    # Race-free: tasks write disjoint row blocks of dx.
    for b in prange(num_row_blocks(x.shape[0])):
        _grad_x_task(dy, x, mean, a, b1, c0, dx, b)


_grad_x_serial, _grad_x_parallel = serial_and_parallel(_grad_x, cache=True, fastmath=FASTMATH)


# ----------------------------------------------------------------------------------------------------
# Public functions.


def _num_blocks(n):
    return max(1, num_row_blocks(n))


def _batch_stats(x):
    """Float64 (mean, biased var) of the columns of x (N >= 1)."""
    n, c = x.shape
    nb = _num_blocks(n)
    # The first block's mean, rounded to x's dtype, lies within about std / sqrt(REDUCE_BLOCK_ROWS) of
    # the batch mean, so x - shift is exact (Sterbenz) when |mean| >> std and the shifted sums cancel little.
    shift = np.empty(c, dtype=x.dtype)
    _first_block_mean(x, shift)
    s1 = np.empty((nb, c), dtype=x.dtype)
    s2 = np.empty((nb, c), dtype=x.dtype)
    if x.size >= PARALLEL_MIN_ELEMENTS:
        _shifted_sums_parallel(x, shift, s1, s2)
    else:
        _shifted_sums_serial(x, shift, s1, s2)
    mean = np.empty(c, dtype=np.float64)
    var = np.empty(c, dtype=np.float64)
    _finish_stats(s1, s2, shift, n, mean, var)
    return mean, var


def batchnorm_forward(x, gamma, beta, running_mean, running_var, *, training, momentum=0.1, eps=1e-5,
                      out=None):
    """BatchNorm1d forward on x of shape (N, C). Returns (y, mean, invstd), all in x's dtype.

    training=True normalises with the batch mean and biased variance and, when running_mean and
    running_var are given, updates them IN PLACE with momentum (unbiased variance into running_var).
    training=False normalises with running_mean / running_var, or with the batch statistics when both are
    None (track_running_stats=False). mean and invstd are the statistics actually used; pass them to
    batchnorm_backward. gamma and beta may be None (affine=False).

    Raises TypeError for non-arrays, dtypes other than float32/float64 or mixed dtypes, and ValueError for
    wrong shapes, a training batch of fewer than 2 rows, momentum outside [0, 1], eps <= 0, only one of
    the running statistics given, or running statistics / out that are not C-contiguous and writeable
    (out must also have shape (N, C), x's dtype, and not overlap an input).
    """
    backend = backend_of(x=x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var,
                         out=out)
    dtype = common_float_dtype(x=x, gamma=gamma, beta=beta, running_mean=running_mean,
                               running_var=running_var)
    x = as_float_array("x", x, ndim=2, dtype=dtype)
    n, c = x.shape
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    momentum = check_real("momentum", momentum, low=0.0, high=1.0)
    eps = check_real("eps", eps, low=0.0, low_open=True)
    gamma = _param("gamma", gamma, c, dtype)
    beta = _param("beta", beta, c, dtype)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays or both be None; got one of each")
    if running_mean is not None:
        running_mean = writable_float_array("running_mean", running_mean, shape=(c,), dtype=dtype)
        running_var = writable_float_array("running_var", running_var, shape=(c,), dtype=dtype)
        if may_share_memory(running_mean, running_var):
            raise ValueError("running_mean and running_var overlap; they must be separate buffers")
    use_batch_stats = training or running_mean is None
    if use_batch_stats and n < 2:
        raise ValueError(f"Expected more than 1 value per channel when training, got input of shape {x.shape}")
    y = out_array("out", out, (n, c), dtype, inputs=(x, gamma, beta, running_mean, running_var))
    if backend == "cuda":
        from kernels.cuda import batchnorm as cuda_bn

        mean, invstd = cuda_bn.forward(x, gamma, beta, running_mean, running_var, training, momentum, eps, y)
        return y, mean, invstd

    update = training and running_mean is not None
    if use_batch_stats:
        mu_src, var_src = _batch_stats(x)
    else:
        mu_src, var_src = running_mean, running_var

    # y = (x - mean_hi) * scale + (beta - mean_lo * scale) with mean = mean_hi + mean_lo: the per-column
    # folding is float64 and the elementwise pass runs in x's dtype; x - mean_hi is exact when
    # |mean| >> std (Sterbenz), so float32 y keeps float32 accuracy there (float64: mean_lo = 0).
    mean_hi, scale, shift, mean, invstd = np.empty((5, c), dtype=dtype)
    _fold_forward(mu_src, var_src, eps, gamma, beta, momentum, n / (n - 1) if update else 1.0,
                  running_mean if update else None, running_var if update else None,
                  mean_hi, scale, shift, mean, invstd)
    if n:
        (_affine_parallel if x.size >= PARALLEL_MIN_ELEMENTS else _affine_serial)(x, mean_hi, scale, shift, y)
    return y, mean, invstd


def batchnorm_backward(dy, x, gamma, mean, invstd, *, out=None):
    """Training-mode BatchNorm1d backward. Returns (dx, dgamma, dbeta), in x's dtype.

    mean and invstd are the statistics returned by batchnorm_forward(training=True). dgamma and dbeta
    are None when gamma is None (affine=False), as torch returns no parameter gradients then. out, if
    given, receives dx. One fused pass sums dy and dy * (x - mean) per column; a second writes dx.

    Raises TypeError for non-arrays, dtypes other than float32/float64 or mixed dtypes, and ValueError
    for shapes that disagree with x (N, C) or a bad out (wrong shape/dtype, not C-contiguous, read-only,
    overlapping an input).
    """
    backend = backend_of(dy=dy, x=x, gamma=gamma, mean=mean, invstd=invstd, out=out)
    dtype = common_float_dtype(dy=dy, x=x, gamma=gamma, mean=mean, invstd=invstd)
    x = as_float_array("x", x, ndim=2, dtype=dtype)
    dy = as_float_array("dy", dy, ndim=2, dtype=dtype)
    if dy.shape != x.shape:
        raise ValueError(f"dy has shape {dy.shape} but x has shape {x.shape}; they must match")
    n, c = x.shape
    gamma = _param("gamma", gamma, c, dtype)
    mean = _param("mean", mean, c, dtype, required=True)
    invstd = _param("invstd", invstd, c, dtype, required=True)
    dx = out_array("out", out, (n, c), dtype, inputs=(dy, x, gamma, mean, invstd))
    if backend == "cuda":
        from kernels.cuda import batchnorm as cuda_bn

        dgamma, dbeta = cuda_bn.backward(dy, x, gamma, mean, invstd, dx)
        return dx, dgamma, dbeta

    # zeros: with N == 0 no block runs and the sums must read 0. The block partials are in x's dtype (a
    # float32 block sums only REDUCE_BLOCK_ROWS terms); the blocks are added in float64.
    s1 = np.zeros((_num_blocks(n), c), dtype=dtype)
    s2 = np.zeros((_num_blocks(n), c), dtype=dtype)
    big = x.size >= PARALLEL_MIN_ELEMENTS
    if n:
        (_grad_sums_parallel if big else _grad_sums_serial)(dy, x, mean, s1, s2)
    sum_dy, sum_dy_xmu = _sum_blocks(s1, s2)
    a, b1, c0, dgamma, dbeta = np.empty((5, c), dtype=dtype)
    _fold_backward(sum_dy, sum_dy_xmu, invstd, gamma, n, a, b1, c0, dgamma, dbeta)
    if n:
        (_grad_x_parallel if big else _grad_x_serial)(dy, x, mean, a, b1, c0, dx)
    if gamma is None:
        return dx, None, None
    return dx, dgamma, dbeta


def _param(name, a, c, dtype, required=False):
    """A per-column vector of shape (C,), C-contiguous (None allowed unless required)."""
    if a is None:
        if required:
            raise TypeError(f"{name} must be a numpy.ndarray or a CUDA device array (CuPy), got NoneType")
        return None
    a = as_float_array(name, a, ndim=1, dtype=dtype)
    if a.shape != (c,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({c},): one value per column of x")
    return a

