"""Dense matrix product C = A @ B for 2-D float32 / float64 arrays: BLAS, or a blocked pure-Numba GEMM.

    C[i, j] = sum_p A[i, p] * B[p, j]        A (M, K), B (K, N), C (M, N), row-major (C order)

impl="blas" is np.matmul (NumPy's BLAS: the fast path, and what every layer uses). impl="numba" is a
self-contained GEMM for the cases where no BLAS can be called (it is also the template for fusing work
into a GEMM). It follows the Goto / BLIS blocking (Goto & van de Geijn, "Anatomy of high-performance
matrix multiplication", 2008; Van Zee & van de Geijn, "BLIS", 2015), adapted to what LLVM vectorises well
from Numba:

* cache blocking: for each NC-wide column panel of C and each KC-deep slice of K, the (KC, NC) block of B
  is packed into one contiguous buffer (1 MiB at most in float64, so it stays in the 2 MiB L2 while every
  row of C streams over it; packing also removes the power-of-two row stride of B, whose rows would
  otherwise fall into the same L1 sets);
* register blocking: the micro-kernel updates 4 rows of C from 4 consecutive k at a time. The 16 values
  A[i:i+4, p:p+4] are loop-invariant scalars (broadcast registers); the innermost loop runs along N, over
  contiguous rows of packed B and of C, so LLVM vectorises it (8 float32 per ymm / 16 per zmm) with 16
  FMAs per 4 loads of B, 4 loads and 4 stores of C. A is therefore read in place, not packed: each of its
  values enters once per sweep as a broadcast scalar;
* parallelism: prange over groups of 4 rows of C within a block; each C element is written by one task,
  and its sum over k runs in the same fixed order (K blocks in order, then k within a block) whatever the
  thread count, so results are bitwise reproducible at any number of threads.

Sums accumulate in the input dtype (as BLAS sgemm / dgemm do), so float32 results differ from the float64
product by float32 rounding, growing like sqrt(K).

Device arrays (CuPy, or anything with ``__cuda_array_interface__``) go to the device module's matmul: CuPy's,
which is cuBLAS (``cublasGemmEx``) on CuPy's current stream, asynchronously; ``impl`` is validated but only
chooses among the CPU implementations (there is no Numba GEMM on the GPU). float32 products there are full
float32 by default, with TensorFloat-32 an explicit option (``allow_tf32=True``): CuPy picks the cuBLAS
compute type of a float32 GEMM from a process-wide setting, ``cupy._core.get_compute_type(float32)``,
initialised on first use from the environment variable ``CUPY_TF32`` (1: ``COMPUTE_TYPE_TF32``, i.e.
``CUBLAS_COMPUTE_32F_FAST_TF32``, inputs rounded to 10 mantissa bits on Ampere and later; else
``COMPUTE_TYPE_DEFAULT``, i.e. ``CUBLAS_COMPUTE_32F`` with CuPy's handle in its default math mode, no TF32).
``device_matmul`` sets that compute type for the duration of its GEMMs and restores the caller's
afterwards, so the default is full float32 even with ``CUPY_TF32=1`` in the environment, and a caller's own
CuPy setting survives. cuBLAS reads the compute type when a GEMM is enqueued, so restoring it right after
the (asynchronous) call is safe. The setting is global, not per thread: another Python thread running a
CuPy float32 GEMM at the same moment sees it too. TF32 is an allowance, as torch's ``allow_tf32``: on GPUs
before compute capability 8.0 (no TF32) it is silently full float32, and cuBLAS may still choose a full
float32 kernel for a given shape. float64 products are never affected.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    as_float_array,
    backend_of,
    common_float_dtype,
    device_module,
    out_array,
    serial_and_parallel,
)

# Block sizes: a packed (KC, NC) block of B is 512 KiB in float32 and 1 MiB in float64 (L2 is 2 MiB).
_KC = 256
_NC = 512
# Rows of C and values of k per micro-kernel sweep (4 x 4 broadcast scalars + 4 B rows fit 32 registers).
_MR = 4
_KU = 4
# Below this many multiply-adds the OpenMP fork/join outweighs the second core.
_PARALLEL_MIN_MACS = 64 * PARALLEL_MIN_ELEMENTS

IMPLS = ("blas", "numba")


# ----------------------------------------------------------------------------------------------------
# CPU kernels.


@njit(cache=True, fastmath=FASTMATH)
def _pack_b(b, bp, pc, kc, jc, nc):
    """Copy B[pc:pc+kc, jc:jc+nc] into bp as kc contiguous rows of length nc."""
    for p in range(kc):
        bp[p * nc:(p + 1) * nc] = b[pc + p, jc:jc + nc]


@njit(cache=True, fastmath=FASTMATH)
def _rows4(a, bp, c, i, pc, kc, jc, nc):
    """C[i:i+4, jc:jc+nc] += A[i:i+4, pc:pc+kc] @ Bp: 4 rows x 4 k per sweep along the row of C."""
    je = jc + nc
    c0 = c[i, jc:je]
    c1 = c[i + 1, jc:je]
    c2 = c[i + 2, jc:je]
    c3 = c[i + 3, jc:je]
    a0 = a[i]
    a1 = a[i + 1]
    a2 = a[i + 2]
    a3 = a[i + 3]
    p = 0
    while p + _KU <= kc:
        q = pc + p
        b0 = bp[p * nc:(p + 1) * nc]
        b1 = bp[(p + 1) * nc:(p + 2) * nc]
        b2 = bp[(p + 2) * nc:(p + 3) * nc]
        b3 = bp[(p + 3) * nc:(p + 4) * nc]
        x00, x01, x02, x03 = a0[q], a0[q + 1], a0[q + 2], a0[q + 3]
        x10, x11, x12, x13 = a1[q], a1[q + 1], a1[q + 2], a1[q + 3]
        x20, x21, x22, x23 = a2[q], a2[q + 1], a2[q + 2], a2[q + 3]
        x30, x31, x32, x33 = a3[q], a3[q + 1], a3[q + 2], a3[q + 3]
        for j in range(nc):
            v0 = b0[j]
            v1 = b1[j]
            v2 = b2[j]
            v3 = b3[j]
            c0[j] += x00 * v0 + x01 * v1 + x02 * v2 + x03 * v3
            c1[j] += x10 * v0 + x11 * v1 + x12 * v2 + x13 * v3
            c2[j] += x20 * v0 + x21 * v1 + x22 * v2 + x23 * v3
            c3[j] += x30 * v0 + x31 * v1 + x32 * v2 + x33 * v3
        p += _KU
    while p < kc:
        q = pc + p
        bv = bp[p * nc:(p + 1) * nc]
        x0, x1, x2, x3 = a0[q], a1[q], a2[q], a3[q]
        for j in range(nc):
            v = bv[j]
            c0[j] += x0 * v
            c1[j] += x1 * v
            c2[j] += x2 * v
            c3[j] += x3 * v
        p += 1


@njit(cache=True, fastmath=FASTMATH)
def _row1(a, bp, c, i, pc, kc, jc, nc):
    """One row of C (the M % 4 remainder): C[i, jc:jc+nc] += A[i, pc:pc+kc] @ Bp, 4 k per sweep."""
    c0 = c[i, jc:jc + nc]
    a0 = a[i]
    p = 0
    while p + _KU <= kc:
        q = pc + p
        b0 = bp[p * nc:(p + 1) * nc]
        b1 = bp[(p + 1) * nc:(p + 2) * nc]
        b2 = bp[(p + 2) * nc:(p + 3) * nc]
        b3 = bp[(p + 3) * nc:(p + 4) * nc]
        x0, x1, x2, x3 = a0[q], a0[q + 1], a0[q + 2], a0[q + 3]
        for j in range(nc):
            c0[j] += x0 * b0[j] + x1 * b1[j] + x2 * b2[j] + x3 * b3[j]
        p += _KU
    while p < kc:
        x0 = a0[pc + p]
        bv = bp[p * nc:(p + 1) * nc]
        for j in range(nc):
            c0[j] += x0 * bv[j]
        p += 1


@njit(cache=True, fastmath=FASTMATH)
def _row_group(a, bp, c, t, pc, kc, jc, nc):
    """Task t: rows [4t, 4t+4) of C, or the last M % 4 rows one at a time."""
    i = t * _MR
    if i + _MR <= c.shape[0]:
        _rows4(a, bp, c, i, pc, kc, jc, nc)
    else:
        for r in range(i, c.shape[0]):
            _row1(a, bp, c, r, pc, kc, jc, nc)


def _gemm(a, b, c):
    m, k = a.shape
    n = b.shape[1]
    c[:] = 0
    bp = np.empty(min(_KC, k) * min(_NC, n), dtype=c.dtype)
    for jc in range(0, n, _NC):
        nc = min(_NC, n - jc)
        for pc in range(0, k, _KC):
            kc = min(_KC, k - pc)
            _pack_b(b, bp, pc, kc, jc, nc)
            # Race-free: task t writes only rows [4t, 4t+4) of C; all tasks only read A and bp.
            for t in prange((m + _MR - 1) // _MR):
                _row_group(a, bp, c, t, pc, kc, jc, nc)


_gemm_serial, _gemm_parallel = serial_and_parallel(_gemm, cache=True, fastmath=FASTMATH)


# ----------------------------------------------------------------------------------------------------
# Device GEMMs (cuBLAS through CuPy; NumPy's matmul under the CUDA simulator).


def _tf32_capable(cupy) -> bool:
    # TF32 tensor cores exist from compute capability 8.0 (Ampere); CuPy caches the capability per device
    return int(cupy.cuda.Device().compute_capability) >= 80


def _swap_float32_compute_type(xp, allow_tf32):
    """Set CuPy's float32 GEMM compute type to TF32 (allowed, and the GPU has it) or DEFAULT (full float32)
    and return the caller's setting to restore, or None when it already was what is wanted. Any setting
    other than TF32 (DEFAULT, PEDANTIC, ...) already means full float32 inputs and is left alone when TF32
    is not allowed."""
    from cupy._core import _routines_linalg as linalg

    prev = xp._core.get_compute_type(np.float32)  # its first call reads CUPY_TF32
    want_tf32 = allow_tf32 and _tf32_capable(xp)
    if want_tf32 == (prev == linalg.COMPUTE_TYPE_TF32):
        return None
    xp._core.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if want_tf32 else linalg.COMPUTE_TYPE_DEFAULT)
    return prev


def device_matmul(products, allow_tf32=False):
    """c = a @ b for each (a, b, c) in ``products``: validated 2-D device arrays of one dtype, c C-contiguous
    and not overlapping a or b (a and b may be transposed views: cuBLAS reads them in place). Enqueued on
    the current stream through the device module's matmul, with CuPy's float32 compute type set from
    ``allow_tf32`` around the calls (module notes). Under the simulator the module is NumPy's, and the
    compute type, which only CuPy has, is not touched."""
    xp = device_module()
    prev = None
    if xp.__name__ == "cupy" and products[0][2].dtype == np.float32:
        prev = _swap_float32_compute_type(xp, allow_tf32)
    try:
        for a, b, c in products:
            xp.matmul(a, b, out=c)
    finally:
        if prev is not None:
            xp._core.set_compute_type(np.float32, prev)


def check_bool(name, value) -> bool:
    """A bool flag argument (Python or NumPy bool), or TypeError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


