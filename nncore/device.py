"""Where arrays live: NumPy arrays on the CPU ("cpu"), CuPy arrays on a CUDA GPU ("cuda").

CuPy is imported lazily, only when a device array is asked for, so importing nncore never needs a GPU.
Under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, how CI tests the GPU path) "cuda" arrays are
``kernels.cuda.simulator`` arrays: NumPy memory standing for the device (see kernels._util.device_module).
"""

from __future__ import annotations

import numpy as np

from kernels._util import array_module, device_module, is_device_array

__all__ = ["DEVICES", "DeviceUnavailableError", "array_module", "available_devices", "check_device", "device_of",
           "is_device_array", "to_device", "to_numpy"]

DEVICES = ("cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """Device "cuda" was asked for where there is none: no CuPy, or no CUDA device (the message says which)."""


def _cuda():
    """The device module, after checking a GPU is there: one RuntimeError naming what is missing."""
    try:
        xp = device_module()
    except RuntimeError as exc:
        raise DeviceUnavailableError(f"device 'cuda' was requested but {exc}") from None
    if xp.__name__ == "cupy":
        try:
            count = xp.cuda.runtime.getDeviceCount()
        except xp.cuda.runtime.CUDARuntimeError as exc:  # pragma: no cover - depends on the machine
            raise DeviceUnavailableError(f"device 'cuda' was requested but the CUDA runtime reports: {exc}") from None
        if count < 1:  # pragma: no cover - depends on the machine
            raise DeviceUnavailableError("device 'cuda' was requested but CuPy sees no CUDA device")
    return xp


def available_devices() -> list[str]:
    """The devices usable here: always "cpu", plus "cuda" when CuPy sees a GPU (or the simulator is on)."""
    try:
        _cuda()
    except DeviceUnavailableError:
        return ["cpu"]
    return ["cpu", "cuda"]


def check_device(device) -> str:
    """``device`` if it is "cpu" or "cuda" ("cuda:0" and other indices are not supported), else ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not one of {DEVICES}")
    return device


def device_of(a) -> str:
    """"cuda" for a device array, "cpu" for anything else."""
    return "cuda" if is_device_array(a) else "cpu"


def to_numpy(a) -> np.ndarray:
    """A host NumPy array with the data of ``a`` (no copy when it already is one)."""
    if is_device_array(a):
        return device_module().asnumpy(a)
    return np.asarray(a)


def to_device(a, device: str):
    """``a`` on the given device ("cpu" -> NumPy, "cuda" -> CuPy); no copy when it is already there."""
    if check_device(device) == "cpu":
        return to_numpy(a)
    xp = _cuda()
    return a if isinstance(a, xp.ndarray) else xp.asarray(a)


def free_device_bytes() -> int:
    """Free memory on the current GPU, in bytes (CuPy's memory pool counts as free: it reuses it)."""
    xp = _cuda()
    if xp.__name__ != "cupy":
        return 1 << 62  # the simulator's "device" is host memory
    free, _ = xp.cuda.runtime.memGetInfo()
    pool = xp.get_default_memory_pool()
    return int(free + pool.free_bytes())
