"""CUDA kernels of softmax, log_softmax and the fused softmax cross-entropy (kernels/softmax_xent has the
maths, the validation and the CPU side).

For one row x of C logits, with m = max_c x_c and S = sum_c exp(x_c - m) (so lse = m + log S):

    softmax      y_c = exp(x_c - m) / S                 log_softmax  y_c = (x_c - m) - log S
    cross-entropy with the effective weighted target q (C,) and Q = sum_c q_c:
        hard  q_c = (1 - eps) w_y [c == y] + (eps / C) w_c      soft  q_c = w_c ((1 - eps) t_c + eps / C)
        loss_i = Q lse - sum_c q_c x_c = sum_c q_c (m - x_c) + Q log S
        g_c    = scale (Q p_c - q_c),   p_c = exp(x_c - m) / S

Launch layout: a block of THREADS threads is a (width, rows) grid; threadIdx.y picks one of ``rows`` rows
and the ``width`` threads of that row stride over its C columns, so consecutive threads read consecutive
logits (coalesced, also across the rows of a block since the rows are contiguous). ``width`` is the power
of two covering C, capped at THREADS: a row of 7 logits gets 8 threads and shares its block with 31 other
rows, instead of leaving 249 of 256 threads idle; a row longer than THREADS is strided over. The blocks
take groups of ``rows`` rows in a grid-stride loop, so one launch of at most MAX_BLOCKS blocks covers any N.

Per row: each thread's running max over its columns, a shared-memory tree reduction over the row's
``width`` threads (the max m), then each thread's float64 sum of exp(x_c - m) (with, for the losses, the
sums of q_c and q_c (m - x_c)), a second tree reduction, then one pass writing the output row. The thread
owning column y subtracts the one-hot part of q itself, so every output element has exactly one writer;
the reductions use only block barriers (no warp intrinsics, no atomics) and a tree whose shape depends on C
alone, so the results are race-free and bitwise the same on every run. Every thread of a block reaches
every barrier: threads of rows past N (the last row group) or of ignored rows take part with neutral values
and skip the reads and writes.

The cross-entropy kernels write the row's float64 loss into ``loss_rows`` (N,) and leave the reduction over
rows to the caller, as the CPU drivers do: copy ``loss_rows`` to the host when the loss is wanted and sum it
in index order (``kernels.softmax_xent.cpu._sum_serial``), then multiply by the "mean" scale, exactly as the
public CPU function does with its own rows.

The launchers take C-contiguous 2-D arrays (device arrays, or NumPy under the simulator) and the scalars as
kernels/softmax_xent's public functions compute them for their CPU kernels (``wsum``, ``eps``,
``ignore_index``, the gradient scale; ``w`` of size 0 meaning no class weights), minus the CPU's per-block
``refs`` scratch. The loss terms are put together by the CPU's own ordered helpers ``_nll_from_lse`` and
``_smoothed_loss``.

What differs from the CPU (same formulas): the CPU takes its reference r from the first logit and rebases
block by block; here m is the exact row maximum. exp is ``math.exp``: expf (libdevice) for float32 rows,
where the CPU uses its vectorisable polynomial ``fast_exp``, the two within ~1-2 ulp of each other, and exp
for float64 rows. Sums accumulate in float64 (the CPU sums float32 exps in float32 blocks of 1024), and the
gradient is formed in float64 and rounded once. So results agree with the CPU to a few ulp, not bitwise.
Non-finite logits behave as on the CPU: -inf is a masked class (probability 0); a row holding NaN or +inf,
or only -inf, gives a NaN loss and a NaN gradient row.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from kernels.cuda import MAX_BLOCKS, THREADS, current_stream
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
def _xent_hard(x, target, w, wsum, eps, ignore_index, scale, g, loss_rows):
    sh_max = cuda.shared.array(THREADS, float64)
    sh = cuda.shared.array((3, THREADS), float64)
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
        if work:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                s += float(math.exp(x[i, j] - xm))
                if eps != 0.0:
                    wj = 1.0 if w.shape[0] == 0 else float(w[j])
                    d += wj * (m - float(x[i, j]))
        s, d, _ = _row_sums(sh, s, d, 0.0)
        if not live:
            continue
        if not work:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                g[i, j] = 0.0
            if cuda.threadIdx.x == 0:
                loss_rows[i] = 0.0
            continue
        wy = 1.0 if w.shape[0] == 0 else float(w[t])
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


def _launch(kernel, x, *args):
    if x.size == 0:
        return
    blocks, threads = launch_shape(*x.shape)
    kernel[blocks, threads, current_stream()](x, *args)


def softmax(x, y):
    """y = softmax(x) along the last axis of the 2-D rows x (N, C); y of x's shape and dtype. On the current
    stream; returns without synchronising."""
    _launch(_softmax, x, y)


def log_softmax(x, y):
    """y = log_softmax(x) = (x - m) - log S along the last axis of x (N, C). Returns without synchronising."""
    _launch(_log_softmax, x, y)


def xent_hard(x, target, w, wsum, eps, ignore_index, scale, g, loss_rows):
    """Fused cross-entropy of logits x (N, C) for int64 class indices ``target`` (N,): g = d loss_i / d x *
    ``scale`` (N, C), loss_rows[i] = loss_i (float64, 0 for ignored rows). ``w`` (C,) or size 0; ``wsum`` =
    sum of w (C without weights); ``eps`` the label smoothing. Returns without synchronising."""
    _launch(_xent_hard, x, target, w, wsum, eps, ignore_index, scale, g, loss_rows)


def xent_soft(x, t, w, eps, scale, g, loss_rows):
    """Fused cross-entropy of logits x (N, C) for probability targets t (N, C), as ``xent_hard``. Returns
    without synchronising."""
    _launch(_xent_soft, x, t, w, eps, scale, g, loss_rows)
