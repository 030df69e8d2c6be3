"""Input validation and dispatch shared by every kernel module.

Every public kernel function validates its arguments with these helpers *before* any compiled code runs,
so that bad input raises a clear ``TypeError`` / ``ValueError`` naming the argument and the offending
value, and no kernel can ever read or write out of bounds.

Conventions enforced here (see docs/ARCHITECTURE.md):

* floating arrays are float32 or float64, and all floating arguments of one call share one dtype;
* read-only inputs that are not C-contiguous are copied to a contiguous array (the caller's data is never
  modified); arrays the kernel *writes* (``out=``, parameters, optimizer state, running statistics) must
  already be C-contiguous and writeable, since a copy would silently drop the write;
* an ``out=`` array must have the exact shape and dtype of the result and must not overlap any input.
"""

from __future__ import annotations

import numbers
import types

import numpy as np
from numba import njit

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ALLOWED = "float32, float64"

# Arrays up to this many elements take the serial variant of a kernel: the OpenMP fork/join of a
# parallel=True kernel costs a few microseconds, more than the work itself for small arrays.
PARALLEL_MIN_ELEMENTS = 1 << 15


def is_device_array(a) -> bool:
    """True for CUDA device arrays: CuPy's, or anything exposing ``__cuda_array_interface__``."""
    return hasattr(type(a), "__cuda_array_interface__")


def is_array(a) -> bool:
    """A NumPy array or a device array."""
    return isinstance(a, np.ndarray) or is_device_array(a)


def device_module():
    """The array library of device arrays: ``cupy``, or under the Numba CUDA simulator
    (``NUMBA_ENABLE_CUDASIM=1``) ``kernels.cuda.simulator``, whose NumPy-backed arrays stand for device
    memory. Imported on first use, so nothing here needs a GPU until a device array is asked for."""
    from numba import config

    if config.ENABLE_CUDASIM:
        from kernels.cuda import simulator

        return simulator
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "CUDA device arrays need CuPy, which is not installed: pip install cupy-cuda12x (or cupy-cuda13x, "
            "matching your CUDA driver)"
        ) from exc
    return cupy


def array_module(*arrays):
    """numpy, or the device module (``device_module()``) when any argument is a device array."""
    for a in arrays:
        if a is not None and type(a) is not np.ndarray and is_device_array(a):
            return device_module()
    return np


def _all_host(values) -> bool:
    for a in values:
        if a is not None and type(a) is not np.ndarray:
            return False
    return True


def backend_of(*arrays, **named) -> str:
    """"cpu" when the array arguments are NumPy arrays, "cuda" when they are device arrays (CuPy, or
    anything with ``__cuda_array_interface__``); None arguments are skipped. Mixing the two raises a
    TypeError rather than copying behind the caller's back; keyword arguments give the message names."""
    if _all_host(arrays) and _all_host(named.values()):  # the hot path: a training step asks a few dozen times
        return "cpu"
    host = device = None
    for name, a in [(None, a) for a in arrays] + list(named.items()):
        if a is None:
            continue
        if is_device_array(a):
            device = device or (name or type(a).__name__)
        elif isinstance(a, np.ndarray):
            host = host or (name or "a NumPy array")
    if host and device:
        raise TypeError(
            f"{host} is on the CPU (NumPy) but {device} is on the GPU (device array); pass every array of "
            "one call on one device (nncore.to_device, cupy.asarray or cupy.asnumpy move them)"
        )
    return "cuda" if device else "cpu"


def _array_arg(name, a):
    """``a`` if it is an array, a device array other than the device module's own (a Numba DeviceNDArray, a
    torch CUDA tensor) as a zero-copy view of the module's type, so one set of checks and launches serves
    them all; a TypeError naming ``name`` for anything else. NumPy arrays pass at the cost of one check."""
    if type(a) is np.ndarray:
        return a
    if is_device_array(a):
        xp = device_module()
        return a if isinstance(a, xp.ndarray) else xp.asarray(a)
    if not isinstance(a, np.ndarray):
        raise _type_error(name, a)
    return a


def _type_error(name, a):
    return TypeError(f"{name} must be a numpy.ndarray or a CUDA device array (CuPy), got {type(a).__name__}")


