"""Inverted dropout with a counter-based mask (Philox4x32-10), regenerated in backward, never stored.

Forward and backward (Srivastava et al. 2014, "inverted" scaling as in torch.nn.functional.dropout):

    y_i  = x_i  * m_i / (1 - p)        m_i in {0, 1}, P(m_i = 1) = 1 - p
    dx_i = dy_i * m_i / (1 - p)

x has any shape and is read as a flat C-order vector of n elements. The mask is a pure function of
(seed, counter, i), fixed by kernels.reference.philox_words / dropout_threshold:

    word_i = Philox4x32-10(ctr = (lo32(i // 4), hi32(i // 4), lo32(counter), hi32(counter)),
                           key = (lo32(seed), hi32(seed)))[i % 4]
    m_i    = word_i >= floor(p * 2^32)

so every element's keep decision is independent of how the work is split across threads (CPU and GPU
give bitwise the same mask), and backward recomputes the mask from (seed, counter) instead of keeping
n bytes alive between the passes. The caller advances ``counter`` once per call (one per layer per
step) so successive masks are independent. The scale 1 / (1 - p) is computed in float64 and rounded to
the array dtype once, so y_i = x_i * scale is one multiply.

Non-finite input: a kept NaN/Inf propagates (times the scale); a dropped element is 0 whatever x_i is.
This is a select, as in the oracle; torch.nn.functional.dropout multiplies by the mask instead, so it
turns a dropped NaN/Inf into NaN. A dropped unit contributes nothing downstream here, which is also what
dropout is meant to do.

Kernel layout: Philox yields four words per counter, and element i takes word i % 4, so a loop that
wrote the four words straight to y[4b + lane] would need interleaved stores, which LLVM refuses to
vectorise together with Philox's 64-bit multiplies. Each group of GROUP_BLOCKS counters therefore runs
two loops that each vectorise. The first computes Philox over the group's counters and stores, per
counter, the four keep decisions as the bytes of one uint32 (byte ``lane`` = word ``lane`` >= threshold,
placed by the host's byte order, _BYTE): a plain contiguous store, so the uint8 view of that scratch
is the keep mask in element order with no transpose. The second is the select/scale over contiguous
x, y and the keep bytes. Compared with storing the words and interleaving them in a second pass, this
drops the (scalar) interleave loop, and the select reads one byte per element from the scratch
instead of four, which is what the memory-bound select is sensitive to. Groups start at multiples of
GROUP_BLOCKS (a power of two dividing 2^32), so hi32 of the counter index is the same for the whole
group and LLVM hoists it: the second round then has one varying multiply instead of two (the first
has one either way, its other operand being the per-call counter word).
The scratch (4 KiB per group) stays in L1; prange runs over tasks of whole groups.

Backends: NumPy arrays run the CPU kernels below; device arrays (CuPy, anything with
``__cuda_array_interface__``) run kernels/cuda/dropout.py on the current stream, with the same Philox
words, so the device's mask is bitwise the CPU's for the same (p, seed, counter). dropout_mask, which takes
a shape and no array, builds the mask on the GPU when asked with ``device="cuda"`` (torch's and nncore's
name for it); the default stays the CPU.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit, prange

from ._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    as_float_array,
    backend_of,
    check_int,
    check_real,
    device_module,
    out_array,
    serial_and_parallel,
)
from .philox import MASK32, SHIFT32, philox4x32_10

GROUP_BLOCKS = 1024  # Philox counters per group: 4096 elements; a power of two dividing 2^32
GROUP_ELEMS = 4 * GROUP_BLOCKS
GROUPS_PER_TASK = 16  # groups per parallel task; the scratch is allocated once per task

_U64_MAX = (1 << 64) - 1
# Bit offset of lane k's keep byte inside the uint32, chosen so the uint8 view lists lanes 0..3 in order
# on this machine's byte order (little-endian on x86 and CUDA; reversed on a big-endian host).
_BYTE = tuple(np.uint64(8 * (k if sys.byteorder == "little" else 3 - k)) for k in range(4))


# --------------------------------------------------------------------------------------------------
# CPU kernels


@njit(cache=True, inline="always")
def _keep_bytes(w0, w1, w2, w3, threshold):
    """The keep decisions of one counter's four words as the bytes (0 or 1) of a uint64 < 2^32."""
    return (
        (np.uint64(w0 >= threshold) << _BYTE[0])
        | (np.uint64(w1 >= threshold) << _BYTE[1])
        | (np.uint64(w2 >= threshold) << _BYTE[2])
        | (np.uint64(w3 >= threshold) << _BYTE[3])
    )


