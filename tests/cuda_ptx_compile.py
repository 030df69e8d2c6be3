"""Compile recorded CUDA kernel launches to PTX for an sm_90 GPU (H100), without a GPU.

Run by tests/test_cuda_ptx.py in a process where the simulator is off: reads the (module, kernel, argument
types) records the simulator tests left, compiles each kernel's Python function for the device with those
types, and prints one line per kernel and signature ("ok" or the error). numba-cuda asks the current
device for its compute capability when it compiles device functions; there is none, so that query is
answered with (9, 0).
"""

import importlib
import pickle
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout this script belongs to

import numba.cuda.dispatcher as dispatcher
from numba import cuda

dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

failures = 0
for module, name, signature in pickle.load(open(sys.argv[1], "rb")):
    kernel = getattr(importlib.import_module(module), name)
    try:
        cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
        print(f"ok    {module}.{name}{signature}")
    except Exception as e:  # report every kernel, then fail once
        failures += 1
        print(f"FAIL  {module}.{name}{signature}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
sys.exit(1 if failures else 0)
