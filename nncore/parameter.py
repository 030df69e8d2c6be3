"""Parameters, and the flat buffers that hold them.

A ``Parameter`` is a pair of arrays: ``data`` (the values) and ``grad`` (the gradient of the loss with
respect to them, written by ``backward``). Every module with parameters packs them into two contiguous 1-D
buffers, one for the values and one for the gradients, and each parameter's ``data`` / ``grad`` is a
reshaped *view* of its slice. A container (Sequential, MLP) repacks its children's parameters into one
pair of buffers for the whole model, so an optimizer step is one kernel call over every parameter, and
clipping the global gradient norm is one reduction.

Rules that keep the views valid:
* ``data`` and ``grad`` are never rebound after packing; loading values copies into them
  (``param.data[...] = value``). Assigning a new array to ``param.data`` breaks the link to the buffer and
  is refused.
* Packing copies the current values, so a layer built (and initialised) on its own keeps its values when
  a container adopts it; the old per-layer buffers are simply dropped.
"""

from __future__ import annotations

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype):
    """The parameter dtype as a numpy dtype; TypeError for anything but float32/float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype {dtype!r} is not a dtype; allowed: float32, float64") from None
    if dt not in _DTYPES:
        raise TypeError(f"dtype {dt} is not supported; allowed dtypes: float32, float64")
    return dt


class Parameter:
    """A trainable array and its gradient, both views of their model's flat buffers."""

    __slots__ = ("_data", "_grad", "_flat", "_flat_grad", "_offset")

    def __init__(self, value):
        value = np.asarray(value)
        check_dtype(value.dtype)
        flat = np.ascontiguousarray(value, dtype=value.dtype).reshape(-1).copy()
        self._bind(flat, np.zeros_like(flat), 0, value.shape)

    def _bind(self, flat, flat_grad, offset, shape):
        size = int(np.prod(shape, dtype=np.int64))
        self._flat, self._flat_grad, self._offset = flat, flat_grad, offset
        self._data = flat[offset:offset + size].reshape(shape)
        self._grad = flat_grad[offset:offset + size].reshape(shape)

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        raise AttributeError(
            "Parameter.data is a view of the model's flat parameter buffer and cannot be rebound; "
            "copy values into it instead: param.data[...] = value"
        )

    @property
    def grad(self):
        return self._grad

    @property
    def shape(self):
        return self._data.shape

    @property
    def size(self):
        return self._data.size

    @property
    def dtype(self):
        return self._data.dtype

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


def pack(params):
    """Move ``params`` (a list of Parameter, all one dtype and array type) into one fresh pair of flat
    buffers, in order, keeping their values; return (flat, flat_grad). Gradients start at zero."""
    if not params:
        return None, None
    dtypes = {p.dtype for p in params}
    if len(dtypes) > 1:
        raise TypeError(f"all parameters of a model must have one dtype, got {sorted(str(d) for d in dtypes)}")
    xp = _array_module(params[0].data)
    total = sum(p.size for p in params)
    flat = xp.empty(total, dtype=params[0].dtype)
    flat_grad = xp.zeros(total, dtype=params[0].dtype)
    offset = 0
    for p in params:
        flat[offset:offset + p.size] = p.data.reshape(-1)
        p._bind(flat, flat_grad, offset, p.shape)
        offset += p.size
    return flat, flat_grad


def move(params, device):
    """Put ``params`` on ``device`` ("cpu" / "cuda"), keeping each one's flat buffer, offset and identity:
    every flat buffer they live in is copied once to the device (values and gradients) and each parameter
    is rebound to views of the copy. A no-op for parameters already there."""
    from .device import to_device

    moved = []  # (old flat, new flat, new grad): compared by identity, ids of freed arrays can be reused
    for p in params:
        for old, flat, grad in moved:
            if p._flat is old:
                break
        else:
            old, flat, grad = p._flat, to_device(p._flat, device), to_device(p._flat_grad, device)
            moved.append((old, flat, grad))
        p._bind(flat, grad, p._offset, p.shape)


def flat_span(params):
    """(data, grad) 1-D views covering exactly ``params`` when they are consecutive slices of one flat
    buffer in the given order (the normal case for a model's parameters), else None."""
    if not params:
        return None
    first = params[0]
    offset = first._offset
    for p in params:
        if p._flat is not first._flat or p._offset != offset:
            return None
        offset += p.size
    return first._flat[first._offset:offset], first._flat_grad[first._offset:offset]


def _array_module(a):
    from kernels._util import array_module

    return array_module(a)