@njit(cache=True, fastmath=FASTMATH)
def _group_keep(keep4, block0, nblocks, threshold, c2, c3, k0, k1):
    """keep4[j] = keep bytes of counter block0 + j (elements 4 (block0 + j) + lane), for j < nblocks.

    block0 must be a multiple of GROUP_BLOCKS and nblocks <= GROUP_BLOCKS, so that the counter's high
    word hi32(block0 + j) = hi32(block0) and its low word lo32(block0) + j never carries.
    """
    lo = np.uint64(block0) & MASK32
    hi = np.uint64(block0) >> SHIFT32
    for j in range(nblocks):
        w0, w1, w2, w3 = philox4x32_10(lo + np.uint64(j), hi, c2, c3, k0, k1)
        keep4[j] = _keep_bytes(w0, w1, w2, w3, threshold)


@njit(cache=True, fastmath=FASTMATH)
def _select_scale(x, y, keep, scale):
    # x, y are views starting at 0 so the index is provably non-negative (no gather/scatter code).
    zero = x.dtype.type(0)
    for i in range(x.size):
        y[i] = x[i] * scale if keep[i] != 0 else zero


@njit(cache=True, fastmath=FASTMATH)
def _select_mask(m, keep):
    for i in range(m.size):
        m[i] = keep[i] != 0


