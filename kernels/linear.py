"""Fully connected layer with the bias and the activation fused around the BLAS GEMMs.

Forward (row vectors, course notation), for a batch x of N rows:

    z = x @ W + b          y = act(z)

Backward, from the upstream gradient dy and the saved x, W and output y (the activation's derivative is
written in terms of y, see kernels.activations):

    dz = dy * act'(z)      (elementwise, from y)
    dx = dz @ W.T          dW = x.T @ dz          db = sum over rows of dz

Shapes: x (N, in), W (in, out), b (out,), y, dy, dz (N, out), dx (N, in), dW (in, out), db (out,).
Activations: None / "identity", "relu", "leaky_relu" (negative_slope >= 0), "sigmoid", "tanh".
Semantics: torch.nn.functional.linear followed by the activation, with W stored as (in, out) (torch
stores weight as (out, in), i.e. our W is its weight.T).

How it runs on NumPy arrays: the GEMMs are NumPy's BLAS (np.matmul with out=, so nothing is allocated or
copied); what is compiled here is everything around them, each in ONE pass over an (N, out) array:
* forward: y = act(y + b) in place, right after y = x @ W;
* backward: dz = dy * act'(y) and the block partial column sums of dz, in the same pass; with the identity
  activation there is no dz pass (dz is dy) and only the bias-gradient reduction reads dy.

Why these passes run on one thread (not prange): they sit between BLAS calls. After a Numba parallel
region, libgomp's worker threads busy-wait for a while (OMP_WAIT_POLICY unset), and the next GEMM's
OpenBLAS threads then share a core with a spinning worker; the statically split GEMM waits for its slowed
half. Measured on the 2-core machine (N=256, 1024 -> 1024, relu, float32, best of 40, interleaved):
three GEMMs 8.8 ms, this layer with parallel passes 13-14.5 ms, with serial passes 8.8-9.2 ms (with
OMP_WAIT_POLICY=passive the two variants tie). One core already streams at most of the copy bandwidth,
and the passes cost ~2% of the GEMMs at in_features = 1024, so a parallel pass has little to gain here.

Bias gradient, deterministic: the rows are cut into fixed blocks of REDUCE_BLOCK_ROWS rows; each block
sums its rows in row order into its own float64 partial row, then the partials are added in block order.
The blocking is fixed (independent of any thread count), so db is bitwise reproducible, and a parallel or
GPU version that reduces the same blocks gives the same bits. Sums are float64 for both dtypes (free in a
memory-bound pass), so a float32 db is the float32 rounding of a float64 sum of the float32 dz.

Scratch memory: the backward needs dz (N, out) and the partials (ceil(N / REDUCE_BLOCK_ROWS), out) in
float64. Pass a ``LinearWorkspace(N, out, dtype)`` as ``workspace=`` to reuse them across calls (a
training loop then allocates nothing per step when it also passes out_dx/out_dw/out_db); without one they
are allocated per call. A workspace may be shared by any layers with the same (N, out, dtype), since its
contents are dead once linear_backward returns.

Device arrays (CuPy, or anything with ``__cuda_array_interface__``) run the same steps on the GPU, on the
current stream and without synchronising: the GEMMs through kernels.matmul.device_matmul (cuBLAS via
CuPy, float32 in full precision unless ``allow_tf32=True``, as kernels.matmul describes; the CPU ignores
the flag), and the epilogue, the dz pass with its block partials and the final bias-gradient reduction
through the launchers of kernels/cuda/linear.py, which reduce the same blocks in the same order, so db is
bitwise the CPU's sum of the same dz. Scratch for them lives on the device: a workspace for device arrays
is made with ``LinearWorkspace(N, out, dtype, device="cuda")``.

Non-finite input: IEEE semantics throughout. A NaN in row i of x makes row i of x @ W NaN, hence row i of
y (every activation propagates NaN), and leaves every other row untouched.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels._util import (
    FASTMATH,
    REDUCE_BLOCK_ROWS,
    as_float_array,
    backend_of,
    common_float_dtype,
    device_module,
    is_device_array,
    may_share_memory,
    num_row_blocks,
    out_array,
)
from kernels.activations import IDENTITY, activation_code, activation_grad, apply_activation, check_negative_slope
from kernels.matmul import check_bool, device_matmul

DEVICES = ("cpu", "cuda")

# See kernels.activations: IEEE division so the sigmoid/tanh loops vectorise.
_JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


# ----------------------------------------------------------------------------------------------------
# CPU kernels. ``b``, ``dz`` and ``part`` may be None: Numba compiles a separate specialisation for a
# None argument and drops the branches that test it, so the inner loops carry no per-element check.


@njit(**_JIT)
def _bias_act(y, b, code, slope):
    """y = act(y + b) in place (b may be None). One call site of apply_activation keeps the inlined body
    single, and LLVM unswitches the loop on ``code`` into one vectorised copy per activation."""
    n, m = y.shape
    for i in range(n):
        for j in range(m):
            z = y[i, j]
            if b is not None:
                z += b[j]
            y[i, j] = apply_activation(z, code, slope)


@njit(**_JIT)
def _dz_block(dy, y, dz, part, blk, code, slope):
    """Rows of block ``blk``: dz = dy * act'(y) (if dz is given) and their column sums into part[blk]."""
    n, m = dy.shape
    lo = blk * REDUCE_BLOCK_ROWS
    hi = min(lo + REDUCE_BLOCK_ROWS, n)
    if part is not None:
        for j in range(m):
            part[blk, j] = 0.0
    for i in range(lo, hi):
        for j in range(m):
            g = activation_grad(dy[i, j], y[i, j], code, slope)
            if dz is not None:
                dz[i, j] = g
            if part is not None:
                part[blk, j] += g