# ----------------------------------------------------------------------------------------------------
# Public functions.


def matmul(a, b, *, impl="blas", out=None, allow_tf32=False):
    """C = a @ b for 2-D float32 or float64 arrays a (M, K) and b (K, N); returns C (M, N), a's dtype.

    NumPy arrays: impl="blas" calls np.matmul; impl="numba" runs the blocked Numba GEMM of this module.
    Device arrays: cuBLAS through CuPy on the current stream, whatever the (validated) impl; a float32
    product is full float32 unless ``allow_tf32=True`` lets cuBLAS round the inputs to TensorFloat-32 (see
    the module notes: checked only on a real GPU, since the simulator's matmul is NumPy's). On the CPU
    ``allow_tf32`` is validated and ignored (BLAS sgemm has no TF32). out, if given, receives C and is
    returned; on the device it must be a device array. Non-contiguous a and b are copied first.

    Raises ValueError for an unknown impl, inputs that are not 2-D, inner dimensions that differ, or a bad
    out (shape not (M, N), not C-contiguous, read-only, overlapping a or b); TypeError for non-arrays, a
    host/device mix, dtypes other than float32/float64, a and b of different dtypes, out of another dtype,
    or an allow_tf32 that is not a bool.
    """
    backend = backend_of(a=a, b=b, out=out)
    if impl not in IMPLS:
        raise ValueError(f"impl = {impl!r} is not one of {IMPLS}")
    check_bool("allow_tf32", allow_tf32)
    dtype = common_float_dtype(a=a, b=b)
    a = as_float_array("a", a, ndim=2, dtype=dtype)
    b = as_float_array("b", b, ndim=2, dtype=dtype)
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: a has shape {a.shape} and b has shape {b.shape} "
                         f"(a.shape[1] = {k} != b.shape[0] = {k2})")
    c = out_array("out", out, (m, n), dtype, inputs=(a, b))
    if backend == "cuda":
        device_matmul(((a, b, c),), allow_tf32)
    elif impl == "blas":
        np.matmul(a, b, out=c)
    elif m * n * k >= _PARALLEL_MIN_MACS:
        _gemm_parallel(a, b, c)
    elif m * n:
        _gemm_serial(a, b, c)
    return c
