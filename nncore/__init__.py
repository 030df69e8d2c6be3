"""nncore: training neural networks on compiled kernels.

The arithmetic lives in the ``kernels`` package (Numba CPU kernels; the CUDA path comes next). This
package is the thin Python layer on top; so far it holds the device/array helpers the kernels need.
"""

from .device import array_module, available_devices, to_device, to_numpy

__version__ = "0.1.0"

__all__ = ["array_module", "available_devices", "to_device", "to_numpy", "__version__"]
