"""CUDA kernels of the two fused passes around the linear layer's GEMMs (kernels/linear.py has the maths, the
validation and the CPU side). kernels.linear's public functions launch them on device arrays, between the
GEMMs, which are cuBLAS's through CuPy (kernels.matmul.device_matmul) and are not launched here.

    forward epilogue   y = act(y + b)                  in place, right after y = x @ W
    backward pre-pass  dz = dy * act'(y)               (from the saved output y)
                       part[k, j] = sum of dz[i, j] over the rows i of block k, in row order, in float64
                       db[j] = part[0, j] + part[1, j] + ...  (block order), rounded to the dtype

Blocks are the CPU's: REDUCE_BLOCK_ROWS consecutive rows, the last one partial.

Launch layout and why it is race-free and deterministic:
* epilogue: a grid-stride loop over the flat (N, out) array, one element per thread per iteration
  (consecutive threads, consecutive addresses). Each element is read and written by one thread only.
* dz pass: one thread per (row block k, column j), flat index k * out + j, grid-stride. It walks the rows
  of its block in row order, writes dz[i, j] and adds it to a float64 register, then writes part[k, j].
  Consecutive threads own consecutive columns of one block, so every row's loads and stores are
  coalesced; no two threads touch the same dz element or partial, so no atomics and no shared memory.
* db: one thread per column, adding that column's partials in block order.
Every sum therefore has one fixed order, set by REDUCE_BLOCK_ROWS and not by the launch shape, and it is
the CPU's: given the same dz, the partials and db are bitwise the CPU's, on every run. Each float64
addition goes through ``add_rn``: on a GPU libdevice's round-to-nearest add, which NVVM never fuses with
the multiply that produced the term (checked in the PTX: a plain ``+=`` after a sigmoid derivative
becomes an fma, which would sum the unrounded product, not the dz that was stored); in the simulator a
plain float64 addition.

The dz values themselves are bitwise the CPU's for the selects (identity, relu, leaky_relu). For sigmoid
and tanh they agree to a few ulp: the CPU compiles the derivative helpers with fast-math reassociation,
and LLVM groups their three-factor products as it sees fit (differently in its vectorised and its scalar
loops), so no other compiler can promise the CPU's bits.

The cost of the CPU's blocking: the dz pass has only ceil(N / 64) * out threads, each adding 64 terms in
sequence; at N = 256, out = 1024 that is 4096 threads, fewer than one H100 keeps resident. The pass moves
3 N out elements against the GEMMs' 4 N in out flops, so it stays a small share of the backward.

Per element, the arithmetic is the CPU kernels' own scalar helpers ``apply_activation`` /
``activation_grad``, compiled for the device, with the activation chosen by its integer code (uniform
across the launch, so the branch never diverges). The launchers take what kernels/linear.py's public
functions compute for the CPU kernels: ``activation_code(kind)``, ``check_negative_slope(slope, dtype)``
(a scalar of the array dtype), b or None, and the dz / partials / db buffers (device memory: the caller's
out_db, and dz and partials from a device LinearWorkspace or allocated per call) or None exactly where the
CPU passes None (dz with the identity activation, partials and db without a bias). They launch on the
current stream, the one CuPy's GEMMs run on, so the passes and the GEMMs stay ordered without any
synchronisation.

The epilogue on a real GPU: the float64 sigmoid and tanh call libdevice's exp/tanh (within 2 ulp)
instead of the host libm, float32 division in the fast-math helpers is approximate (within 2 ulp, see
kernels/cuda/__init__.py), and NVVM may fuse multiply-adds inside the helpers, so y agrees with the CPU
to a few ulp; with the selects it agrees bitwise. Every kernel here compiles for sm_90 in both dtypes
(checked with cuda.compile_ptx, without a GPU); none has run on one yet.
"""

from __future__ import annotations

import numpy as np
from numba import config, cuda

from kernels._util import REDUCE_BLOCK_ROWS, num_row_blocks
from kernels.activations import IDENTITY, activation_grad, apply_activation
from kernels.cuda import elementwise_grid, launch

if config.ENABLE_CUDASIM:
    def add_rn(a, b):
        """a + b in float64 (the simulator runs kernels as Python: cast, so a float32 term or a Python
        float accumulator cannot make NumPy round the sum to float32)."""
        return np.float64(a) + np.float64(b)
else:
    from numba.cuda.libdevice import dadd_rn as add_rn


@cuda.jit
def _bias_act(y, b, code, slope):
    m = y.shape[1]
    for k in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        i = k // m
        j = k - i * m
        z = y[i, j]
        if b is not None:
            z += b[j]
        y[i, j] = apply_activation(z, code, slope)


@cuda.jit
def _dz_pass(dy, y, dz, part, code, slope):
    n, m = dy.shape
    for k in range(cuda.grid(1), num_row_blocks(n) * m, cuda.gridsize(1)):
        blk = k // m
        j = k - blk * m
        lo = blk * REDUCE_BLOCK_ROWS
        acc = 0.0
        for i in range(lo, min(lo + REDUCE_BLOCK_ROWS, n)):
            g = activation_grad(dy[i, j], y[i, j], code, slope)
            if dz is not None:
                dz[i, j] = g
            acc = add_rn(acc, g)
        if part is not None:
            part[blk, j] = acc


@cuda.jit
def _sum_partials(part, db):
    nblocks = part.shape[0]
    for j in range(cuda.grid(1), db.size, cuda.gridsize(1)):
        acc = part[0, j] if nblocks > 0 else 0.0
        for blk in range(1, nblocks):
            acc = add_rn(acc, part[blk, j])
        db[j] = acc


def run_forward(y, b, code, slope):
    """y = act(y + b) in place on the (N, out) GEMM result y; b: (out,) or None. As on the CPU, nothing runs
    when there is neither a bias nor an activation. Returns without synchronising."""
    if b is None and code == IDENTITY:
        return
    blocks, threads = elementwise_grid(y.size)
    launch(_bias_act, blocks, threads, y, b, code, slope)


def run_backward(dy, y, dz, part, db, code, slope):
    """The pass before the backward GEMMs: dz = dy * act'(y) into dz (None with the identity activation: dz
    is dy) and, with a bias, the float64 block partials into part (num_row_blocks(N), out) and their sum
    into db (out,) (both None without a bias). Returns without synchronising."""
    if dz is not None or part is not None:
        blocks, threads = elementwise_grid(num_row_blocks(dy.shape[0]) * dy.shape[1])
        launch(_dz_pass, blocks, threads, dy, y, dz, part, code, slope)
    if part is not None:
        blocks, threads = elementwise_grid(db.size)
        launch(_sum_partials, blocks, threads, part, db)
