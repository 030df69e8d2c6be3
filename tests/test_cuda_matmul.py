"""kernels.matmul.matmul on device arrays: the public function's product on the device against the CPU's and
the float64 product, out=, the same errors as on the CPU, and the TF32 switch.

Under the CUDA simulator (tests/conftest.py) the device module's matmul is NumPy's, so these check the
dispatch, the validation and that results stay device arrays; with CuPy on a GPU the same tests check
cuBLAS's product. The TF32 tests need CuPy (the compute type is CuPy's setting) and skip in the simulator.

Tolerances: the float64 product with the worst-case rounding bound of any summation order in the dtype,
(K + 1) eps (|A| @ |B|), which also covers cuBLAS's blocking and FMAs; device against CPU twice that (each
is within the bound of the exact product). The TF32 tests use inputs whose float32 product is exact (see
there), so full float32 must give it bitwise and TF32 cannot.
"""

from __future__ import annotations

import importlib
import sys
import types

import numba
import numpy as np
import pytest

from kernels.matmul import matmul
from tests.helpers import DTYPE_IDS, DTYPES, assert_same_error, random_array

M = importlib.import_module("kernels.matmul")  # the module: the package's attribute is the function
cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

# one element, one row, rows and columns of odd sizes, and the empty cases (K = 0 gives zeros)
SHAPES = [(1, 1, 1), (1, 7, 3), (7, 33, 5), (65, 4, 2), (3, 0, 4), (0, 5, 2)]
SHAPE_IDS = [f"{m}x{k}x{n}" for m, k, n in SHAPES]


def _bound(a, b, rel=0.0):
    """(K + 1) eps (|A| @ |B|), plus ``rel`` (|A| @ |B|) for inputs rounded before the product."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return ((a.shape[1] + 1) * np.finfo(a.dtype).eps + rel) * (np.abs(a64) @ np.abs(b64)) + 1e-300


def _check(c, a, b, name, rel=0.0):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    err = np.abs(c.astype(np.float64) - exact)
    assert (err <= _bound(a, b, rel)).all(), f"{name}: worst error {err.max()!r}"


@pytest.mark.parametrize("impl", ["blas", "numba"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_device_product_matches_cpu_and_exact(dev, rng, shape, dtype, impl):
    m, k, n = shape
    a = random_array(rng, (m, k), dtype)
    b = random_array(rng, (k, n), dtype)
    c = matmul(dev.asarray(a), dev.asarray(b), impl=impl)
    assert dev.get_array_module(c) is dev, type(c)
    assert c.shape == (m, n) and c.dtype == dtype
    c_host = dev.asnumpy(c)
    _check(c_host, a, b, "device vs float64")
    c_cpu = matmul(a, b, impl=impl)
    assert (np.abs(c_host.astype(np.float64) - c_cpu) <= 2 * _bound(a, b)).all(), "device vs CPU"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_out_and_noncontiguous_device_inputs(dev, rng, dtype):
    a_full = random_array(rng, (6, 9), dtype)
    b = random_array(rng, (5, 4), dtype)
    a_dev = dev.asarray(a_full)[:, ::2]  # (6, 5), strided: copied contiguous on the device
    b_dev = dev.asarray(b).T.copy().T    # F-ordered
    out = dev.asarray(np.full((6, 4), 7.0, dtype))
    c = matmul(a_dev, b_dev, out=out)
    assert c is out
    _check(dev.asnumpy(c), a_full[:, ::2], b, "out")
    # TF32 rounds each float32 input to 10 mantissa bits (2^-10 relative at worst): 2^-9 per product
    c = matmul(a_dev, b_dev, allow_tf32=True)
    _check(dev.asnumpy(c), a_full[:, ::2], b, "allow_tf32", 2.0**-9 if dtype == np.float32 else 0.0)


def test_cpu_ignores_allow_tf32(rng):
    a = random_array(rng, (7, 33), np.float32)
    b = random_array(rng, (33, 5), np.float32)
    assert matmul(a, b, allow_tf32=True).tobytes() == matmul(a, b).tobytes()


# bad calls, each given (a, b, xp): (4, 3) and (3, 5) float32 arrays and their array module
BAD_CALLS = {
    "inner-dims": lambda a, b, xp: matmul(a, xp.asarray(np.ones((4, 5), np.float32))),
    "not-2d": lambda a, b, xp: matmul(a[0], b),
    "dtype-mix": lambda a, b, xp: matmul(a, b.astype(np.float64)),
    "int-dtype": lambda a, b, xp: matmul(xp.asarray(np.ones((4, 3), np.int32)), b),
    "impl": lambda a, b, xp: matmul(a, b, impl="cublas"),
    "allow_tf32": lambda a, b, xp: matmul(a, b, allow_tf32="yes"),
    "out-shape": lambda a, b, xp: matmul(a, b, out=xp.empty((5, 4), np.float32)),
    "out-dtype": lambda a, b, xp: matmul(a, b, out=xp.empty((4, 5), np.float64)),
    "out-strided": lambda a, b, xp: matmul(a, b, out=xp.empty((4, 10), np.float32)[:, ::2]),
    "out-overlaps-a": lambda a, b, xp: _overlapping_out(b, xp),
}


def _overlapping_out(b, xp):
    """A product whose a is the first 12 elements of out's memory: an out that overlaps an input in part."""
    buf = xp.asarray(np.arange(1.0, 21.0, dtype=np.float32).reshape(4, 5))
    return matmul(buf.reshape(-1)[:12].reshape(4, 3), b, out=buf)


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_same_errors_as_on_the_cpu(dev, rng, call):
    a = random_array(rng, (4, 3), np.float32)
    b = random_array(rng, (3, 5), np.float32)
    assert_same_error(lambda: call(a, b, np), lambda: call(dev.asarray(a), dev.asarray(b), dev))