@njit(**_JIT)
def _dz_pass(dy, y, dz, part, code, slope):
    for blk in range(num_row_blocks(dy.shape[0])):
        _dz_block(dy, y, dz, part, blk, code, slope)


@njit(**_JIT)
def _sum_partials(part, nblocks, db):
    """db = sum of the first ``nblocks`` partial rows, added in block order (fixed, thread-independent)."""
    m = db.shape[0]
    if nblocks == 0:
        for j in range(m):
            db[j] = 0.0
        return
    for blk in range(1, nblocks):
        for j in range(m):
            part[0, j] += part[blk, j]
    for j in range(m):
        db[j] = part[0, j]


# ----------------------------------------------------------------------------------------------------
# Public API


class LinearWorkspace:
    """Reusable scratch of ``linear_backward`` for batches of ``n`` rows and ``out_features`` outputs.

    Holds dz (n, out_features) in ``dtype`` and the float64 bias-gradient block partials, in host memory
    (``device="cpu"``, for NumPy arrays) or in device memory (``device="cuda"``, for device arrays: CuPy's,
    or the simulator's under NUMBA_ENABLE_CUDASIM=1). Create it once per (n, out_features, dtype, device)
    and pass it as ``workspace=`` on every step.
    """

    __slots__ = ("dz", "partials")

    def __init__(self, n, out_features, dtype, *, device="cpu"):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype {dtype} is not supported; allowed dtypes: float32, float64")
        if device not in DEVICES:
            raise ValueError(f"device = {device!r} is not one of {DEVICES}")
        xp = np if device == "cpu" else device_module()
        self.dz = xp.empty((n, out_features), dtype=dtype)
        self.partials = xp.empty((num_row_blocks(n), out_features), np.float64)


def _check_2d(name, a, rows, cols, rows_from, cols_from):
    if a.shape[0] != rows:
        raise ValueError(f"{name} has shape {a.shape}: its {a.shape[0]} rows do not match {rows_from} = {rows}")
    if a.shape[1] != cols:
        raise ValueError(f"{name} has shape {a.shape}: its {a.shape[1]} columns do not match {cols_from} = {cols}")


def _check_inputs(x, w, dtype):
    x = as_float_array("x", x, ndim=2, dtype=dtype)
    w = as_float_array("w", w, ndim=2, dtype=dtype)
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"w has shape {w.shape} but x has shape {x.shape}: w must be (in_features, out_features) with "
            f"in_features = x.shape[1] = {x.shape[1]}"
        )
    return x, w


def linear_forward(x, w, b=None, activation=None, *, negative_slope=0.01, out=None, allow_tf32=False):
    """y = act(x @ w + b) for x (N, in), w (in, out), b (out,) or None. Returns y (N, out), ``out`` if given.

    Device arrays run on the GPU (module notes); ``allow_tf32`` lets a float32 GEMM there use TensorFloat-32
    (ignored on the CPU)."""
    backend = backend_of(x=x, w=w, b=b, out=out)
    code = activation_code(activation)
    check_bool("allow_tf32", allow_tf32)
    dtype = common_float_dtype(x=x, w=w, b=b)
    x, w = _check_inputs(x, w, dtype)
    n, m = x.shape[0], w.shape[1]
    if b is not None:
        b = as_float_array("b", b, ndim=1, dtype=dtype)
        if b.shape[0] != m:
            raise ValueError(f"b has shape {b.shape}, expected ({m},) = (out_features,) from w's shape {w.shape}")
    slope = check_negative_slope(negative_slope, dtype)
    y = out_array("out", out, (n, m), dtype, inputs=(x, w, b))
    if backend == "cuda":
        from kernels.cuda import linear as cuda_linear

        device_matmul(((x, w, y),), allow_tf32)
        cuda_linear.run_forward(y, b, code, slope)
        return y
    np.matmul(x, w, out=y)
    if b is not None or code != IDENTITY:
        _bias_act(y, b, code, slope)
    return y