def _writeable(a) -> bool:
    return getattr(a.flags, "writeable", True)  # CuPy arrays have no read-only flag: device memory is writeable


def as_float_array(name: str, a, *, ndim=None, min_ndim=None, dtype=None):
    """Validate a read-only floating input and return it C-contiguous (copying only if needed), on the
    device it came from."""
    a = _array_arg(name, a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; allowed dtypes: {_ALLOWED}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {a.dtype} but the other floating arguments are {np.dtype(dtype)}; "
            "mixing dtypes is not allowed (cast explicitly)"
        )
    _check_ndim(name, a, ndim, min_ndim)
    if not a.flags.c_contiguous:
        a = array_module(a).ascontiguousarray(a)
    return a


def _check_ndim(name, a, ndim, min_ndim):
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {a.shape}")


def writable_float_array(name: str, a, *, shape=None, dtype=None):
    """Validate a floating array the kernel writes into: exact shape/dtype, C-contiguous, writeable."""
    a = _array_arg(name, a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; allowed dtypes: {_ALLOWED}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)} (no dtype mixing)")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous because the kernel writes into it (strides {a.strides})")
    if not _writeable(a):
        raise ValueError(f"{name} is read-only but the kernel writes into it")
    return a


def _extent(a):
    """[low, high) byte addresses spanned by a device array (from its ``__cuda_array_interface__``)."""
    cai = a.__cuda_array_interface__
    shape, itemsize = cai["shape"], np.dtype(cai["typestr"]).itemsize
    strides = cai.get("strides")
    if strides is None:  # C-contiguous
        strides, step = [], itemsize
        for n in reversed(shape):
            strides.insert(0, step)
            step *= n
    ptr = cai["data"][0]
    low = ptr + sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = ptr + sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + itemsize
    return low, high


def may_share_memory(a, b) -> bool:
    """np.may_share_memory for NumPy and device arrays alike (bounds overlap, as NumPy's default)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):  # NumPy's arrays and the simulator's
        return np.may_share_memory(a, b)
    if is_device_array(a) != is_device_array(b) or a.size == 0 or b.size == 0:
        return False
    (a0, a1), (b0, b1) = _extent(a), _extent(b)
    return a0 < b1 and b0 < a1


def out_array(name: str, out, shape, dtype, inputs=()):
    """Return ``out`` validated against (shape, dtype), or a fresh array if ``out`` is None, on the device
    of ``inputs`` (the arrays the kernel reads).

    An ``out`` overlapping any input is rejected because the kernel would read values it has already
    overwritten.
    """
    if out is None:
        return array_module(*inputs).empty(shape, dtype=dtype)
    out = writable_float_array(name, out, shape=shape, dtype=dtype)
    for a in inputs:
        if a is not None and may_share_memory(out, a):
            raise ValueError(f"{name} overlaps an input array; pass a separate output buffer")
    return out


def common_float_dtype(**arrays) -> np.dtype:
    """Check that every non-None floating argument has one dtype (float32 or float64) and return it."""
    dtype = None
    first = None
    for name, a in arrays.items():
        if a is None:
            continue
        if type(a) is not np.ndarray and not is_array(a):
            raise _type_error(name, a)
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} has dtype {a.dtype}; allowed dtypes: {_ALLOWED}")
        if dtype is None:
            dtype, first = a.dtype, name
        elif a.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; "
                "floating arguments must share one dtype (cast explicitly)"
            )
    if dtype is None:
        raise TypeError("no floating array argument given")
    return dtype


def as_index_array(name: str, a, *, length=None):
    """Validate an integer index array (any integer dtype) and return it as contiguous int64, on the device
    it came from."""
    a = _array_arg(name, a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {a.dtype}; class indices must have an integer dtype")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if length is not None and a.shape[0] != length:
        raise ValueError(f"{name} has length {a.shape[0]}, expected {length} (one label per row)")
    if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
        bad = int((a > np.iinfo(np.int64).max).argmax())
        raise ValueError(f"{name}[{bad}] = {int(a[bad])} does not fit in int64")
    return array_module(a).ascontiguousarray(a, dtype=np.int64)


@njit(cache=True)
def _first_bad_label(target, num_classes, ignore_index, use_ignore):
    # one compiled pass instead of four NumPy expressions: labels are checked on every training step
    for i in range(target.shape[0]):
        t = target[i]
        if (t < 0 or t >= num_classes) and not (use_ignore and t == ignore_index):
            return i
    return -1


def check_labels(name: str, target, num_classes: int, ignore_index: int | None = None) -> None:
    """Raise ValueError naming the first label outside [0, num_classes) that is not ``ignore_index``.

    ``target`` is a 1-D int64 array (as returned by ``as_index_array``). On the device this is one
    reduction and one boolean read back (the kernels index logits by label, so the check cannot be
    skipped); the failing index is looked up only when there is one."""
    if is_device_array(target):
        bad = (target < 0) | (target >= num_classes)
        if ignore_index is not None:
            bad &= target != ignore_index
        i = int(bad.argmax()) if bool(bad.any()) else -1
    else:
        i = _first_bad_label(target, num_classes, 0 if ignore_index is None else ignore_index,
                             ignore_index is not None)
    if i >= 0:
        extra = f" and is not ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"{name}[{i}] = {int(target[i])} is outside the valid class range [0, {num_classes}){extra}"
        )


# Exact types that need no abstract-base-class check (isinstance against numbers.Real costs ~1 us, and a
# training step validates a few dozen scalars). bool is excluded: type(True) is bool, not int.
_REAL_TYPES = frozenset((float, int, np.float64, np.float32, np.int64, np.int32))
_INT_TYPES = frozenset((int, np.int64, np.int32, np.uint64, np.uint32))


def check_real(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Validate a real scalar argument against an interval and return it as a Python float."""
    if type(value) not in _REAL_TYPES and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} = {value} is out of range: must be {'>' if low_open else '>='} {low}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} = {value} is out of range: must be {'<' if high_open else '<='} {high}")
    return v