def test_host_device_mix_names_the_arguments(dev, rng):
    a = random_array(rng, (4, 3), np.float32)
    b = random_array(rng, (3, 5), np.float32)
    with pytest.raises(TypeError, match=r"^b is on the CPU \(NumPy\) but a is on the GPU"):
        matmul(dev.asarray(a), b)
    with pytest.raises(TypeError, match=r"^out is on the CPU \(NumPy\) but a is on the GPU"):
        matmul(dev.asarray(a), dev.asarray(b), out=np.empty((4, 5), np.float32))


# ------------------------------------------------------------------------------------------------------
# TF32 (CuPy on a real GPU only)


@pytest.fixture
def cupy_linalg(dev):
    """CuPy's compute-type module, with the float32 setting restored after the test."""
    if dev.__name__ != "cupy":
        pytest.skip("the float32 compute type is CuPy's setting (the simulator's matmul is NumPy's)")
    from cupy._core import _routines_linalg as linalg

    saved = dev._core.get_compute_type(np.float32)
    yield linalg
    dev._core.set_compute_type(np.float32, saved)


def _exact_in_float32(rng, m=128, k=64, n=128):
    """a = s (1 + 2^-13), b = t with s, t random in {1, 2}: every product and partial sum needs at most 22
    significant bits, so any float32 summation order gives exactly (1 + 2^-13) (s @ t). TF32 keeps 10
    mantissa bits and rounds a to s, giving s @ t: at least 64 * 2^-13 away. Sizes large enough that cuBLAS
    takes tensor-core kernels when it may."""
    s = rng.integers(1, 3, size=(m, k)).astype(np.float64)
    t = rng.integers(1, 3, size=(k, n)).astype(np.float64)
    a = (s * (1 + 2.0**-13)).astype(np.float32)
    exact = ((1 + 2.0**-13) * (s @ t)).astype(np.float32)
    assert (exact.astype(np.float64) == (1 + 2.0**-13) * (s @ t)).all()
    return a, t.astype(np.float32), exact


def _spy_compute_type(dev, monkeypatch):
    """Record CuPy's float32 compute type at each matmul call made through the device module."""
    seen = []
    real = dev.matmul

    def spy(*args, **kwargs):
        seen.append(dev._core.get_compute_type(np.float32))
        return real(*args, **kwargs)

    monkeypatch.setattr(dev, "matmul", spy)
    return seen


@pytest.mark.gpu
def test_float32_is_full_precision_by_default_even_with_tf32_set(dev, rng, cupy_linalg, monkeypatch):
    # what CUPY_TF32=1 in the environment does on first use: the float32 compute type becomes TF32
    dev._core.set_compute_type(np.float32, cupy_linalg.COMPUTE_TYPE_TF32)
    before = dev._core.get_compute_type(np.float32)
    a, b, exact = _exact_in_float32(rng)
    seen = _spy_compute_type(dev, monkeypatch)
    c = matmul(dev.asarray(a), dev.asarray(b))
    assert seen == [cupy_linalg.COMPUTE_TYPE_DEFAULT]
    assert dev.asnumpy(c).tobytes() == exact.tobytes(), "the float32 product lost bits (TF32?)"
    assert dev._core.get_compute_type(np.float32) == before, "the caller's compute type was not restored"


