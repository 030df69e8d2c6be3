"""CUDA kernels of inverted dropout (kernels/dropout.py has the maths, the validation and the CPU side).

    y_i = x_i * scale if word_i >= threshold else 0          (scale = 1 / (1 - p) in the array dtype)
    word_i = Philox4x32-10(ctr = (lo32(i // 4), hi32(i // 4), lo32(counter), hi32(counter)),
                           key = (lo32(seed), hi32(seed)))[i % 4]

One Philox call yields the words of four consecutive elements, so a thread handles one counter block b
(elements 4b .. 4b + 3, those that exist) per iteration of a grid-stride loop over the ceil(n / 4) blocks:
each element's word is computed once, by ``kernels.philox.philox4x32_10``, the same scalar helper the CPU
kernels call. Blocks are disjoint element ranges and a word depends only on (seed, counter, i), so the
kernels are race-free and give bitwise the CPU's mask and output whatever the launch shape (a kept NaN
stays NaN, though a GPU multiply returns its canonical NaN rather than the input's bits). A dropped element
is written as 0 (a select, not a multiply by the mask): a dropped NaN/Inf gives 0, as on the CPU.

kernels/dropout.py's public functions call the launchers for device arrays (dropout_forward and
dropout_backward on device input, dropout_mask with device="cuda"), with the flat arrays and the scalars
exactly as they pass them to their CPU kernels: ``threshold, k0, k1, c2, c3`` from ``_philox_args`` (NumPy
uint64 holding 32-bit words) and ``scale`` as ``_dropout`` rounds it to the array dtype. The launchers run
on the current stream and return without synchronising.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from kernels.cuda import elementwise_grid, launch
from kernels.philox import MASK32, SHIFT32, philox4x32_10


@cuda.jit(device=True)
def _kept(x, word, threshold, scale):
    return x * scale if word >= threshold else type(scale)(0.0)


@cuda.jit
def _dropout(x, y, threshold, scale, k0, k1, c2, c3):
    n = x.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox4x32_10(np.uint64(b) & MASK32, np.uint64(b) >> SHIFT32, c2, c3, k0, k1)
        i = 4 * b  # always < n: b < ceil(n / 4)
        y[i] = _kept(x[i], w0, threshold, scale)
        if i + 1 < n:
            y[i + 1] = _kept(x[i + 1], w1, threshold, scale)
        if i + 2 < n:
            y[i + 2] = _kept(x[i + 2], w2, threshold, scale)
        if i + 3 < n:
            y[i + 3] = _kept(x[i + 3], w3, threshold, scale)


@cuda.jit
def _mask(m, threshold, k0, k1, c2, c3):
    n = m.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox4x32_10(np.uint64(b) & MASK32, np.uint64(b) >> SHIFT32, c2, c3, k0, k1)
        i = 4 * b
        m[i] = w0 >= threshold
        if i + 1 < n:
            m[i + 1] = w1 >= threshold
        if i + 2 < n:
            m[i + 2] = w2 >= threshold
        if i + 3 < n:
            m[i + 3] = w3 >= threshold


def run(x, y, threshold, scale, k0, k1, c2, c3):
    """y = x * mask * scale over the flat 1-D arrays x, y (same size and dtype) on the current stream;
    returns without synchronising."""
    blocks, threads = elementwise_grid(-(-x.size // 4))
    launch(_dropout, blocks, threads, x, y, threshold, scale, k0, k1, c2, c3)


def run_mask(m, threshold, k0, k1, c2, c3):
    """The keep mask into the flat 1-D array m (bool, or uint8 as 0/1) on the current stream; returns
    without synchronising."""
    blocks, threads = elementwise_grid(-(-m.size // 4))
    launch(_mask, blocks, threads, m, threshold, k0, k1, c2, c3)
