"""CUDA kernels of BatchNorm1d (kernels/batchnorm.py has the maths, the numerics, the validation and the CPU
side). The device runs the CPU's algorithm step for step:

    forward   shift_c = mean of the first REDUCE_BLOCK_ROWS rows of column c, rounded to x's dtype
              block partials S1[b, c] = sum_i (x_ic - shift_c),  S2[b, c] = sum_i (x_ic - shift_c)^2
              (i over row block b, in row order, in x's dtype), added in block order in float64,
              mean = shift + S1/N, var = (S2 - S1^2/N)/N, then the per-column fold (running statistics,
              mean_hi, scale, shift) and the affine pass  y_ic = (x_ic - mean_hi_c) * scale_c + shift_c
    backward  block partials of sum_i dy_ic and sum_i dy_ic (x_ic - mean_c), added in block order in float64,
              the per-column fold (a, b1, c0, dgamma, dbeta), then  dx_ic = a_c dy_ic - (x_ic - mean_c) b1_c - c0_c

Launch layout. The four passes over (N, C) use a 2-D grid: blockIdx.x picks a tile of up to THREADS
consecutive columns (one column per thread, so a warp reads one contiguous run of a row: coalesced),
blockIdx.y strides over the row blocks of REDUCE_BLOCK_ROWS rows. A thread walks its block's rows in row
order and, in the reductions, writes its own element [b, c] of the partial-sum arrays: no two threads write
one address, there are no atomics, and each partial is the same row-ordered sum as the CPU's, whatever the
grid. The per-column steps (first-block mean, block totals, the two folds) are one thread per column in a
grid-stride loop; the block totals are added in block order. Every result is therefore a fixed function of
the inputs: bitwise the same from run to run and for any launch shape.

What is shared with the CPU. The two folds are the CPU's own ``_fold_forward`` and ``_fold_backward``,
compiled for the device and called per column on one-element views, so their arithmetic cannot drift (they
use math.sqrt, not np.sqrt, which numba-cuda cannot lower on a scalar).
The first-block mean and the block totals are written out here because their CPU versions allocate NumPy arrays,
which device code cannot; they are the same loops, one column per thread.

Rounding. The multiply-adds that the CPU kernels (compiled with contraction allowed) fuse into FMAs are
written as ``cuda.fma``, so the device rounds them once as well instead of leaving it to the compiler. On a
GPU, against the CPU on an FMA-capable host (every x86-64 since 2013, every aarch64), the block partials and
totals, the variance, invstd, dgamma and dbeta are then bitwise the CPU's: every multiply-add on their path
is an explicit fma. The rest agrees to a few ulp: NVVM may contract a multiply-add that the CPU rounds twice
(it does contract the running-statistics update (1 - m) * r + m * mu), which can move the mean, the running
statistics and y by an ulp; and dx is written plainly, since the CPU reassociates its three terms
differently per dtype. The simulator rounds every Python operation, so with an exactly rounded ``cuda.fma``
everything but dx is bitwise the CPU's there (see the tests).

Launchers take C-contiguous arrays already validated by kernels/batchnorm.py, which calls them for device
arrays (CuPy, or the simulator's ``SimDeviceArray``), with the scalars as batchnorm_forward /
batchnorm_backward compute them; they launch on the current stream and never synchronise. The temporaries
and the returned statistics come from x's array module: CuPy arrays (allocated from CuPy's pool on the
current stream) for CuPy input, simulated device arrays under the simulator, and NumPy arrays for the NumPy
arrays the kernel tests pass straight to the launchers (Numba then copies them to and from the device).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from kernels import batchnorm as _cpu
from kernels._util import REDUCE_BLOCK_ROWS, array_module, num_row_blocks
from kernels.cuda import THREADS, WARP, elementwise_grid, launch

# CUDA caps gridDim.y at 65535; the kernels stride over the row blocks beyond it.
MAX_GRID_Y = 65535


def column_tiles(num_blocks, c):
    """((column tiles, row-block slots), threads) for the 2-D passes: threads = C rounded up to a warp,
    at most THREADS, so a narrow batch does not launch mostly idle threads."""
    threads = min(THREADS, max(WARP, -(-c // WARP) * WARP))
    return (-(-c // threads), min(num_blocks, MAX_GRID_Y)), threads


def _empty(shape, dtype, like):
    return array_module(like).empty(shape, dtype)


# ----------------------------------------------------------------------------------------------------
# Per-column steps: one thread per column, grid-stride.


@cuda.jit
def _first_block_mean(x, shift):
    r = min(REDUCE_BLOCK_ROWS, x.shape[0])
    for k in range(cuda.grid(1), x.shape[1], cuda.gridsize(1)):
        acc = np.float64(0.0)
        for i in range(r):
            acc += x[i, k]
        shift[k] = acc / r


@cuda.jit(device=True)
def _block_totals(s1, s2, k):
    # np.float64, not 0.0: under the simulator a Python float plus a float32 scalar stays float32 (NEP 50)
    t1 = np.float64(0.0)
    t2 = np.float64(0.0)
    for b in range(s1.shape[0]):
        t1 += np.float64(s1[b, k])
        t2 += np.float64(s2[b, k])
    return t1, t2


# The block totals run one thread per column, serially over the N / REDUCE_BLOCK_ROWS blocks: the CPU's
# order, hence its bits. Only a very tall, narrow batch (thousands of blocks, few columns) makes this
# latency-bound; a fixed-order tree would be faster there but round differently from the CPU.
@cuda.jit
def _finish_stats(s1, s2, shift, inv_n, mean, var):
    for k in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        t1, t2 = _block_totals(s1, s2, k)
        m1 = t1 * inv_n
        v = cuda.fma(-t1, m1, t2) * inv_n
        if v < 0.0:  # as on the CPU: rounding can take a constant column a hair below 0 (NaN stays NaN)
            v = 0.0
        mean[k] = np.float64(shift[k]) + m1
        var[k] = v


@cuda.jit
def _sum_blocks(s1, s2, t1, t2):
    for k in range(cuda.grid(1), t1.size, cuda.gridsize(1)):
        t1[k], t2[k] = _block_totals(s1, s2, k)


@cuda.jit(device=True)
def _col(a, k):
    """Column k of a per-column vector as the one-element view _fold_backward loops over (None stays None)."""
    return None if a is None else a[k:k + 1]


_fold_backward_col = cuda.jit(device=True)(_cpu._fold_backward.py_func)


_fold_forward_col = cuda.jit(device=True)(_cpu._fold_forward.py_func)


@cuda.jit
def _fold_forward(mu_src, var_src, eps, gamma, beta, momentum, unbias, rm, rv, mean_hi, scale, shift, mean,
                  invstd):
    # kernels.batchnorm._fold_forward itself, one column per thread on one-element views
    for k in range(cuda.grid(1), mean_hi.size, cuda.gridsize(1)):
        _fold_forward_col(_col(mu_src, k), _col(var_src, k), eps, _col(gamma, k), _col(beta, k), momentum, unbias,
                          _col(rm, k), _col(rv, k), _col(mean_hi, k), _col(scale, k), _col(shift, k), _col(mean, k),
                          _col(invstd, k))


@cuda.jit
def _fold_backward(sum_dy, sum_dy_xmu, invstd, gamma, n, a, b1, c0, dgamma, dbeta):
    for k in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        _fold_backward_col(_col(sum_dy, k), _col(sum_dy_xmu, k), _col(invstd, k), _col(gamma, k), n,
                           _col(a, k), _col(b1, k), _col(c0, k), _col(dgamma, k), _col(dbeta, k))


# ----------------------------------------------------------------------------------------------------
# Passes over (N, C): thread = column of a tile, blockIdx.y strides over the row blocks.


@cuda.jit
def _shifted_sums(x, shift, s1, s2, zero):
    n, c = x.shape
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < c:
        sk = shift[k]
        for b in range(cuda.blockIdx.y, s1.shape[0], cuda.gridDim.y):
            t1 = zero  # x's dtype: a float32 block sums in float32, as on the CPU
            t2 = zero
            for i in range(b * REDUCE_BLOCK_ROWS, min((b + 1) * REDUCE_BLOCK_ROWS, n)):
                d = x[i, k] - sk
                t1 += d
                t2 = cuda.fma(d, d, t2)
            s1[b, k] = t1
            s2[b, k] = t2


@cuda.jit
def _affine(x, mean_hi, scale, shift, y):
    n, c = x.shape
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < c:
        m = mean_hi[k]
        sc = scale[k]
        sh = shift[k]
        for b in range(cuda.blockIdx.y, num_row_blocks(n), cuda.gridDim.y):
            for i in range(b * REDUCE_BLOCK_ROWS, min((b + 1) * REDUCE_BLOCK_ROWS, n)):
                y[i, k] = cuda.fma(x[i, k] - m, sc, sh)


@cuda.jit
def _grad_sums(dy, x, mean, s1, s2, zero):
    n, c = x.shape
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < c:
        m = mean[k]
        for b in range(cuda.blockIdx.y, s1.shape[0], cuda.gridDim.y):
            t1 = zero
            t2 = zero
            for i in range(b * REDUCE_BLOCK_ROWS, min((b + 1) * REDUCE_BLOCK_ROWS, n)):
                g = dy[i, k]
                t1 += g
                t2 = cuda.fma(g, x[i, k] - m, t2)
            s1[b, k] = t1
            s2[b, k] = t2


@cuda.jit
def _grad_x(dy, x, mean, a, b1, c0, dx):
    n, c = x.shape
    k = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if k < c:
        m = mean[k]
        ak = a[k]
        bk = b1[k]
        ck = c0[k]
        for b in range(cuda.blockIdx.y, num_row_blocks(n), cuda.gridDim.y):
            for i in range(b * REDUCE_BLOCK_ROWS, min((b + 1) * REDUCE_BLOCK_ROWS, n)):
                dx[i, k] = ak * dy[i, k] - (x[i, k] - m) * bk - ck


# ----------------------------------------------------------------------------------------------------
# Launchers.


def batch_stats(x):
    """Float64 (mean, biased var) of the columns of x (N >= 1), as kernels.batchnorm._batch_stats."""
    n, c = x.shape
    cols = elementwise_grid(c)
    nb = num_row_blocks(n)
    shift = _empty(c, x.dtype, x)
    launch(_first_block_mean, cols[0], cols[1], x, shift)
    s1 = _empty((nb, c), x.dtype, x)
    s2 = _empty((nb, c), x.dtype, x)
    if x.size:
        grid, threads = column_tiles(nb, c)
        launch(_shifted_sums, grid, threads, x, shift, s1, s2, x.dtype.type(0))
    mean = _empty(c, np.float64, x)
    var = _empty(c, np.float64, x)
    launch(_finish_stats, cols[0], cols[1], s1, s2, shift, 1.0 / n, mean, var)
    return mean, var


def forward(x, gamma, beta, rm, rv, training, momentum, eps, y):
    """batchnorm_forward on the device: y (N, C) is written, rm / rv (or None) are updated in place in
    training mode, and (mean, invstd) are returned in x's dtype. Arguments as batchnorm_forward has
    validated them (training needs N >= 2 when the batch statistics are used). Does not synchronise."""
    n, c = x.shape
    update = training and rm is not None
    if training or rm is None:  # torch: without running statistics, eval normalises with the batch's
        mu_src, var_src = batch_stats(x)
    else:
        mu_src, var_src = rm, rv
    mean_hi, scale, shift, mean, invstd = (_empty(c, x.dtype, x) for _ in range(5))
    blocks, threads = elementwise_grid(c)
    launch(_fold_forward, blocks, threads, mu_src, var_src, eps, gamma, beta, momentum,
           n / (n - 1) if update else 1.0, rm if update else None, rv if update else None,
           mean_hi, scale, shift, mean, invstd)
    if x.size:
        grid, threads = column_tiles(num_row_blocks(n), c)
        launch(_affine, grid, threads, x, mean_hi, scale, shift, y)
    return mean, invstd


def backward(dy, x, gamma, mean, invstd, dx):
    """batchnorm_backward on the device: dx (N, C) is written; returns (dgamma, dbeta) in x's dtype, or
    (None, None) when gamma is None (affine=False), as the CPU does. Does not synchronise."""
    n, c = x.shape
    nb = num_row_blocks(n)  # N == 0: no blocks, and the totals below stay 0
    s1 = _empty((nb, c), x.dtype, x)
    s2 = _empty((nb, c), x.dtype, x)
    if x.size:
        grid, threads = column_tiles(nb, c)
        launch(_grad_sums, grid, threads, dy, x, mean, s1, s2, x.dtype.type(0))
    sum_dy = _empty(c, np.float64, x)
    sum_dy_xmu = _empty(c, np.float64, x)
    blocks, cthreads = elementwise_grid(c)
    launch(_sum_blocks, blocks, cthreads, s1, s2, sum_dy, sum_dy_xmu)
    a, b1, c0, dgamma, dbeta = (_empty(c, x.dtype, x) for _ in range(5))
    launch(_fold_backward, blocks, cthreads, sum_dy, sum_dy_xmu, invstd, gamma, n, a, b1, c0, dgamma, dbeta)
    if x.size:
        launch(_grad_x, grid, threads, dy, x, mean, a, b1, c0, dx)
    if gamma is None:
        return None, None
    return dgamma, dbeta
