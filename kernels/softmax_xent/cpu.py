"""CPU (Numba) kernels of kernels.softmax_xent; the maths and the public API are in ``__init__.py``.

The fused row algorithm (one read of the logits, no N x C temporary besides the gradient output):

  pass 1, per block of _BLOCK logits: e_c = exp(x_c - r) into the gradient row, block sum s_b. The
  reference r starts at x_0 (an element, so the true maximum is >= r and the sum is >= 1). If s_b is
  not below _REBASE (a logit more than ln(_REBASE) ~ 22 above r, or a non-finite one) the block is
  recomputed against its own maximum m > r and the running sum rescaled by exp(r - m); this online
  log-sum-exp never overflows for finite logits of any magnitude, and for ordinary logits costs no
  separate max pass at all. The reference of each block is kept (refs), and
  lse = R + log S with R the final reference.
  pass 2, reading the row back from L2: g_c = e_c * s Q exp(r_b - R) / S - s q_c, and the loss from
  sum_c q_c (R - x_c) + Q log S (hard targets without smoothing: w_y ((R - x_y) + log S)).

Rows run in parallel (prange over rows: each iteration writes only its own row, so no races); the
per-row losses go to an (N,) float64 buffer summed serially afterwards, so the result is bitwise the
same at every thread count. Small inputs take the serial copies of the drivers (no OpenMP fork).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._fastexp import fast_exp
from .._util import FASTMATH, serial_and_parallel

# For code whose rounding depends on evaluation order: (x - R) - log S must not become x - (R + log S),
# which loses log S entirely next to a logit of 1e300 (or its low bits next to 1e4 in float32).
_ORDERED = FASTMATH - {"reassoc"}

# Row functions that divide by the sum S use error_model="numpy": S = 0 (a row of only -inf logits) must
# give NaN like the oracle, not raise ZeroDivisionError from inside the kernel.

# Pass 1 works on blocks small enough to stay in L1 (x block + exp block: 8 KiB in float32) when a block
# has to be recomputed against a new reference.
_BLOCK = 1024
# A block sum above this means some logit is more than ln(2^32) ~ 22 above the reference: rebase. Keeping
# x - r below ~22 also bounds the rounding of the exp argument to half an ulp of 22 (~1e-6 in float32).
_REBASE = 2.0**32


# --------------------------------------------------------------------------------------------------
# row helpers (one contiguous row each) and their serial / parallel drivers


# Block loops run over views from index 0: an index Numba cannot prove non-negative gets wraparound
# handling, which turns the vectorised loop into gathers and scatters.


@njit(cache=True, fastmath=FASTMATH)
def _exp_block(x, e, r):
    """e = exp(x - r) elementwise; returns sum(e) (vectorised loop)."""
    s = e.dtype.type(0.0)
    for c in range(x.shape[0]):
        v = fast_exp(x[c] - r)
        e[c] = v
        s += v
    return s


@njit(cache=True, fastmath=FASTMATH)
def _block_max(x):
    m = x.dtype.type(-np.inf)
    for c in range(x.shape[0]):
        v = x[c]
        m = v if v > m else m
    return m


@njit(cache=True, fastmath=FASTMATH)
def _row_lse(x, e, refs):
    """Pass 1 (see the module docstring): e = exp(x - refs[block]); returns (R, S), lse = R + log S."""
    n = x.shape[0]
    big = e.dtype.type(_REBASE)
    r = x[0]
    total = 0.0
    for b in range(refs.shape[0]):
        xb = x[b * _BLOCK:min(b * _BLOCK + _BLOCK, n)]
        eb = e[b * _BLOCK:min(b * _BLOCK + _BLOCK, n)]
        s = _exp_block(xb, eb, r)
        if not (s <= big):
            m = _block_max(xb)
            if m > r:
                total *= math.exp(float(r) - float(m))
                r = m
            if r == -np.inf:
                # Every logit so far is -inf (masked): their probabilities are 0, and exp(x - r) would
                # be exp(-inf + inf) = NaN.
                eb[:] = 0.0
                s = e.dtype.type(0.0)
            else:
                s = _exp_block(xb, eb, r)
        refs[b] = r
        total += float(s)
    return r, total


@njit(cache=True, fastmath=FASTMATH)
def _scale_blocks(e, refs, r, a):
    """e[c] *= a * exp(refs[b] - r) per block: turns pass-1 exps into a * softmax."""
    n = e.shape[0]
    for b in range(refs.shape[0]):
        f = e.dtype.type(a * math.exp(float(refs[b]) - float(r)))
        eb = e[b * _BLOCK:min(b * _BLOCK + _BLOCK, n)]
        for c in range(eb.shape[0]):
            eb[c] *= f


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_row(x, y, refs):
    r, total = _row_lse(x, y, refs)
    _scale_blocks(y, refs, r, 1.0 / total)


@njit(cache=True, fastmath=_ORDERED)
def _shifted_minus(x, r, ls, y):
    """y = (x - r) - ls in this order (x - r is exact for the logits near the maximum)."""
    for c in range(x.shape[0]):
        y[c] = (x[c] - r) - ls


@njit(cache=True, fastmath=_ORDERED)
def _nll_from_lse(r, xt, log_total):
    """lse - x_t = (R - x_t) + log S, in this order (see _ORDERED)."""
    return (float(r) - float(xt)) + log_total


@njit(cache=True, fastmath=_ORDERED)
def _smoothed_loss(a, b, c):
    """(a + b) + c for loss terms computed relative to R (see _ORDERED)."""
    return (a + b) + c


@njit(cache=True, fastmath=FASTMATH)
def _log_softmax_row(x, y, refs):
    r, total = _row_lse(x, y, refs)  # y holds the exps only until overwritten below
    _shifted_minus(x, r, y.dtype.type(math.log(total)), y)


# The backward row sums accumulate in float64 even for float32 rows: they are memory-bound anyway, and
# the sum is subtracted from every element, so its rounding would otherwise grow with the row length.


@njit(cache=True, fastmath=FASTMATH)
def _softmax_backward_row(dy, y, dx):
    dot = 0.0
    for c in range(dy.shape[0]):
        dot += float(dy[c]) * float(y[c])
    dot_t = dy.dtype.type(dot)
    for c in range(dy.shape[0]):
        dx[c] = y[c] * (dy[c] - dot_t)


@njit(cache=True, fastmath=FASTMATH)
def _log_softmax_backward_row(dy, y, dx):
    tot = 0.0
    for c in range(dy.shape[0]):
        tot += float(dy[c])
    tot_t = dy.dtype.type(tot)
    for c in range(dy.shape[0]):
        dx[c] = dy[c] - fast_exp(y[c]) * tot_t


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _xent_hard_row(x, t, w, wsum, eps, ignore_index, scale, g, refs):
    """One row of hard-target cross-entropy: writes d loss_i / d x * scale into g, returns loss_i.

    ``w`` of size 0 means no class weights (all 1, ``wsum`` = C).
    """
    n = x.shape[0]
    if t == ignore_index:
        for c in range(n):
            g[c] = 0.0
        return 0.0
    wy = 1.0 if w.shape[0] == 0 else float(w[t])
    r, total = _row_lse(x, g, refs)
    log_total = math.log(total)
    eps_c = eps / n
    big_q = (1.0 - eps) * wy + eps_c * wsum
    if eps == 0.0:
        _scale_blocks(g, refs, r, scale * big_q / total)
        loss = wy * _nll_from_lse(r, x[t], log_total)
    else:
        # g_c = s (Q p_c - (eps/C) w_c), and the smoothing term sum_c w_c (R - x_c) of the loss
        a = scale * big_q / total
        k = g.dtype.type(scale * eps_c)
        d = 0.0
        for b in range(refs.shape[0]):
            f = g.dtype.type(a * math.exp(float(refs[b]) - float(r)))
            lo = b * _BLOCK
            hi = min(lo + _BLOCK, n)
            xb = x[lo:hi]
            gb = g[lo:hi]
            db = g.dtype.type(0.0)
            if w.shape[0] == 0:
                for c in range(gb.shape[0]):
                    gb[c] = gb[c] * f - k
                    db += r - xb[c]
            else:
                wb = w[lo:hi]
                for c in range(gb.shape[0]):
                    gb[c] = gb[c] * f - k * wb[c]
                    db += wb[c] * (r - xb[c])
            d += float(db)
        loss = _smoothed_loss((1.0 - eps) * wy * (float(r) - float(x[t])), eps_c * d, big_q * log_total)
    # the one-hot part of q: computed in float64, where p_t - 1 loses nothing to cancellation
    g[t] = float(g[t]) - scale * (1.0 - eps) * wy
    return loss


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _xent_soft_row(x, t, w, eps, scale, g, refs):
    """One row of probability-target cross-entropy (q_c = w_c ((1 - eps) t_c + eps / C)); returns loss_i."""
    n = x.shape[0]
    a1 = g.dtype.type(1.0 - eps)
    a0 = g.dtype.type(eps / n)
    big_q = g.dtype.type(0.0)
    if w.shape[0] == 0:
        for c in range(n):
            big_q += a1 * t[c] + a0
    else:
        for c in range(n):
            big_q += w[c] * (a1 * t[c] + a0)
    r, total = _row_lse(x, g, refs)
    a = scale * float(big_q) / total
    k = g.dtype.type(scale)
    d = 0.0
    for b in range(refs.shape[0]):
        f = g.dtype.type(a * math.exp(float(refs[b]) - float(r)))
        lo = b * _BLOCK
        hi = min(lo + _BLOCK, n)
        xb = x[lo:hi]
        gb = g[lo:hi]
        tb = t[lo:hi]
        db = g.dtype.type(0.0)
        if w.shape[0] == 0:
            for c in range(gb.shape[0]):
                q = a1 * tb[c] + a0
                gb[c] = gb[c] * f - k * q
                db += q * (r - xb[c])
        else:
            wb = w[lo:hi]
            for c in range(gb.shape[0]):
                q = wb[c] * (a1 * tb[c] + a0)
                gb[c] = gb[c] * f - k * q
                db += q * (r - xb[c])
        d += float(db)
    return _smoothed_loss(0.0, d, float(big_q) * math.log(total))


@njit(cache=True, fastmath=FASTMATH)
def _nll_row(logp, t, w, ignore_index, scale, g):
    for c in range(logp.shape[0]):
        g[c] = 0.0
    if t == ignore_index:
        return 0.0
    wy = 1.0 if w.shape[0] == 0 else float(w[t])
    g[t] = -wy * scale
    return -wy * float(logp[t])


@njit(cache=True)
def _sum_serial(a):
    """Sum in index order (no fastmath: no reassociation), so the total never depends on threads."""
    tot = 0.0
    for i in range(a.shape[0]):
        tot += a[i]
    return tot


# Drivers: prange over rows, each iteration touching only its own row (no races). serial_and_parallel
# compiles each twice; small inputs take the serial copy (no OpenMP fork).
_DRIVER = dict(cache=True, fastmath=FASTMATH)


def _softmax_rows(x, y, refs):
    for i in prange(x.shape[0]):
        _softmax_row(x[i], y[i], refs[i])


def _log_softmax_rows(x, y, refs):
    for i in prange(x.shape[0]):
        _log_softmax_row(x[i], y[i], refs[i])


def _softmax_backward_rows(dy, y, dx):
    for i in prange(dy.shape[0]):
        _softmax_backward_row(dy[i], y[i], dx[i])


def _log_softmax_backward_rows(dy, y, dx):
    for i in prange(dy.shape[0]):
        _log_softmax_backward_row(dy[i], y[i], dx[i])


def _xent_hard_rows(x, target, w, wsum, eps, ignore_index, scale, g, refs, loss_rows):
    for i in prange(x.shape[0]):
        loss_rows[i] = _xent_hard_row(x[i], target[i], w, wsum, eps, ignore_index, scale, g[i], refs[i])
    return _sum_serial(loss_rows)


def _xent_soft_rows(x, t, w, eps, scale, g, refs, loss_rows):
    for i in prange(x.shape[0]):
        loss_rows[i] = _xent_soft_row(x[i], t[i], w, eps, scale, g[i], refs[i])
    return _sum_serial(loss_rows)


def _nll_rows(logp, target, w, ignore_index, scale, g, loss_rows):
    for i in prange(logp.shape[0]):
        loss_rows[i] = _nll_row(logp[i], target[i], w, ignore_index, scale, g[i])
    return _sum_serial(loss_rows)


_softmax_serial, _softmax_parallel = serial_and_parallel(_softmax_rows, **_DRIVER)
_log_softmax_serial, _log_softmax_parallel = serial_and_parallel(_log_softmax_rows, **_DRIVER)
_softmax_backward_serial, _softmax_backward_parallel = serial_and_parallel(_softmax_backward_rows, **_DRIVER)
_log_softmax_backward_serial, _log_softmax_backward_parallel = serial_and_parallel(
    _log_softmax_backward_rows, **_DRIVER)
_xent_hard_serial, _xent_hard_parallel = serial_and_parallel(_xent_hard_rows, **_DRIVER)
_xent_soft_serial, _xent_soft_parallel = serial_and_parallel(_xent_soft_rows, **_DRIVER)
_nll_serial, _nll_parallel = serial_and_parallel(_nll_rows, **_DRIVER)
