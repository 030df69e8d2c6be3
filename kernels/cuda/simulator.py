"""Device arrays for the Numba CUDA simulator: NumPy memory standing in for GPU memory, behind a small
CuPy-like namespace, so the whole GPU path (validation, dispatch, launches, the training loop on
``device="cuda"``) runs in CI without a GPU.

Under ``NUMBA_ENABLE_CUDASIM=1`` the simulator runs ``@cuda.jit`` kernels on NumPy arrays, and CuPy cannot
be used at all. ``kernels._util.device_module()`` then returns this module instead of ``cupy``: its
``SimDeviceArray`` is an ``ndarray`` subclass that exposes ``__cuda_array_interface__`` (so the dispatch
treats it as a device array), and the functions the library calls on ``cupy`` (``empty``, ``zeros``,
``asarray``, ``asnumpy``, ``matmul``, ...) are NumPy's, with array results viewed as ``SimDeviceArray``.
NumPy ufuncs and methods keep the subclass, so arithmetic on simulated device arrays stays "on the device"
as it would with CuPy.

Like CuPy, reductions and ufuncs give 0-d device arrays, never host scalars (so code that would wait for a
GPU by converting one shows up as a ``float()`` call). What it does not emulate: CuPy refuses implicit
conversion to NumPy (``np.asarray(cupy_array)`` raises), where a ``SimDeviceArray`` converts silently; and
indexing one element (which the simulated kernels do) and a few methods (``argmax``) give NumPy scalars
where CuPy gives 0-d device arrays. The kernels' dispatch rejects host/device mixes itself, so this
only matters to code that calls NumPy on device arrays, which the tests on a real GPU catch.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

ndarray = None  # set below: the SimDeviceArray class, as cupy.ndarray is CuPy's


class SimDeviceArray(np.ndarray):
    """A NumPy array that stands for device memory under the CUDA simulator."""

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.__array_interface__["data"][0], not self.flags.writeable),
            "strides": None if self.flags.c_contiguous else self.strides,
            "version": 3,
        }

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # CuPy never hands back a host scalar: reductions and ufuncs on 0-d arrays give 0-d device arrays
        return np.asarray(arr).view(SimDeviceArray)

    def get(self):
        """A host copy (CuPy's ``ndarray.get``)."""
        return np.array(self, copy=True).view(np.ndarray)


ndarray = SimDeviceArray


def _on_device(result):
    if type(result) is np.ndarray or isinstance(result, np.generic):
        return np.asarray(result).view(SimDeviceArray)
    if isinstance(result, tuple):
        return tuple(_on_device(r) for r in result)
    return result


def asarray(a, dtype=None):
    """``a`` as a simulated device array: no copy when it already is one of ``dtype``, else a copy (as
    ``cupy.asarray`` copies host data to the device)."""
    if isinstance(a, SimDeviceArray) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return np.array(a, dtype=dtype, copy=True).view(SimDeviceArray)


def asnumpy(a):
    """A host NumPy copy of ``a`` (``cupy.asnumpy``)."""
    return np.array(a, copy=True).view(np.ndarray)


def get_array_module(*arrays):
    for a in arrays:
        if isinstance(a, SimDeviceArray):
            return sys.modules[__name__]
    return np


def __getattr__(name):
    """Every other NumPy function, with array results on the simulated device (``cupy.zeros``, ...)."""
    attr = getattr(np, name)
    if not callable(attr) or isinstance(attr, type):
        return attr  # dtypes and constants: cupy.float32 is numpy.float32

    @functools.wraps(attr)
    def on_device(*args, **kwargs):
        return _on_device(attr(*args, **kwargs))

    return on_device
