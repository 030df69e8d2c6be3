"""Where arrays live: NumPy arrays on the CPU, CuPy arrays on a CUDA device.

CuPy is imported lazily, only when a device array is asked for, so importing nncore never needs a GPU.
"""

from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")


def _cupy():
    try:
        import cupy
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed: pip install cupy-cuda12x (or cupy-cuda13x, "
            "matching your CUDA driver)"
        ) from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("device 'cuda' requested but CuPy sees no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(f"device 'cuda' requested but the CUDA runtime reports: {exc}") from exc
    return cupy


def available_devices() -> list[str]:
    """The devices usable on this machine: always "cpu", plus "cuda" when CuPy sees a GPU."""
    try:
        _cupy()
    except RuntimeError:
        return ["cpu"]
    return ["cpu", "cuda"]


def _check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not one of {DEVICES}")
    return device


def array_module(*arrays):
    """numpy for host arrays, cupy when any argument is a device array (``__cuda_array_interface__``)."""
    for a in arrays:
        if a is not None and not isinstance(a, np.ndarray) and hasattr(a, "__cuda_array_interface__"):
            return _cupy()
    return np


def to_numpy(a) -> np.ndarray:
    """A host NumPy array with the data of ``a`` (no copy when it already is one)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return _cupy().asnumpy(a)
    return np.asarray(a)


def to_device(a, device: str):
    """``a`` on the given device ("cpu" -> NumPy, "cuda" -> CuPy); no copy when it is already there."""
    if _check_device(device) == "cpu":
        return to_numpy(a)
    return _cupy().asarray(a)