def linear_backward(dy, x, w, y, activation=None, *, negative_slope=0.01, has_bias=True, need_dx=True,
                    out_dx=None, out_dw=None, out_db=None, workspace=None, allow_tf32=False):
    """Gradients (dx, dw, db) of y = act(x @ w + b) given dy and the saved x, w, y; db is None without bias.

    ``need_dx=False`` skips the dx GEMM and returns None for dx (a network's first layer: nothing upstream
    needs the gradient of the input data). ``workspace``: an optional LinearWorkspace(N, out, dtype)
    holding the scratch (see the module notes), on the device of the arrays. Device arrays run on the GPU,
    where ``allow_tf32`` lets the float32 GEMMs use TensorFloat-32 (ignored on the CPU).
    """
    backend = backend_of(dy=dy, x=x, w=w, y=y, out_dx=out_dx, out_dw=out_dw, out_db=out_db)
    code = activation_code(activation)
    for name, flag in (("has_bias", has_bias), ("need_dx", need_dx), ("allow_tf32", allow_tf32)):
        check_bool(name, flag)
    dtype = common_float_dtype(dy=dy, x=x, w=w, y=y)
    x, w = _check_inputs(x, w, dtype)
    n, k = x.shape
    m = w.shape[1]
    dy = as_float_array("dy", dy, ndim=2, dtype=dtype)
    y = as_float_array("y", y, ndim=2, dtype=dtype)
    _check_2d("dy", dy, n, m, "x.shape[0]", "w.shape[1]")
    _check_2d("y", y, n, m, "x.shape[0]", "w.shape[1]")
    slope = check_negative_slope(negative_slope, dtype)
    if out_db is not None and not has_bias:
        raise ValueError("out_db was given but has_bias is False (there is no bias gradient to write)")
    if out_dx is not None and not need_dx:
        raise ValueError("out_dx was given but need_dx is False (dx is not computed)")
    inputs = (dy, x, w, y)
    dx = out_array("out_dx", out_dx, (n, k), dtype, inputs=inputs) if need_dx else None
    dw = out_array("out_dw", out_dw, (k, m), dtype, inputs=inputs + (dx,))
    db = out_array("out_db", out_db, (m,), dtype, inputs=inputs + (dx, dw)) if has_bias else None

    nblocks = num_row_blocks(n)
    if workspace is None:
        xp = np if backend == "cpu" else device_module()
        dz_buf = xp.empty((n, m), dtype) if code != IDENTITY else None
        part = xp.empty((nblocks, m), np.float64) if has_bias else None
    else:
        if not isinstance(workspace, LinearWorkspace):
            raise TypeError(f"workspace must be a LinearWorkspace, got {type(workspace).__name__}")
        if is_device_array(workspace.dz) != (backend == "cuda"):
            where = ("the GPU", "the CPU") if backend == "cuda" else ("the CPU", "the GPU")
            raise TypeError(
                f"the arrays are on {where[0]} but workspace is on {where[1]}: create "
                f"LinearWorkspace({n}, {m}, {np.dtype(dtype)}, device={backend!r})"
            )
        if workspace.dz.shape != (n, m) or workspace.dz.dtype != dtype:
            raise ValueError(
                f"workspace was made for shape {workspace.dz.shape} and dtype {workspace.dz.dtype}, but this "
                f"call needs ({n}, {m}) and {np.dtype(dtype)}: create LinearWorkspace({n}, {m}, {np.dtype(dtype)})"
            )
        for name, a in zip(("dy", "x", "w", "y", "out_dx", "out_dw", "out_db"), inputs + (dx, dw, db)):
            if a is not None and may_share_memory(workspace.dz, a):
                raise ValueError(f"workspace overlaps {name}; the workspace must be private scratch memory")
        dz_buf = workspace.dz if code != IDENTITY else None
        part = workspace.partials if has_bias else None

    if backend == "cuda":
        from kernels.cuda import linear as cuda_linear

        cuda_linear.run_backward(dy, y, dz_buf, part, db, code, slope)
        dz = dy if dz_buf is None else dz_buf
        products = ((dz, w.T, dx), (x.T, dz, dw)) if need_dx else ((x.T, dz, dw),)
        device_matmul(products, allow_tf32)
        return dx, dw, db
    if dz_buf is not None or part is not None:
        _dz_pass(dy, y, dz_buf, part, code, slope)
    if has_bias:
        _sum_partials(part, nblocks, db)
    dz = dy if dz_buf is None else dz_buf
    if need_dx:
        np.matmul(dz, w.T, out=dx)
    np.matmul(x.T, dz, out=dw)
    return dx, dw, db
