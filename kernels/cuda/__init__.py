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

Launches go through ``launch(kernel, blocks, threads, *args)``: device arrays are handed to Numba as
views made with ``cuda.from_cuda_array_interface(..., sync=False)``. Left to itself, Numba synchronises
the stream that a CuPy array exports in its ``__cuda_array_interface__`` before every launch (numba-cuda's
``CUDA_ARRAY_INTERFACE_SYNC``), which would make every kernel wait for the GPU to go idle; the sync is
redundant here, because every launch goes to CuPy's current stream, the stream the array was made on.

Status: the public ``kernels`` functions dispatch device arrays to these kernels (``kernels._util``);
every kernel is checked in the simulator against the CPU kernels and the float64 oracle, and compiled for
sm_90 by tests/test_cuda_ptx.py. Nothing has been timed on a GPU yet (bench/RESULTS.md).
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


if config.ENABLE_CUDASIM:
    _DeviceNDArray = None  # the simulator takes NumPy arrays (and SimDeviceArrays) as they are
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceNDArray


def _numba_view(a):
    """A Numba device array over the memory of ``a`` (any ``__cuda_array_interface__`` object), without the
    stream synchronisation Numba would do when it converts one itself; anything else is passed through."""
    if _DeviceNDArray is None or isinstance(a, _DeviceNDArray) or not hasattr(type(a), "__cuda_array_interface__"):
        return a
    return cuda.from_cuda_array_interface(a.__cuda_array_interface__, owner=a, sync=False)


def launch(kernel, blocks, threads, *args):
    """kernel[blocks, threads, current_stream()](*args), device-array arguments passed without a stream
    synchronisation (module docstring). Returns without waiting for the kernel."""
    kernel[blocks, threads, current_stream()](*(_numba_view(a) for a in args))