@pytest.mark.gpu
def test_allow_tf32_sets_tf32_for_the_call_only(dev, rng, cupy_linalg, monkeypatch):
    dev._core.set_compute_type(np.float32, cupy_linalg.COMPUTE_TYPE_DEFAULT)
    a, b, exact = _exact_in_float32(rng)
    seen = _spy_compute_type(dev, monkeypatch)
    c = dev.asnumpy(matmul(dev.asarray(a), dev.asarray(b), allow_tf32=True))
    capable = int(dev.cuda.Device().compute_capability) >= 80
    assert seen == [cupy_linalg.COMPUTE_TYPE_TF32 if capable else cupy_linalg.COMPUTE_TYPE_DEFAULT]
    assert dev._core.get_compute_type(np.float32) == cupy_linalg.COMPUTE_TYPE_DEFAULT
    # TF32 or not is cuBLAS's choice: either the exact float32 product or the product of the TF32 inputs
    tf32 = (a.astype(np.float64).round() @ b.astype(np.float64)).astype(np.float32)
    assert ((c == exact) | (c == tf32)).all()


@pytest.mark.gpu
def test_float64_leaves_the_compute_type_alone(dev, rng, cupy_linalg, monkeypatch):
    def fail(*args):
        raise AssertionError("set_compute_type called for a float64 product")

    monkeypatch.setattr(dev._core, "set_compute_type", fail)
    a = random_array(rng, (7, 33), np.float64)
    b = random_array(rng, (33, 5), np.float64)
    _check(dev.asnumpy(matmul(dev.asarray(a), dev.asarray(b), allow_tf32=True)), a, b, "float64")


class _StandInCupy:
    """Just enough of CuPy for kernels.matmul.device_matmul's compute-type switch, modelled on CuPy's
    cupy/_core/_routines_linalg.pyx (get_compute_type / set_compute_type, a process-wide setting per dtype),
    so the switch and its restoring run in CI; the real module is exercised by the tests above on a GPU."""

    __name__ = "cupy"
    DEFAULT, PEDANTIC, TF32 = 1, 2, 7

    def __init__(self, capability, initial):
        self.setting, self.log = initial, []
        device = types.SimpleNamespace(compute_capability=capability)
        self.cuda = types.SimpleNamespace(Device=lambda: device)
        linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=self.DEFAULT, COMPUTE_TYPE_PEDANTIC=self.PEDANTIC,
                                       COMPUTE_TYPE_TF32=self.TF32)
        self._core = types.ModuleType("cupy._core")
        self._core._routines_linalg = linalg
        self._core.get_compute_type = lambda dtype: self.setting
        self._core.set_compute_type = self._set

    def _set(self, dtype, compute_type):
        assert np.dtype(dtype) == np.float32
        self.setting = compute_type

    def matmul(self, a, b, out):
        self.log.append(self.setting)
        if a is None:
            raise RuntimeError("cuBLAS failed")
        np.matmul(a, b, out=out)


@pytest.mark.parametrize("capability,initial,allow,during", [
    ("90", 7, False, 1),  # CUPY_TF32=1 in the environment: full float32 unless allowed
    ("90", 7, True, 7),
    ("90", 1, True, 7),
    ("90", 2, False, 2),  # the caller's PEDANTIC is full float32 already: left as it is
    ("75", 1, True, 1),  # no TF32 before compute capability 8.0: silently full float32
], ids=["tf32-env-default", "tf32-env-allowed", "default-allowed", "pedantic-kept", "turing-allowed"])
def test_compute_type_switch_with_a_stand_in_cupy(monkeypatch, rng, capability, initial, allow, during):
    fake = _StandInCupy(capability, initial)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupy._core", fake._core)
    monkeypatch.setattr(M, "device_module", lambda: fake)
    a = random_array(rng, (3, 4), np.float32)
    b = random_array(rng, (4, 2), np.float32)
    c, c2 = np.empty((3, 2), np.float32), np.empty((2, 2), np.float32)
    M.device_matmul(((a, b, c), (b.T, b, c2)), allow)
    assert fake.log == [during, during] and fake.setting == initial  # one switch for both GEMMs, restored
    assert c.tobytes() == (a @ b).tobytes()
    with pytest.raises(RuntimeError, match="cuBLAS failed"):
        M.device_matmul(((None, b, c),), allow)
    assert fake.setting == initial, "not restored after an error"
    fake.log.clear()
    M.device_matmul(((a.astype(np.float64), b.astype(np.float64), c.astype(np.float64)),), allow)
    assert fake.log == [initial], "float64 must not touch the float32 compute type"
