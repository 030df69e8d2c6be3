"""The providers a benchmark compares: who computes the op, on which device, with which arrays.

    nncore-cpu   nncore's Numba kernels on NumPy arrays
    numpy        a plain NumPy implementation of the same maths: the naive baseline
    torch-cpu    PyTorch eager on the CPU (when torch is installed)
    jax-cpu      JAX, jit-compiled, on the CPU (when jax is installed)
    nncore-cuda  nncore's numba.cuda kernels on CuPy arrays (a CUDA GPU, CuPy and numba-cuda)
    cupy         a plain CuPy implementation of the same maths: the naive GPU baseline
    torch-cuda   PyTorch eager on the GPU

A provider that cannot run here says why (``missing()``); the benchmark then skips with that reason. Under
the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), ``nncore-cuda`` and ``cupy`` run on NumPy-backed
simulated device arrays, for correctness only and only with the ``tiny`` preset: the simulator runs one
Python call per thread.
"""

from __future__ import annotations

import importlib
import os
from functools import cached_property

import numpy as np

from nncore.bench import CPU_PROVIDERS as CPU
from nncore.bench import GPU_PROVIDERS as GPU
from nncore.bench import PROVIDERS as NAMES

__all__ = ["CPU", "GPU", "NAMES", "Provider", "get"]


def _simulating():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _import(name):
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # ImportError, or a broken install raising something else at import
        return None, f"{name} is not importable here ({type(exc).__name__}: {exc})"


class Provider:
    """One provider: its name, its device ("cpu" or "cuda"), and how to move arrays to and from it."""

    def __init__(self, name):
        if name not in NAMES:
            raise ValueError(f"unknown provider {name!r}; the providers are {', '.join(NAMES)}")
        self.name = name
        self.device = "cpu" if name in CPU else "cuda"
        self.library = name.split("-")[0]  # nncore, numpy, torch, jax, cupy

    def __repr__(self):
        return f"Provider({self.name!r})"

    @property
    def rtol(self):
        """The float32 relative tolerance its results are checked with: nncore's kernels are held to 2e-5
        against the float64 oracle; the other providers (other summation orders, other exp/log) to 1e-4."""
        return 2e-5 if self.library == "nncore" else 1e-4

    @property
    def simulated(self):
        return self.device == "cuda" and _simulating()

    # ---- availability ----------------------------------------------------------------------------------

    def missing(self, preset="quick"):
        """Why this provider cannot run here (a sentence), or None when it can."""
        if self.name in ("nncore-cpu", "numpy"):
            return None
        if self.name == "torch-cpu":
            why = _import("torch")[1]
            return why and f"PyTorch not usable (pip install torch==2.13.0): {why}"
        if self.name == "jax-cpu":
            os.environ["JAX_PLATFORMS"] = "cpu"  # before the first import: the CPU backend, no GPU probing
            why = _import("jax")[1]
            return why and f"JAX not usable (pip install jax): {why}"
        if self.name == "torch-cuda":
            torch, why = _import("torch")
            if why:
                return f"PyTorch not usable: {why}"
            if _simulating():
                return "torch-cuda needs a real GPU, not the CUDA simulator"
            return None if torch.cuda.is_available() else "no CUDA device visible to PyTorch"
        # nncore-cuda and cupy
        if _simulating():
            if preset != "tiny":
                return "the CUDA simulator is for correctness only: use --bench-preset=tiny"
            return None
        cupy, why = _import("cupy")
        if why:
            return f"CuPy not usable (the GPU providers need a CUDA device and cupy-cuda12x/13x): {why}"
        try:  # the driver may answer while a kernel still cannot compile (no NVRTC, no libNVVM)
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "no CUDA device"
            float((cupy.arange(4, dtype=cupy.float32) + 1).sum())
            if self.name == "nncore-cuda":
                import kernels

                float(kernels.relu(cupy.ones(4, dtype=cupy.float32)).sum())  # compiles and launches a kernel
        except Exception as exc:
            return f"the GPU is not usable from {self.library} ({type(exc).__name__}: {exc})"
        return None

    # ---- modules ---------------------------------------------------------------------------------------

    @cached_property
    def xp(self):
        """The array module: numpy, cupy (or the simulator's stand-in), torch, or jax.numpy."""
        if self.device == "cuda" and self.library in ("nncore", "cupy"):
            from kernels._util import device_module

            return device_module()
        if self.library == "torch":
            return importlib.import_module("torch")
        if self.library == "jax":
            return importlib.import_module("jax.numpy")
        return np

    @cached_property
    def torch_device(self):
        return "cuda" if self.device == "cuda" else "cpu"

    # ---- arrays ----------------------------------------------------------------------------------------

    def asarray(self, a):
        """A copy of NumPy array ``a`` on this provider (a torch tensor for torch, a jax.Array for jax)."""
        a = np.ascontiguousarray(a)
        if self.library == "torch":
            return self.xp.from_numpy(a.copy()).to(self.torch_device)
        if self.library == "jax":
            import jax

            return jax.device_put(a)
        if self.device == "cuda":
            return self.xp.asarray(a)
        return a.copy()

    def to_numpy(self, value):
        """``value`` (an array, a scalar, or a tuple/list/dict of them) as NumPy, synchronising on the way."""
        if isinstance(value, (tuple, list)):
            return type(value)(self.to_numpy(v) for v in value)
        if isinstance(value, dict):
            return {k: self.to_numpy(v) for k, v in value.items()}
        if value is None or isinstance(value, (int, float, np.generic)) or type(value) is np.ndarray:
            return value
        if self.library == "torch":
            return value.detach().cpu().numpy()
        if hasattr(value, "get"):  # a CuPy array, or the simulator's stand-in
            return value.get()
        return np.asarray(value)  # a jax.Array

    def sync(self, result=None):
        """Wait until the device has finished the work that produced ``result`` (a no-op on the CPU). On the
        GPU every nncore launch and every CuPy call goes to CuPy's current stream, so waiting for it does."""
        if self.library == "jax":
            import jax

            jax.block_until_ready(result)
        elif self.device == "cuda" and not self.simulated:
            if self.library == "torch":
                self.xp.cuda.synchronize()
            else:
                self.xp.cuda.get_current_stream().synchronize()
        return result


_cache: dict[str, Provider] = {}


def get(name) -> Provider:
    if name not in _cache:
        _cache[name] = Provider(name)
    return _cache[name]
