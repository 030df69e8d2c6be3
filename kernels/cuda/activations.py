"""CUDA kernels of the elementwise activations (kernels/activations.py has the maths, the validation and the
CPU side; its public functions launch these on device arrays).

    forward   y_i  = act(x_i)                  act in identity, relu, leaky_relu (slope a >= 0), sigmoid, tanh
    backward  dx_i = dy_i * act'(x_i)          written in terms of the saved output y_i = act(x_i)

One launch over the flat arrays, a grid-stride loop, one element per thread per iteration: elements are
independent, so the kernels are race-free and the result does not depend on the launch shape. The per-element
arithmetic is the CPU kernels' own scalar helpers, ``apply_activation`` / ``activation_grad``, compiled for
the device. The activation is chosen by its integer code (``activation_code``) at run time; the code is the
same for every thread, so the branch on it never diverges within a warp.

The launchers take the flat arrays, the code and the slope exactly as kernels/activations.py passes them to
its CPU kernels: ``activation_code(kind)`` and ``check_negative_slope(negative_slope, dtype)`` (a scalar of
the array dtype, so float32 arithmetic stays float32).

What a GPU may compute differently from the CPU (same formulas, different compilers): float64 sigmoid and
tanh call libdevice's exp/tanh instead of the host libm (both within a couple of ulp of exact), and NVVM
contracts multiply-adds into FMAs where LLVM on the CPU may not, so results agree to a few ulp, not bitwise.
relu, leaky_relu, identity and their gradients are single selects/multiplies and agree bitwise.
"""

from __future__ import annotations

from numba import cuda

from kernels.activations import activation_grad, apply_activation
from kernels.cuda import elementwise_grid, launch


@cuda.jit
def _forward(x, y, code, slope):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = apply_activation(x[i], code, slope)


@cuda.jit
def _backward(dy, y, dx, code, slope):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = activation_grad(dy[i], y[i], code, slope)


def run_forward(x, y, code, slope):
    """y = act(x) over the flat 1-D arrays x, y (same size and dtype) on the current stream; returns without
    synchronising."""
    blocks, threads = elementwise_grid(x.size)
    launch(_forward, blocks, threads, x, y, code, slope)


def run_backward(dy, y, dx, code, slope):
    """dx = dy * act'(x) from the saved output y, over flat 1-D arrays of one size and dtype, on the current
    stream; returns without synchronising."""
    blocks, threads = elementwise_grid(dy.size)
    launch(_backward, blocks, threads, dy, y, dx, code, slope)