@njit(cache=True, fastmath=FASTMATH)
def _dropout_groups(x, y, g0, g1, threshold, scale, k0, k1, c2, c3):
    """y = x * mask * scale over groups [g0, g1) of the flat arrays (race-free: disjoint slices)."""
    keep4 = np.empty(GROUP_BLOCKS, dtype=np.uint32)
    keep = keep4.view(np.uint8)
    n = x.size
    for g in range(g0, g1):
        i0 = g * GROUP_ELEMS
        i1 = min(n, i0 + GROUP_ELEMS)
        _group_keep(keep4, g * GROUP_BLOCKS, (i1 - i0 + 3) // 4, threshold, c2, c3, k0, k1)
        _select_scale(x[i0:i1], y[i0:i1], keep, scale)


@njit(cache=True, fastmath=FASTMATH)
def _mask_groups(m, g0, g1, threshold, k0, k1, c2, c3):
    keep4 = np.empty(GROUP_BLOCKS, dtype=np.uint32)
    keep = keep4.view(np.uint8)
    n = m.size
    for g in range(g0, g1):
        i0 = g * GROUP_ELEMS
        i1 = min(n, i0 + GROUP_ELEMS)
        _group_keep(keep4, g * GROUP_BLOCKS, (i1 - i0 + 3) // 4, threshold, c2, c3, k0, k1)
        _select_mask(m[i0:i1], keep)


def _dropout_tasks(x, y, threshold, scale, k0, k1, c2, c3):
    # Each task owns whole groups, i.e. disjoint element ranges; the mask depends only on the element
    # index, so the split (and the thread count) cannot change the result.
    ngroups = (x.size + GROUP_ELEMS - 1) // GROUP_ELEMS
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    for t in prange(ntasks):
        g0 = t * GROUPS_PER_TASK
        _dropout_groups(x, y, g0, min(ngroups, g0 + GROUPS_PER_TASK), threshold, scale, k0, k1, c2, c3)


def _mask_tasks(m, threshold, k0, k1, c2, c3):
    ngroups = (m.size + GROUP_ELEMS - 1) // GROUP_ELEMS
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    for t in prange(ntasks):
        g0 = t * GROUPS_PER_TASK
        _mask_groups(m, g0, min(ngroups, g0 + GROUPS_PER_TASK), threshold, k0, k1, c2, c3)


_dropout_serial, _dropout_parallel = serial_and_parallel(_dropout_tasks, cache=True, fastmath=FASTMATH)
_mask_serial, _mask_parallel = serial_and_parallel(_mask_tasks, cache=True, fastmath=FASTMATH)


# --------------------------------------------------------------------------------------------------
# public functions


def _check_p_seed_counter(p, seed, counter):
    p = check_real("p", p, low=0.0, high=1.0, high_open=True)
    seed = check_int("seed", seed, low=0, high=_U64_MAX)
    counter = check_int("counter", counter, low=0, high=_U64_MAX)
    return p, seed, counter


def _philox_args(p, seed, counter):
    """(threshold, k0, k1, c2, c3) as the NumPy unsigned scalars the kernels take."""
    # p < 1 so floor(p * 2^32) <= 2^32 - 1; uint64 like the words it is compared with.
    u64 = np.uint64
    threshold = u64(math.floor(p * 2.0**32))
    return (threshold, u64(seed & 0xFFFFFFFF), u64(seed >> 32), u64(counter & 0xFFFFFFFF), u64(counter >> 32))


def _dropout(name, x, p, seed, counter, out):
    backend = backend_of(**{name: x}, out=out)
    x = as_float_array(name, x)
    p, seed, counter = _check_p_seed_counter(p, seed, counter)
    y = out_array("out", out, x.shape, x.dtype, inputs=(x,))
    if p == 0.0:
        y[...] = x  # a device-to-device copy on the current stream for device arrays
        return y
    threshold, k0, k1, c2, c3 = _philox_args(p, seed, counter)
    scale = x.dtype.type(1.0 / (1.0 - p))
    xf, yf = x.reshape(-1), y.reshape(-1)
    if backend == "cuda":
        from kernels.cuda import dropout as cuda_dropout

        if x.size:
            cuda_dropout.run(xf, yf, threshold, scale, k0, k1, c2, c3)
        return y
    kernel = _dropout_parallel if x.size >= PARALLEL_MIN_ELEMENTS else _dropout_serial
    kernel(xf, yf, threshold, scale, k0, k1, c2, c3)
    return y


def dropout_forward(x, p, seed, counter, *, out=None):
    """Inverted dropout in training mode: y = x * mask / (1 - p), mask from (seed, counter).

    x: float32/float64 array of any shape (non-contiguous input is copied), NumPy or device (then y is a
    device array). p: drop probability, a real in [0, 1) (p == 0 returns a copy of x). seed, counter:
    integers in [0, 2^64); use a new counter for every call that needs a fresh mask and the same
    (seed, counter) in the matching backward. out: an optional C-contiguous array of x's shape and dtype,
    on x's device, not overlapping x. Returns y.
    """
    return _dropout("x", x, p, seed, counter, out)


def dropout_backward(dy, p, seed, counter, *, out=None):
    """dx = dy * mask / (1 - p) with the mask regenerated from the forward call's (p, seed, counter)."""
    return _dropout("dy", dy, p, seed, counter, out)


_DEVICES = ("cpu", "cuda")


def dropout_mask(shape, p, seed, counter, *, device="cpu"):
    """The keep mask (bool array of ``shape``) that dropout_forward uses for (p, seed, counter).

    device: "cpu" (the default) returns a NumPy array; "cuda" computes the mask on the GPU and returns a
    device array (CuPy's, on its current device and stream; the simulator's under NUMBA_ENABLE_CUDASIM=1),
    bitwise the same mask.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple):
        raise TypeError(f"shape must be a tuple of integers, got {type(shape).__name__}")
    shape = tuple(check_int(f"shape[{i}]", d, low=0) for i, d in enumerate(shape))
    p, seed, counter = _check_p_seed_counter(p, seed, counter)
    if device not in _DEVICES:
        raise ValueError(f"device = {device!r} is not one of {_DEVICES}")
    threshold, k0, k1, c2, c3 = _philox_args(p, seed, counter)
    if device == "cuda":
        from kernels.cuda import dropout as cuda_dropout

        m = device_module().empty(shape, dtype=np.bool_)
        if m.size:
            cuda_dropout.run_mask(m.reshape(-1), threshold, k0, k1, c2, c3)
        return m
    m = np.empty(shape, dtype=np.bool_)
    mf = m.reshape(-1)
    kernel = _mask_parallel if mf.size >= PARALLEL_MIN_ELEMENTS else _mask_serial
    kernel(mf, threshold, k0, k1, c2, c3)
    return m
