"""CUDA optimizer kernels (kernels/cuda/optim.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py); with one, on the device (NumPy
arrays are copied in and out by Numba). Each update is fed the hyper-parameter tuple and flags that the
public CPU function built for the same step, captured from its kernel call, so both targets run the same
rule on the same inputs step after step.
"""

import numba
import numpy as np
import pytest

from kernels import optim as O
from kernels import reference as R
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, assert_close

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda as KC  # noqa: E402
import kernels.cuda.optim as CO  # noqa: E402

STEPS = 6
CASES = [
    ("sgd", O.sgd_update, dict(lr=0.1), []),
    ("sgd", O.sgd_update, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), ["momentum_buffer"]),
    ("sgd", O.sgd_update, dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True), ["momentum_buffer"]),
    ("adagrad", O.adagrad_update, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01), ["state_sum"]),
    ("rmsprop", O.rmsprop_update, dict(lr=0.01), ["square_avg"]),
    ("rmsprop", O.rmsprop_update, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01),
     ["square_avg", "grad_avg", "momentum_buffer"]),
    ("adadelta", O.adadelta_update, dict(lr=1.0, weight_decay=0.01), ["square_avg", "acc_delta"]),
    ("adam", O.adam_update, dict(lr=0.01, weight_decay=0.01), ["exp_avg", "exp_avg_sq"]),
    ("adam", O.adam_update, dict(lr=0.01, amsgrad=True, maximize=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    ("adam", O.adamw_update, dict(lr=0.01, weight_decay=0.1), ["exp_avg", "exp_avg_sq"]),
    ("nadam", O.nadam_update, dict(lr=0.01, weight_decay=0.01), ["exp_avg", "exp_avg_sq"]),
]
IDS = ["sgd", "sgd-momentum-dampening-wd", "sgd-nesterov-maximize", "adagrad", "rmsprop",
       "rmsprop-centered-momentum-wd", "adadelta", "adam-wd", "adam-amsgrad-maximize", "adamw", "nadam"]
# the state buffers in the order the kernels take them (absent ones passed as None)
KERNEL_ARGS = {"sgd": ["momentum_buffer"], "rmsprop": ["square_avg", "grad_avg", "momentum_buffer"],
               "adam": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]}
STEPPED = {"adagrad_update", "adam_update", "adamw_update", "nadam_update"}


def _cpu_step(monkeypatch, fn, p, g, state, kw, t, mu):
    """Run the public CPU update on (p, state) in place; return the (h, flags) it gave its kernel and the
    function's return value (NAdam's new mu_product)."""
    seen = []
    real = O._run

    def spy(rule, serial, parallel, arrays, h, flags):
        seen.append((h, flags))
        real(rule, serial, parallel, arrays, h, flags)

    monkeypatch.setattr(O, "_run", spy)
    extra = {"step": t} if fn.__name__ in STEPPED else {}
    if fn.__name__ == "nadam_update":
        extra["mu_product"] = mu
    out = fn(p, g, **state, **kw, **extra)
    monkeypatch.setattr(O, "_run", real)
    (h, flags), = seen
    return h, flags, out


