"""Device-side sums: the loss of a batch reduced on the GPU, so a training step never waits on the host.

``sum_scaled(values, mul, div, out)`` writes ``out[0] = (sum(values) * mul) / div`` rounded to out's
dtype, for a 1-D float64 ``values`` (per-row losses, or per-block partial sums of them). The public loss
functions return ``out`` viewed as a 0-d device array, which stays on the device until somebody asks for
its value (``float(loss)``), as a torch loss tensor does.

Launch layout: one block of THREADS threads. Thread k adds values k, k + THREADS, ... into a float64
register in index order; the block then adds the THREADS registers by a fixed tree in shared memory
(``block_sum``: halving strides, a barrier between levels), and thread 0 writes the result. No atomics, and
the order of every addition depends on the length alone, so the sum is bitwise the same on every run. It is
not the CPU's order (the CPU adds rows serially, or partials with math.fsum), so CPU and GPU losses agree to
float64 rounding of the sum, which the final rounding to float32 almost always hides. One block is enough:
the values are one per row or per LOSS_BLOCK elements, a few hundred KiB at most, read once.
"""

from __future__ import annotations

from numba import cuda, float64

from kernels.cuda import THREADS, launch
from kernels.cuda.linear import add_rn

assert THREADS & (THREADS - 1) == 0  # the tree halves the active threads down to one


@cuda.jit(device=True)
def block_sum(sums, acc):
    """The sum of every thread's ``acc`` over the block, by a fixed tree in the shared array ``sums``
    (THREADS float64); valid in thread 0 only. Every thread of the block must call it."""
    tid = cuda.threadIdx.x
    sums[tid] = acc
    cuda.syncthreads()
    stride = THREADS // 2
    while stride > 0:
        if tid < stride:
            sums[tid] = add_rn(sums[tid], sums[tid + stride])
        cuda.syncthreads()
        stride //= 2
    return sums[0]


@cuda.jit(device=True)
def block_total(sums, values):
    """The float64 sum of the 1-D ``values`` by one block: thread k adds values k, k + THREADS, ... in
    order, then ``block_sum`` adds the threads' sums; valid in thread 0 only."""
    acc = 0.0
    for i in range(cuda.threadIdx.x, values.size, THREADS):
        acc = add_rn(acc, values[i])
    return block_sum(sums, acc)


@cuda.jit
def _sum_scaled(values, mul, div, out):
    total = block_total(cuda.shared.array(THREADS, float64), values)
    if cuda.threadIdx.x == 0:
        out[0] = (total * mul) / div


def sum_scaled(values, mul, div, out):
    """out[0] = (sum(values) * mul) / div, values 1-D float64 (any length, 0 gives 0), out a 1-element
    device array of the result dtype. On the current stream; returns without synchronising."""
    launch(_sum_scaled, 1, THREADS, values, float(mul), float(div), out)