def check_int(name: str, value, *, low=None, high=None) -> int:
    """Validate an integer scalar argument (Python or NumPy integer) and return it as int."""
    if type(value) not in _INT_TYPES and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} = {v} is out of range: must be >= {low}")
    if high is not None and v > high:
        raise ValueError(f"{name} = {v} is out of range: must be <= {high}")
    return v


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction = {reduction!r} is not one of {REDUCTIONS}")
    return reduction


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} has shape {b.shape} but {name_a} has shape {a.shape}; they must match")


# LLVM fast-math flags for the compiled loops: reassociation lets sums vectorise, contraction allows FMA.
# Deliberately NOT 'nnan'/'ninf': NaN and Inf inputs must propagate as IEEE arithmetic says, so tests can
# pin down what non-finite input does. The order of a vectorised sum is fixed at compile time, so results
# stay bitwise reproducible from run to run and at every thread count.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # a set: Numba rejects frozenset

# Reductions over rows (bias gradient, BatchNorm statistics, the mean of a loss) split the rows into
# blocks of this fixed size, reduce each block (blocks in parallel), then add the block partials in order.
# The blocking does not depend on the thread count, so the result is bitwise the same at 1 or 2 threads.
REDUCE_BLOCK_ROWS = 64


@njit(cache=True)
def num_row_blocks(n):
    """How many REDUCE_BLOCK_ROWS-row blocks cover n rows (the last may be partial); njit and Python."""
    return (n + REDUCE_BLOCK_ROWS - 1) // REDUCE_BLOCK_ROWS


def serial_and_parallel(py_func, **options):
    """Compile one loop written with ``prange`` twice and return ``(serial, parallel)`` dispatchers.

    With parallel=False Numba runs ``prange`` as ``range``, so the serial variant is the same code without
    the OpenMP fork/join, which costs more than the whole work of a small input; public functions pick
    the serial one below PARALLEL_MIN_ELEMENTS. Each variant is compiled from its own copy of the
    function, named ``<name>_serial`` / ``<name>_parallel``, because Numba's on-disk cache names entries
    after the function: one function compiled with both option sets would share (and clobber) one entry.
    """

    def variant(suffix):
        f = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + suffix,
                               py_func.__defaults__, py_func.__closure__)
        f.__qualname__ = py_func.__qualname__ + suffix
        f.__doc__ = py_func.__doc__
        return f

    return njit(**options)(variant("_serial")), njit(parallel=True, **options)(variant("_parallel"))
