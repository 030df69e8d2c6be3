"""The validation helpers every public kernel relies on, and the device helpers of nncore."""

import numpy as np
import pytest

from kernels import _util as U
from nncore import array_module, available_devices, to_device, to_numpy


def test_as_float_array_accepts_and_copies_only_when_needed(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    assert U.as_float_array("x", a) is a
    t = U.as_float_array("x", a.T)
    assert t.flags.c_contiguous and np.array_equal(t, a.T)


@pytest.mark.parametrize("bad,err,match", [
    ([1.0, 2.0], TypeError, "x must be a numpy.ndarray or a CUDA device array .CuPy., got list"),
    (np.ones(3, np.int32), TypeError, "x has dtype int32; allowed dtypes: float32, float64"),
    (np.ones(3, np.float16), TypeError, "float16"),
    (np.ones(3), ValueError, "x must be 2-D"),
])
def test_as_float_array_rejects(bad, err, match):
    with pytest.raises(err, match=match):
        U.as_float_array("x", bad, ndim=2)


def test_dtype_mixing_rejected():
    with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
        U.common_float_dtype(x=np.ones(2, np.float32), b=None, w=np.ones(2))
    assert U.common_float_dtype(x=np.ones(2), w=np.ones(2)) == np.float64


def test_writable_and_out_checks():
    base = np.ones((4, 4))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        U.writable_float_array("out", base[:, ::2])
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean is read-only"):
        U.writable_float_array("running_mean", ro)
    with pytest.raises(ValueError, match=r"out has shape \(4, 4\), expected \(2, 2\)"):
        U.out_array("out", base, (2, 2), np.float64)
    with pytest.raises(TypeError, match="out has dtype float64, expected float32"):
        U.out_array("out", base, (4, 4), np.float32)
    with pytest.raises(ValueError, match="out overlaps an input"):
        U.out_array("out", base, (4, 4), np.float64, inputs=(base,))
    fresh = U.out_array("out", None, (2, 3), np.float32)
    assert fresh.shape == (2, 3) and fresh.dtype == np.float32


def test_labels_and_scalars():
    t = U.as_index_array("target", np.array([0, 2, 1], np.uint8), length=3)
    assert t.dtype == np.int64
    with pytest.raises(ValueError, match=r"target\[2\] = 5 is outside the valid class range \[0, 4\)"):
        U.check_labels("target", np.array([0, -100, 5]), 4, ignore_index=-100)
    with pytest.raises(ValueError, match=r"target\[1\] = -100"):
        U.check_labels("target", np.array([0, -100]), 4)
    with pytest.raises(TypeError, match="class indices must have an integer dtype"):
        U.as_index_array("target", np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="length 2, expected 3"):
        U.as_index_array("target", np.array([0, 1]), length=3)
    with pytest.raises(ValueError, match=r"p = 1 is out of range: must be < 1"):
        U.check_real("p", 1, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match="p must not be NaN"):
        U.check_real("p", float("nan"))
    with pytest.raises(TypeError, match="seed must be an integer"):
        U.check_int("seed", 1.5)
    with pytest.raises(ValueError, match="reduction = 'avg'"):
        U.check_reduction("avg")


def test_host_device_mix_is_refused_not_copied():
    class OtherDeviceArray:
        __cuda_array_interface__ = {}

    with pytest.raises(TypeError, match="x is on the CPU .NumPy. but out is on the GPU"):
        U.backend_of(x=np.ones(1), out=OtherDeviceArray())
    with pytest.raises(TypeError, match="but OtherDeviceArray is on the GPU"):
        U.backend_of(np.ones(1), OtherDeviceArray())
    assert U.backend_of(np.ones(1), None) == "cpu"
    assert U.backend_of(OtherDeviceArray(), y=None) == "cuda"


def test_validation_on_device_arrays(dev, rng):
    """The same helpers validate device arrays, allocate on their device and never fall back to the host."""
    x = dev.asarray(rng.standard_normal((3, 4)).astype(np.float32))
    assert U.is_device_array(x) and not U.is_device_array(dev.asnumpy(x))
    assert U.array_module(None, x) is dev and U.array_module(np.ones(1)) is np
    assert U.as_float_array("x", x) is x
    t = U.as_float_array("x", x.T)
    assert U.is_device_array(t) and t.flags.c_contiguous and np.array_equal(dev.asnumpy(t), dev.asnumpy(x).T)
    with pytest.raises(TypeError, match="x has dtype int32; allowed dtypes: float32, float64"):
        U.as_float_array("x", dev.asarray(np.ones(3, np.int32)))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        U.writable_float_array("out", x[:, ::2])
    fresh = U.out_array("out", None, (2, 5), np.float32, inputs=(x,))
    assert U.is_device_array(fresh) and fresh.shape == (2, 5)
    with pytest.raises(ValueError, match="out overlaps an input"):
        U.out_array("out", x, (3, 4), np.float32, inputs=(x,))
    assert U.may_share_memory(x[0], x[0, 1:]) and not U.may_share_memory(x[0], x[1])
    assert not U.may_share_memory(x, dev.asnumpy(x))
    labels = U.as_index_array("target", dev.asarray(np.array([0, 2, -100, 1], np.int32)), length=4)
    assert U.is_device_array(labels) and labels.dtype == np.int64
    U.check_labels("target", labels, 3, ignore_index=-100)
    with pytest.raises(ValueError, match=r"target\[2\] = -100 is outside the valid class range \[0, 3\)"):
        U.check_labels("target", labels, 3)
    with pytest.raises(ValueError, match=r"target\[1\] = 2 is outside the valid class range \[0, 2\) and is not "
                                         "ignore_index=-100"):
        U.check_labels("target", labels, 2, ignore_index=-100)


def test_device_extent_of_strided_views(dev):
    """The overlap test reads byte extents from __cuda_array_interface__, strides included."""
    a = dev.asarray(np.arange(24.0).reshape(4, 6))
    lo, hi = U._extent(a)
    assert hi - lo == a.nbytes
    lo2, hi2 = U._extent(a[1:3, ::2])
    assert (lo2 - lo, hi2 - lo) == (6 * 8, (2 * 6 + 4) * 8 + 8)
    assert U.may_share_memory(a[:, ::2], a[:, 1::2])  # interleaved: bounds overlap, as np.may_share_memory says


def test_nncore_device_helpers():
    a = np.arange(3.0)
    assert array_module(a) is np
    assert to_numpy(a) is a and to_device(a, "cpu") is a
    assert "cpu" in available_devices()
    with pytest.raises(ValueError, match="device = 'tpu'"):
        to_device(a, "tpu")


def test_public_api_is_exported():
    import kernels

    assert sorted(kernels.__all__) == sorted(set(kernels.__all__))
    for name in kernels.__all__:
        assert callable(getattr(kernels, name)), name
    # every op module's public functions are reachable from the package
    from kernels import dropout, linear, losses, softmax_xent

    for mod in (softmax_xent, losses, dropout, linear):
        for name in dir(mod):
            if name.startswith(("softmax", "log_softmax", "nll", "binary", "mse", "l1", "dropout_", "linear_")):
                assert name in kernels.__all__, f"{mod.__name__}.{name} not exported"
