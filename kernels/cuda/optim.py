"""CUDA kernels of the optimizer updates (kernels/optim.py has the maths, the validation and the CPU side).

One launch per update over the flat buffers, a grid-stride loop, one element per thread per iteration:
each element's update is independent, so the kernels are race-free and the result does not depend on the
launch shape. The per-element arithmetic is the CPU kernels' own scalar helpers (``_adam_elem``, ...),
compiled for the device. An absent state buffer is passed as None, and the ``is None`` branches are pruned
at compile time as on the CPU.

``h`` is the tuple of hyper-parameter scalars in the array dtype and the flags are the booleans, exactly as
the public functions in kernels/optim.py build them for the CPU kernels.
"""

from __future__ import annotations

from numba import cuda

from kernels.cuda import elementwise_grid, launch
from kernels.optim import _adadelta_elem, _adagrad_elem, _adam_elem, _nadam_elem, _rmsprop_elem, _sgd_elem


@cuda.jit
def _sgd(p, g, buf, h, maximize, nesterov, first_step):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        if buf is None:
            p[i], _ = _sgd_elem(p[i], g[i], p[i], h, maximize, False, False, False)
        else:
            p[i], buf[i] = _sgd_elem(p[i], g[i], buf[i], h, maximize, nesterov, first_step, True)


@cuda.jit
def _adagrad(p, g, s, h, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], s[i] = _adagrad_elem(p[i], g[i], s[i], h, maximize)


@cuda.jit
def _rmsprop(p, g, sq, ga, buf, h, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        if ga is None:
            if buf is None:
                p[i], sq[i], _, _ = _rmsprop_elem(p[i], g[i], sq[i], sq[i], sq[i], h, maximize, False, False)
            else:
                p[i], sq[i], _, buf[i] = _rmsprop_elem(p[i], g[i], sq[i], sq[i], buf[i], h, maximize, False, True)
        elif buf is None:
            p[i], sq[i], ga[i], _ = _rmsprop_elem(p[i], g[i], sq[i], ga[i], sq[i], h, maximize, True, False)
        else:
            p[i], sq[i], ga[i], buf[i] = _rmsprop_elem(p[i], g[i], sq[i], ga[i], buf[i], h, maximize, True, True)


@cuda.jit
def _adadelta(p, g, sq, acc, h, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], sq[i], acc[i] = _adadelta_elem(p[i], g[i], sq[i], acc[i], h, maximize)


@cuda.jit
def _adam(p, g, m, v, vmax, h, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        if vmax is None:
            p[i], m[i], v[i], _ = _adam_elem(p[i], g[i], m[i], v[i], v[i], h, maximize, False)
        else:
            p[i], m[i], v[i], vmax[i] = _adam_elem(p[i], g[i], m[i], v[i], vmax[i], h, maximize, True)


@cuda.jit
def _nadam(p, g, m, v, h, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i], m[i], v[i] = _nadam_elem(p[i], g[i], m[i], v[i], h, maximize)


KERNELS = {"sgd": _sgd, "adagrad": _adagrad, "rmsprop": _rmsprop, "adadelta": _adadelta, "adam": _adam,
           "nadam": _nadam}


def run(rule, arrays, h, flags):
    """Launch the update ``rule`` on the flat 1-D ``arrays`` (param, grad, state...: as the CPU kernels take
    them) on the current stream; returns without synchronising."""
    blocks, threads = elementwise_grid(arrays[0].size)
    launch(KERNELS[rule], blocks, threads, *arrays, h, *flags)
