"""``one_thread()``: run the Numba kernels of a block on one thread (BLAS keeps its own threads).

A training step alternates BLAS GEMMs with Numba kernels (bias/activation passes, BatchNorm, dropout, the
optimizer update). After a Numba parallel region, its OpenMP workers keep spinning for a while on the
cores the next GEMM's OpenBLAS threads need, and a statically split GEMM then waits for its slowed half.
Measured on the 2-core machine, MLP 784-1024-1024-10 with BatchNorm and dropout, batch 256, Adam: 26.5-28.5
ms per step with the elementwise kernels and the Adam update in parallel, 17.3-17.9 ms with them on one
thread (the same as with GOMP_SPINCOUNT=0, which nncore does not set: it would change every OpenMP library
in the user's process). The elementwise passes of a step move a few MB each, which one core streams
almost as fast as two, so little is lost even where there is no interference. Standalone calls to the
``kernels`` functions keep their parallel paths.
"""

import contextlib

from numba import get_num_threads, set_num_threads

from kernels._util import PARALLEL_MIN_ELEMENTS


class one_thread:
    """Context manager: Numba's thread count is 1 inside, and restored on exit."""

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = get_num_threads()
        set_num_threads(1)

    def __exit__(self, *exc):
        set_num_threads(self._previous)


_NO_OP = contextlib.nullcontext()


def one_thread_for(elements):
    """``one_thread()`` when a kernel over ``elements`` values would take its parallel path; otherwise a
    no-op, since the serial kernels never start OpenMP workers (and switching costs ~3 us)."""
    return one_thread() if elements >= PARALLEL_MIN_ELEMENTS else _NO_OP
