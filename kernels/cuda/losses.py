"""CUDA kernels of the elementwise losses (kernels/losses.py has the maths, the validation and the CPU side):
binary cross-entropy on logits, mean squared error and L1, each writing the gradient and either the
per-element losses (reduction "none") or float64 partial sums of them (reductions "mean" and "sum").

    BCE:  l_i = w_i [ pw_c t_i softplus(-x_i) + (1 - t_i) softplus(x_i) ]
          dx_i = w_i [ (1 - t_i) s(x_i) - pw_c t_i s(-x_i) ] * scale
    MSE:  l_i = (x_i - t_i)^2,   dx_i = (x_i - t_i) * 2 scale
    L1:   l_i = |x_i - t_i|,     dx_i = sign(x_i - t_i) * scale

Per element, the arithmetic is the CPU kernels' own scalar helpers ``_bce_elem`` (fed exp(-|x|) by the
same ``fast_exp``) and ``_diff_elem``, compiled for the device.

Launch layout: one thread block of THREADS threads per reduction block of LOSS_BLOCK consecutive flat
elements (the CPU's blocking, so block b's partial sums the same elements on both targets). Thread k of
block b handles elements i0 + k, i0 + k + THREADS, ... below min(n, i0 + LOSS_BLOCK), i0 = b LOSS_BLOCK:
consecutive threads read and write consecutive addresses. Each thread adds its losses into a float64
register in that order; the block then adds the THREADS registers by kernels.cuda.reduce.block_sum's tree
in shared memory (halving strides, a cuda.syncthreads() between levels, so no thread reads a slot before it
is written) and thread 0 writes partials[b]. Every element, loss slot and partial has one writer, there are
no atomics, and the order of every addition is fixed by (LOSS_BLOCK, THREADS) alone: the partials are
bitwise the same on every run. As in kernels.cuda.linear, each of those additions is ``add_rn``, which a
GPU compiler may not fuse with the multiply that produced the term. The partials are not bitwise the
CPU's: the CPU's block sums are vectorised by LLVM in an order of its choosing. Both are float64 sums of
the same dtype values, so they agree to float64 rounding (at most (terms - 1) ulp of the sum of |terms|,
far less in practice).

Weights: the launchers take ``w``, ``w_full`` and ``pw`` exactly as kernels/losses.py's public function
builds them for its CPU kernel (with x's array module, so in device memory for device input): pw (and w
unless w_full) is the per-position vector tiled to a period that is a multiple of the last-axis length,
indexed by i mod period; a full weight is indexed by i.

The final sum stays on the device: ``reduced_loss`` adds the partials (one float64 per LOSS_BLOCK
elements) with kernels.cuda.reduce.sum_scaled, one more launch of one block, and divides by n for "mean"
((sum * 1) / n, the CPU's total / n; an empty input has no partials and gives 0), rounding once to the
dtype; the loss is returned as a 0-d device array of that dtype. Nothing is read back and nothing
synchronises, so a training step never waits on the host; the value reaches the host only when the caller
asks for it (DESIGN.md, section 4). The sum is deterministic (its order depends on the number of partials
alone) but it is not the CPU's: the CPU adds the partials exactly with math.fsum. The two agree to float64
rounding of the sum of the partials, on top of the partials' own difference (above); rounded to float32
the losses are almost always the same.

Sizing on a real GPU: with THREADS = 256 each thread handles up to 64 elements, and n elements give
ceil(n / LOSS_BLOCK) thread blocks: a few dozen for a million elements, less than an H100 can keep
resident. Loss arrays are batch x outputs, usually far smaller than that, where launch latency dominates.
Both kernels compile for sm_90 in both dtypes (checked with cuda.compile_ptx, without a GPU); none has
run on one yet. On a GPU the BCE elements differ from the CPU's by a few ulp (libdevice's exp/log1p in
float64, approximate float32 division in the fast-math helpers, FMA contraction); MSE and L1 (a
difference and one multiply) agree bitwise.
"""

from __future__ import annotations

