"""CUDA kernels of softmax, log_softmax, their backward passes, the fused softmax cross-entropy and the NLL
loss (kernels/softmax_xent has the maths, the validation and the CPU side; its public functions launch
these for device arrays).

For one row x of C logits, with m = max_c x_c and S = sum_c exp(x_c - m) (so lse = m + log S):

    softmax      y_c = exp(x_c - m) / S                 log_softmax  y_c = (x_c - m) - log S
    backward     softmax      dx_c = y_c (dy_c - sum_k dy_k y_k)
                 log_softmax  dx_c = dy_c - exp(y_c) sum_k dy_k
    cross-entropy with the effective weighted target q (C,) and Q = sum_c q_c:
        hard  q_c = (1 - eps) w_y [c == y] + (eps / C) w_c      soft  q_c = w_c ((1 - eps) t_c + eps / C)
        loss_i = Q lse - sum_c q_c x_c = sum_c q_c (m - x_c) + Q log S
        g_c    = scale (Q p_c - q_c),   p_c = exp(x_c - m) / S
    NLL          loss_i = -w_y logp_{i,y},   g_{i,y} = -w_y scale, zero elsewhere

Launch layout (every row kernel): a block of THREADS threads is a (width, rows) grid; threadIdx.y picks
one of ``rows`` rows and the ``width`` threads of that row stride over its C columns, so consecutive
threads read consecutive elements (coalesced, also across the rows of a block since the rows are
contiguous). ``width`` is the power of two covering C, capped at THREADS: a row of 7 logits gets 8 threads
and shares its block with 31 other rows, instead of leaving 249 of 256 threads idle; a row longer than
THREADS is strided over. The blocks take groups of ``rows`` rows in a grid-stride loop, so one launch of at
most MAX_BLOCKS blocks covers any N.

Per row: each thread's running max over its columns, a shared-memory tree reduction over the row's
``width`` threads (the max m), then each thread's float64 sum of exp(x_c - m) (with, for the losses, the
sums of q_c and q_c (m - x_c)), a second tree reduction, then one pass writing the output row. The
backward kernels need one row sum (sum dy y, or sum dy), the NLL kernel none. The thread owning column y
subtracts the one-hot part of q itself, so every output element has exactly one writer; the reductions use
only block barriers (no warp intrinsics, no atomics) and a tree whose shape depends on C alone, so the
results are race-free and bitwise the same on every run. Every thread of a block reaches every barrier:
threads of rows past N (the last row group) or of ignored rows take part with neutral values and skip the
reads and writes.

Losses: the cross-entropy and NLL kernels write the row's float64 loss into ``loss_rows`` (N,), as the CPU
drivers do; ``total_loss`` then sums them on the device into a 1-element array of the result dtype (one
block, kernels.cuda.reduce's fixed tree) times the reduction's scale, which the public functions return as
a 0-d device array. Nothing is read back.

The "mean" scale of hard targets, 1 / sum_i w_{y_i} over the rows not ignored (0 when that is 0), depends
on the labels, and the gradient is multiplied by it inside the row kernel. It is computed on the device,
before the row kernel, by ``hard_mean_scale``: one block adds the weights of the counted rows in float64
(same tree as kernels.cuda.reduce) and thread 0 writes the scale into a 1-element float64 device array.
The row kernels (``xent_hard``, ``nll``) and ``total_loss`` take the scale either as a Python float (known on
the host: "sum", "none", and 1 / N for probability targets) or as that device array, from which each thread
reads it once; ``total_loss`` with a float scale is kernels.cuda.reduce.sum_scaled. So a hard-target "mean"
loss costs three launches (scale, rows, sum) and no host round trip. The alternative, a row kernel with
scale 1 and a second pass multiplying the gradient, would read and write the N x C gradient twice.

The launchers take C-contiguous 2-D arrays (device arrays, or NumPy under the simulator) and the scalars as
kernels/softmax_xent's public functions compute them for their CPU kernels (``eps``, ``ignore_index``, the
gradient scale; ``w`` of size 0 meaning no class weights), minus the CPU's per-block ``refs`` scratch and
minus ``wsum``, the sum of the class weights in the label-smoothing term: the hard-target kernel adds the
weights up in its own row reduction (C without weights), so the host never reads ``w``. The loss terms are
put together by the CPU's own ordered helpers ``_nll_from_lse`` and ``_smoothed_loss``, and the
log_softmax backward uses the CPU's ``fast_exp``.

What differs from the CPU (same formulas): the CPU takes its reference r from the first logit and rebases
block by block; here m is the exact row maximum. exp in the forward kernels is ``math.exp``: expf
(libdevice) for float32 rows, where the CPU uses its vectorisable polynomial ``fast_exp``, the two within
~1-2 ulp of each other, and exp for float64 rows. Sums accumulate in float64 (the CPU sums float32 exps in
float32 blocks of 1024), the cross-entropy gradient is formed in float64 and rounded once, and the sums over
rows (the loss, the "mean" denominator, the sum of the class weights) are trees where the CPU adds in index
order (NumPy's pairwise sum for the weights). So results agree with the CPU to a few ulp, not bitwise; the
backward passes and NLL do the CPU's per-element arithmetic on a float64 row sum rounded to the dtype as
the CPU rounds it. Non-finite logits behave as on the CPU: -inf is a masked class (probability 0); a row
holding NaN or +inf, or only -inf, gives a NaN loss and a NaN gradient row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from kernels._fastexp import fast_exp
from kernels._util import array_module, is_array
from kernels.cuda import MAX_BLOCKS, THREADS, launch
from kernels.cuda.linear import add_rn
from kernels.cuda.reduce import block_sum, block_total, sum_scaled
from kernels.softmax_xent.cpu import _nll_from_lse, _smoothed_loss


def launch_shape(n, c):
    """(blocks, (width, rows)) for N >= 1 rows of C columns: ``width`` threads per row (a power of two
    covering C, at most THREADS) and ``rows`` rows per block (THREADS // width, or N when fewer)."""
    width = 1
    while width < min(c, THREADS):
        width *= 2
    rows = min(THREADS // width, n)
    return min(-(-n // rows), MAX_BLOCKS), (width, rows)


@cuda.jit(device=True)
def _row_max(sh, v):
    """Max of v over the threads of this row (threadIdx.x); every thread gets it. NaN is skipped here and
    propagates through the exp pass instead."""
    tx = cuda.threadIdx.x
    base = cuda.threadIdx.y * cuda.blockDim.x
    sh[base + tx] = v
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if tx < half:
            b = sh[base + tx + half]
            if b > sh[base + tx]:
                sh[base + tx] = b
        cuda.syncthreads()
        half //= 2
    m = sh[base]
    # nobody may overwrite the row's slot (next reduction) before every thread has read it
    cuda.syncthreads()
    return m


@cuda.jit(device=True)
def _row_sums(sh, a, b, c):
    """Sums of a, b and c over the threads of this row, in a fixed tree order; every thread gets them."""
    tx = cuda.threadIdx.x
    k = cuda.threadIdx.y * cuda.blockDim.x + tx
    sh[0, k] = a
    sh[1, k] = b
    sh[2, k] = c
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if tx < half:
            sh[0, k] += sh[0, k + half]
            sh[1, k] += sh[1, k + half]
            sh[2, k] += sh[2, k + half]
        cuda.syncthreads()
        half //= 2
    k0 = k - tx
    a, b, c = sh[0, k0], sh[1, k0], sh[2, k0]
    cuda.syncthreads()
    return a, b, c


@cuda.jit(device=True)
def _local_max(x, i, live):
    """This thread's max over its columns of row i; starts at -inf (never a finite sentinel), and -inf for a
    row it does not compute."""
    m = -math.inf
    if live:
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            v = x[i, j]
            if v > m:
                m = v
    return m


@cuda.jit(device=True)
def _local_exp_sum(x, i, xm, live):
    s = 0.0
    if live:
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            s += float(math.exp(x[i, j] - xm))
    return s


@cuda.jit(device=True)
def _row_max_and_exp_sum(x, i, live, sh_max, sh):
    """(max of row i in x's dtype, float64 sum of exp(x - max)); every thread of the row takes part."""
    m = _row_max(sh_max, _local_max(x, i, live))
    xm = x.dtype.type(m)  # exact: m is one of the row's logits (or -inf)
    s, _, _ = _row_sums(sh, _local_exp_sum(x, i, xm, live), 0.0, 0.0)
    return xm, s


@cuda.jit
def _softmax(x, y):
    sh_max = cuda.shared.array(THREADS, float64)
    sh = cuda.shared.array((3, THREADS), float64)
    n, c = x.shape
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        xm, s = _row_max_and_exp_sum(x, i, live, sh_max, sh)
        if live:
            inv = 1.0 / s
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                y[i, j] = float(math.exp(x[i, j] - xm)) * inv


@cuda.jit
def _log_softmax(x, y):
    sh_max = cuda.shared.array(THREADS, float64)
    sh = cuda.shared.array((3, THREADS), float64)
    n, c = x.shape
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        xm, s = _row_max_and_exp_sum(x, i, live, sh_max, sh)
        if live:
            ls = math.log(s)
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                # (x - m) first: exact for the logits near the maximum, and log S is never lost next to a
                # huge logit (the CPU's order too)
                y[i, j] = float(x[i, j] - xm) - ls


@cuda.jit
def _softmax_backward(dy, y, dx):
    sh = cuda.shared.array((3, THREADS), float64)
    n, c = dy.shape
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        dot = 0.0
        if live:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                dot += float(dy[i, j]) * float(y[i, j])
        dot, _, _ = _row_sums(sh, dot, 0.0, 0.0)
        if live:
            # the CPU's order: the float64 row sum rounded to the dtype once, the rest in the dtype
            dot_t = dy.dtype.type(dot)
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                dx[i, j] = y[i, j] * (dy[i, j] - dot_t)


@cuda.jit
def _log_softmax_backward(dy, y, dx):
    sh = cuda.shared.array((3, THREADS), float64)
    n, c = dy.shape
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        tot = 0.0
        if live:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                tot += float(dy[i, j])
        tot, _, _ = _row_sums(sh, tot, 0.0, 0.0)
        if live:
            tot_t = dy.dtype.type(tot)
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                dx[i, j] = dy[i, j] - fast_exp(y[i, j]) * tot_t


@cuda.jit
def _hard_mean_scale(target, w, ignore_index, scale):
    sums = cuda.shared.array(THREADS, float64)
    acc = 0.0
    for i in range(cuda.threadIdx.x, target.shape[0], THREADS):
        t = target[i]
        if t != ignore_index:
            acc = add_rn(acc, 1.0 if w.shape[0] == 0 else float(w[t]))
    denom = block_sum(sums, acc)
    if cuda.threadIdx.x == 0:
        # an all-ignored batch (or zero total weight) gives loss 0 and a zero gradient, as on the CPU
        scale[0] = 0.0 if denom == 0.0 else 1.0 / denom


@cuda.jit
def _scaled_total(values, scale, out):
    total = block_total(cuda.shared.array(THREADS, float64), values)
    if cuda.threadIdx.x == 0:
        out[0] = total * scale[0]


@cuda.jit
def _xent_hard(x, target, w, eps, ignore_index, scale, scale_at, g, loss_rows):
    sh_max = cuda.shared.array(THREADS, float64)
    sh = cuda.shared.array((3, THREADS), float64)
    if scale_at.shape[0] != 0:
        scale = scale_at[0]
    n, c = x.shape
    eps_c = eps / c
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        t = target[i] if live else ignore_index
        work = live and t != ignore_index
        m = _row_max(sh_max, _local_max(x, i, work))
        xm = x.dtype.type(m)
        s = 0.0
        d = 0.0  # sum_c w_c (m - x_c): the smoothing term of the loss
        ws = 0.0  # sum_c w_c, for Q (each row group adds the same weights in the same order)
        if work:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                s += float(math.exp(x[i, j] - xm))
                if eps != 0.0:
                    wj = 1.0 if w.shape[0] == 0 else float(w[j])
                    d += wj * (m - float(x[i, j]))
                    ws += wj
        s, d, ws = _row_sums(sh, s, d, ws)
        if not live:
            continue
        if not work:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                g[i, j] = 0.0
            if cuda.threadIdx.x == 0:
                loss_rows[i] = 0.0
            continue
        wy = 1.0 if w.shape[0] == 0 else float(w[t])
        wsum = float(c) if w.shape[0] == 0 else ws
        big_q = (1.0 - eps) * wy + eps_c * wsum
        a = scale * big_q / s
        k = scale * eps_c
        one_hot = scale * (1.0 - eps) * wy
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            gj = float(math.exp(x[i, j] - xm)) * a
            if eps != 0.0:
                gj -= k * (1.0 if w.shape[0] == 0 else float(w[j]))
            if j == t:
                # the one-hot part in float64, where p_t - 1 loses nothing to cancellation
                gj -= one_hot
            g[i, j] = gj
        if cuda.threadIdx.x == 0:
            log_s = math.log(s)
            if eps == 0.0:
                loss_rows[i] = wy * _nll_from_lse(m, float(x[i, t]), log_s)
            else:
                loss_rows[i] = _smoothed_loss((1.0 - eps) * wy * (m - float(x[i, t])), eps_c * d, big_q * log_s)


@cuda.jit
def _xent_soft(x, t, w, eps, scale, g, loss_rows):
    sh_max = cuda.shared.array(THREADS, float64)
    sh = cuda.shared.array((3, THREADS), float64)
    n, c = x.shape
    a1 = 1.0 - eps
    a0 = eps / c
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        live = i < n
        m = _row_max(sh_max, _local_max(x, i, live))
        xm = x.dtype.type(m)
        s = 0.0
        big_q = 0.0
        d = 0.0  # sum_c q_c (m - x_c)
        if live:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                s += float(math.exp(x[i, j] - xm))
                q = a1 * float(t[i, j]) + a0
                if w.shape[0] != 0:
                    q *= float(w[j])
                big_q += q
                d += q * (m - float(x[i, j]))
        s, big_q, d = _row_sums(sh, s, big_q, d)
        if not live:
            continue
        a = scale * big_q / s
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            q = a1 * float(t[i, j]) + a0
            if w.shape[0] != 0:
                q *= float(w[j])
            g[i, j] = float(math.exp(x[i, j] - xm)) * a - scale * q
        if cuda.threadIdx.x == 0:
            loss_rows[i] = _smoothed_loss(0.0, d, big_q * math.log(s))


@cuda.jit
def _nll(logp, target, w, ignore_index, scale, scale_at, g, loss_rows):
    # no row reduction and so no barrier: threads of rows past N may leave early
    if scale_at.shape[0] != 0:
        scale = scale_at[0]
    n, c = logp.shape
    for first in range(cuda.blockIdx.x * cuda.blockDim.y, n, cuda.gridDim.x * cuda.blockDim.y):
        i = first + cuda.threadIdx.y
        if i >= n:
            continue
        t = target[i]
        counted = t != ignore_index
        wy = 1.0 if w.shape[0] == 0 else (float(w[t]) if counted else 0.0)
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            g[i, j] = -wy * scale if counted and j == t else 0.0
        if cuda.threadIdx.x == 0:
            loss_rows[i] = -wy * float(logp[i, t]) if counted else 0.0


def _launch(kernel, x, *args):
    if x.size == 0:
        return
    blocks, threads = launch_shape(*x.shape)
    launch(kernel, blocks, threads, x, *args)


def _scale_args(scale, like):
    """(float, 1-element float64 device array or size 0) for a kernel taking a scale from the host or the
    device (see the module docstring); ``like`` gives the array module of the empty array."""
    if is_array(scale):
        return 1.0, scale
    return float(scale), array_module(like).empty(0, dtype=np.float64)


def softmax(x, y):
    """y = softmax(x) along the last axis of the 2-D rows x (N, C); y of x's shape and dtype. On the current
    stream; returns without synchronising."""
    _launch(_softmax, x, y)


def log_softmax(x, y):
    """y = log_softmax(x) = (x - m) - log S along the last axis of x (N, C). Returns without synchronising."""
    _launch(_log_softmax, x, y)


def softmax_backward(dy, y, dx):
    """dx = y * (dy - sum(dy * y)) along the last axis of dy, y, dx (N, C), one dtype. Returns without
    synchronising."""
    _launch(_softmax_backward, dy, y, dx)


def log_softmax_backward(dy, y, dx):
    """dx = dy - exp(y) * sum(dy) along the last axis of dy, y, dx (N, C), one dtype. Returns without
    synchronising."""
    _launch(_log_softmax_backward, dy, y, dx)


def hard_mean_scale(target, w, ignore_index, scale):
    """scale[0] = 1 / sum of w[target[i]] (1 without weights) over the i with target[i] != ignore_index, or
    0 when that sum is 0: the "mean" scale of hard targets, into a 1-element float64 device array. One
    block; returns without synchronising."""
    launch(_hard_mean_scale, 1, THREADS, target, w, ignore_index, scale)


def total_loss(loss_rows, scale, out):
    """out[0] = sum(loss_rows) * scale rounded to out's dtype, for the float64 per-row losses; ``scale`` a
    float (kernels.cuda.reduce.sum_scaled) or a 1-element float64 device array (from hard_mean_scale). One
    block; returns without synchronising."""
    if is_array(scale):
        launch(_scaled_total, 1, THREADS, loss_rows, scale, out)
    else:
        sum_scaled(loss_rows, scale, 1.0, out)


def xent_hard(x, target, w, eps, ignore_index, scale, g, loss_rows):
    """Fused cross-entropy of logits x (N, C) for int64 class indices ``target`` (N,): g = d loss_i / d x *
    ``scale`` (N, C), loss_rows[i] = loss_i (float64, 0 for ignored rows). ``w`` (C,) or size 0; ``eps`` the
    label smoothing; ``scale`` a float or a 1-element float64 device array (hard_mean_scale). Returns
    without synchronising."""
    _launch(_xent_hard, x, target, w, eps, ignore_index, *_scale_args(scale, x), g, loss_rows)


def xent_soft(x, t, w, eps, scale, g, loss_rows):
    """Fused cross-entropy of logits x (N, C) for probability targets t (N, C), as ``xent_hard`` (``scale`` a
    float: 1 / N or 1). Returns without synchronising."""
    _launch(_xent_soft, x, t, w, eps, float(scale), g, loss_rows)


def nll(logp, target, w, ignore_index, scale, g, loss_rows):
    """NLL of log-probabilities logp (N, C) for int64 class indices ``target`` (N,): g (N, C) = -w_y * scale
    at (i, y_i), zero elsewhere and on ignored rows; loss_rows[i] = -w_y logp[i, y_i] (float64, 0 for
    ignored rows). ``w`` and ``scale`` as for ``xent_hard``. Returns without synchronising."""
    _launch(_nll, logp, target, w, ignore_index, *_scale_args(scale, logp), g, loss_rows)