@pytest.mark.parametrize("n", [1, 37, 300], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("rule,fn,kw,names", CASES, ids=IDS)
def test_cuda_update_matches_cpu_over_steps(rng, monkeypatch, rule, fn, kw, names, dtype, rtol, atol, n):
    p_cpu = rng.standard_normal(n).astype(dtype)
    state_cpu = {k: (rng.random(n) if k in ("state_sum", "square_avg", "acc_delta", "exp_avg_sq", "max_exp_avg_sq")
                     else rng.standard_normal(n)).astype(dtype) for k in names}
    p_dev, state_dev = p_cpu.copy(), {k: v.copy() for k, v in state_cpu.items()}
    mu = 1.0
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(n).astype(dtype)
        if fn is O.sgd_update and "momentum" in kw:
            kw = {**kw, "first_step": t == 1}
        h, flags, out = _cpu_step(monkeypatch, fn, p_cpu, g, state_cpu, kw, t, mu)
        if fn is O.nadam_update:
            mu = out
        arrays = [p_dev, g] + [state_dev.get(k) for k in KERNEL_ARGS.get(rule, names)]
        CO.run(rule, arrays, h, flags)
        cuda.synchronize()
        # the same scalar helpers on both targets: equal up to the contraction (FMA) choices of each compiler,
        # i.e. a few roundings of the terms (which are O(1) here: an absolute bound, since a momentum buffer
        # can cancel to a small value)
        eps = np.finfo(dtype).eps
        assert_close(p_dev, p_cpu, 8 * eps, 64 * eps, f"param after step {t}")
        for k in names:
            assert_close(state_dev[k], state_cpu[k], 8 * eps, 64 * eps, f"{k} after step {t}")


@pytest.mark.parametrize("fn,kw,names", [
    (O.sgd_update, dict(lr=0.1, momentum=0.9, nesterov=True), ["momentum_buffer"]),
    (O.adam_update, dict(lr=0.01, amsgrad=True, weight_decay=0.01), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    (O.nadam_update, dict(lr=0.01), ["exp_avg", "exp_avg_sq"]),
], ids=["sgd-nesterov", "adam-amsgrad", "nadam"])
def test_public_update_on_device_arrays(dev, rng, fn, kw, names):
    """The public functions take device arrays, update them in place on the device (one launch, nothing
    copied back) and agree with the same function on NumPy arrays over several steps."""
    n = 37
    p_cpu = rng.standard_normal(n).astype(np.float32)
    state_cpu = {k: rng.random(n).astype(np.float32) for k in names}
    p_dev = dev.asarray(p_cpu)
    state_dev = {k: dev.asarray(v) for k, v in state_cpu.items()}
    mu_cpu = mu_dev = 1.0
    for t in range(1, 4):
        g = rng.standard_normal(n).astype(np.float32)
        extra = {} if fn is O.sgd_update else {"step": t}
        if fn is O.sgd_update:
            extra["first_step"] = t == 1
        if fn is O.nadam_update:
            mu_cpu = fn(p_cpu, g, **state_cpu, **kw, **extra, mu_product=mu_cpu)
            mu_dev = fn(p_dev, dev.asarray(g), **state_dev, **kw, **extra, mu_product=mu_dev)
            assert mu_dev == mu_cpu  # a host scalar: the schedule of mu is computed on the host on both
        else:
            fn(p_cpu, g, **state_cpu, **kw, **extra)
            fn(p_dev, dev.asarray(g), **state_dev, **kw, **extra)
        eps = np.finfo(np.float32).eps
        assert dev.get_array_module(p_dev) is dev
        assert_close(dev.asnumpy(p_dev), p_cpu, 8 * eps, 64 * eps, f"param after step {t}")
        for k in names:
            assert_close(dev.asnumpy(state_dev[k]), state_cpu[k], 8 * eps, 64 * eps, f"{k} after step {t}")


def test_public_update_errors_on_device_arrays(dev, rng):
    p = dev.asarray(rng.standard_normal(5))
    m, v = dev.asarray(rng.random(5)), dev.asarray(rng.random(5))
    with pytest.raises(TypeError, match="grad is on the CPU .NumPy. but param is on the GPU"):
        O.adam_update(p, np.ones(5), m, v, step=1)
    with pytest.raises(TypeError, match="grad has dtype float32 but param has dtype float64"):
        O.adam_update(p, dev.asarray(np.ones(5, np.float32)), m, v, step=1)
    with pytest.raises(ValueError, match="exp_avg overlaps param"):
        O.adam_update(p, dev.asarray(np.ones(5)), p, v, step=1)
    with pytest.raises(ValueError, match=r"exp_avg_sq has shape \(4,\), expected \(5,\)"):
        O.adam_update(p, dev.asarray(np.ones(5)), m, v[:4], step=1)
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        O.sgd_update(dev.asarray(rng.standard_normal((5, 2)))[:, 0], dev.asarray(np.ones(5)), lr=0.1)


def test_grid_stride_covers_every_element(rng, monkeypatch):
    # one block of 32 threads for 100 elements: each thread must update several, none twice
    monkeypatch.setattr(CO, "elementwise_grid", lambda n: (1, 32))
    n = 100
    p = rng.standard_normal(n)
    g = rng.standard_normal(n)
    expected, _ = R.sgd_step(p, g, {}, lr=0.5)
    h = (np.float64(-0.5), np.float64(0.0), np.float64(1.0), np.float64(0.0))
    CO.run("sgd", [p, g, None], h, (False, False, False))
    cuda.synchronize()
    assert_close(p, expected, 1e-15, 0.0, "param")


def test_launch_shapes():
    assert KC.elementwise_grid(1) == (1, 32)
    assert KC.elementwise_grid(33) == (1, 64)
    assert KC.elementwise_grid(256) == (1, 256)
    assert KC.elementwise_grid(257) == (2, 256)
    assert KC.elementwise_grid(10**9) == (KC.MAX_BLOCKS, 256)