from numba import cuda, float64, njit

from kernels._fastexp import fast_exp
from kernels._util import array_module
from kernels.cuda import THREADS, launch
from kernels.cuda.linear import add_rn
from kernels.cuda.reduce import block_sum, sum_scaled
from kernels.losses import _JIT, LOSS_BLOCK, _bce_elem, _diff_elem


@njit(inline="always", **_JIT)
def _bce_point(x, t, w, pw, scale):
    """(loss, scaled gradient) of one logit, as the CPU's BCE loop computes them."""
    loss, grad = _bce_elem(x, t, w, pw, fast_exp(-abs(x)), type(x)(1.0))
    return loss, grad * scale


@njit(inline="always", **_JIT)
def _diff_point(x, t, gscale, code):
    """(loss, scaled gradient) of one MSE / L1 element, as the CPU's loop computes them."""
    d = x - t
    loss, grad = _diff_elem(d, code, type(d)(1.0))
    return loss, grad * gscale


@cuda.jit(device=True)
def _store_block_sum(sums, acc, partials):
    """partials[block] = the sum of every thread's ``acc`` (block_sum's fixed tree over the shared ``sums``)."""
    total = block_sum(sums, acc)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


@cuda.jit
def _bce(x, t, w, w_full, pw, dx, loss, store_loss, scale, partials):
    sums = cuda.shared.array(THREADS, float64)
    i0 = cuda.blockIdx.x * LOSS_BLOCK
    period = pw.size
    acc = 0.0
    for i in range(i0 + cuda.threadIdx.x, min(x.size, i0 + LOSS_BLOCK), THREADS):
        ph = i % period
        li, dx[i] = _bce_point(x[i], t[i], w[i if w_full else ph], pw[ph], scale)
        if store_loss:
            loss[i] = li
        else:
            acc = add_rn(acc, li)
    _store_block_sum(sums, acc, partials)


@cuda.jit
def _diff(x, t, dx, loss, store_loss, gscale, code, partials):
    sums = cuda.shared.array(THREADS, float64)
    i0 = cuda.blockIdx.x * LOSS_BLOCK
    acc = 0.0
    for i in range(i0 + cuda.threadIdx.x, min(x.size, i0 + LOSS_BLOCK), THREADS):
        li, dx[i] = _diff_point(x[i], t[i], gscale, code)
        if store_loss:
            loss[i] = li
        else:
            acc = add_rn(acc, li)
    _store_block_sum(sums, acc, partials)


def run_bce(x, t, w, w_full, pw, dx, loss, store_loss, scale, partials):
    """BCE over the flat 1-D arrays, with the arguments of kernels.losses' CPU kernel: dx, and the losses into
    ``loss`` (store_loss, reduction "none") or their block sums into ``partials`` (ceil(n / LOSS_BLOCK),
    float64). Returns without synchronising."""
    if x.size:
        launch(_bce, partials.size, THREADS, x, t, w, w_full, pw, dx, loss, store_loss, scale, partials)


def run_diff(x, t, dx, loss, store_loss, gscale, code, partials):
    """MSE (code kernels.losses.MSE) or L1 (L1) over the flat 1-D arrays, arguments as run_bce's and the CPU
    kernel's (gscale: the gradient factor, 2 scale for MSE). Returns without synchronising."""
    if x.size:
        launch(_diff, partials.size, THREADS, x, t, dx, loss, store_loss, gscale, code, partials)


def reduced_loss(reduction, loss, partials, n, dtype):
    """The loss the public function returns on the device: ``loss`` itself for "none", else the sum of the
    float64 ``partials`` (over n for "mean"; 0 when there are none) as a 0-d array of ``dtype`` in the
    partials' array module (a device array for device partials), summed on the device by sum_scaled on the
    current stream; returns without synchronising."""
    if reduction == "none":
        return loss
    out = array_module(partials).empty(1, dtype=dtype)
    sum_scaled(partials, 1.0, n if reduction == "mean" and n else 1.0, out)
    return out.reshape(())
