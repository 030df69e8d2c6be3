"""CUDA kernels (numba.cuda): one module per CPU module of ``kernels``, imported only when needed.

``import kernels`` never imports numba.cuda, so a machine without a GPU (or without numba-cuda) pays
nothing. The CUDA kernels call the same scalar helpers as the CPU kernels (``@njit`` functions with scalar
code only, such as ``kernels.optim._adam_elem``; numba-cuda compiles a CPU dispatcher called from a kernel
as a device function), so the per-element arithmetic of the two targets cannot drift apart.

Launches go to CuPy's current stream when CuPy is in use, and never synchronise. The kernels take device
arrays (CuPy, or anything with ``__cuda_array_interface__``) and, under the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, how CI runs them without a GPU), plain NumPy arrays.

What compiling the CPU helpers for the device means (checked in the PTX for sm_90, compiled locally without
a GPU): a helper compiled with any ``fastmath`` flags (the CPU modules use ``FASTMATH``) gets approximate
division on the device (``div.approx.f32``, within 2 ulp) while square roots stay correctly rounded and NaN
checks survive (no ``nnan``/``ninf``, no flush to zero). numba-cuda has no device lowering for ``np.floor``
or ``np.sqrt`` on scalars, so shared helpers use ``math`` functions or LLVM intrinsics instead.

Status (issue 4 in progress): kernels for the optimizer updates, dropout, the activations, softmax /
log-softmax / softmax cross-entropy, BatchNorm, the linear layer's passes around the GEMMs and the
losses, each checked in the simulator against the CPU kernels and the float64 oracle. Not yet: the public
``kernels`` functions do not dispatch device arrays to them (that needs validation of CuPy arrays, and a
real GPU to test on), and nothing has been timed on a GPU.
"""

from __future__ import annotations

import sys

from numba import config, cuda

# Threads per block for elementwise kernels: a multiple of the warp size that keeps enough blocks resident
# per SM; the grid is capped and the kernels stride over the rest, so any n works with one launch.
THREADS = 256
MAX_BLOCKS = 4096
WARP = 32


def elementwise_grid(n):
    """(blocks, threads) for a grid-stride loop over n elements; small n gets one small block."""
    if n <= THREADS:
        return 1, max(WARP, -(-n // WARP) * WARP)
    return min(-(-n // THREADS), MAX_BLOCKS), THREADS


def current_stream():
    """CuPy's current stream as a Numba stream when CuPy is in use, else Numba's default stream."""
    cupy = sys.modules.get("cupy")
    if cupy is None or config.ENABLE_CUDASIM:
        return cuda.default_stream()
    return cuda.external_stream(cupy.cuda.get_current_stream().ptr)
