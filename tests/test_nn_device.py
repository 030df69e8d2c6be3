"""The training library on the GPU: model.to, optimizers following their parameters, losses kept on the
device, fit(device="cuda"), checkpoints across devices, and the errors when no GPU is there.

Without a GPU these run through the Numba CUDA simulator (tests/conftest.py), where "cuda" arrays are
kernels.cuda.simulator's NumPy-backed device arrays; on a GPU machine the same tests run with CuPy. The
simulator runs every CUDA thread as a Python thread, so the models and data here are tiny (16 rows, widths
of 5 to 8) and the runs short. Results are compared with the same code on the CPU: the kernels agree to a
few float32 ulp (their own tests bound each one), so a training step's values are compared at 1e-5
relative / 1e-6 absolute, and a few epochs of fit at 1e-4 (differences grow through the updates).
"""

import math

import numpy as np
import pytest

import nncore
from nncore import MLP, CrossEntropyLoss, MSELoss, fit, optim, to_device, to_numpy
from tests.helpers import assert_close

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture
def data(rng):
    X = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    return X, y


def _model(**kw):
    return MLP([5, 8, 3], seed=7, **kw)


def test_to_moves_parameters_gradients_and_buffers_keeping_identity(dev):
    m = _model(batchnorm=True, dropout=0.25)
    params = m.parameters()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    assert m.to("cuda") is m and m.device == "cuda"
    assert all(a is b for a, b in zip(params, m.parameters())), "Parameter objects must survive the move"
    for p in params:
        assert dev.get_array_module(p.data) is dev and dev.get_array_module(p.grad) is dev
    assert nncore.parameter.flat_span(params) is not None, "still one flat buffer after the move"
    bn = m[1]
    assert dev.get_array_module(bn.running_mean) is dev and dev.get_array_module(bn.running_var) is dev
    after = m.state_dict()
    assert sorted(after) == sorted(before)
    for k, v in before.items():
        np.testing.assert_array_equal(to_numpy(after[k]), v, err_msg=k)
    m.to("cpu")
    assert m.device == "cpu" and all(isinstance(p.data, np.ndarray) and type(p.data) is np.ndarray for p in params)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)


def test_training_step_on_device_matches_cpu(dev, data):
    """forward, fused loss, backward and an SGD-momentum step built BEFORE the move: the optimizer follows
    its parameters to the device, and every value agrees with the same step on the CPU. (Not Adam: the
    first Linear's bias feeds a BatchNorm, so its gradient is rounding noise around 0, which Adam's first
    step scales up to +-lr.)"""
    X, y = data
    results = []
    for device in ("cpu", "cuda"):
        m = _model(batchnorm=True, dropout=0.25)
        opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        m.to(device)
        loss_fn = CrossEntropyLoss()
        out = m(to_device(X, device))
        loss = loss_fn.forward(out, to_device(y, device))
        m.backward(loss_fn.backward(), need_input_grad=False)
        grads = to_numpy(nncore.parameter.flat_span(m.parameters())[1]).copy()
        opt.step()
        results.append((to_numpy(out), float(loss), grads, {k: to_numpy(v) for k, v in m.state_dict().items()},
                        {k: to_numpy(v) for k, v in opt.state_dict()["state"][0].items() if k != "step"}))
        if device == "cuda":
            assert dev.get_array_module(loss) is dev and loss.shape == (), "the loss stays a 0-d device array"
            assert dev.get_array_module(opt._states[0].units[0][2]["momentum_buffer"]) is dev
    (out_c, loss_c, g_c, sd_c, st_c), (out_d, loss_d, g_d, sd_d, st_d) = results
    assert_close(out_d, out_c, RTOL, ATOL, "logits")
    assert math.isclose(loss_d, loss_c, rel_tol=RTOL)
    assert_close(g_d, g_c, RTOL, ATOL, "gradients")
    for k in sd_c:
        assert_close(sd_d[k].astype(np.float64), sd_c[k].astype(np.float64), RTOL, ATOL, k)
    for k in st_c:
        assert_close(st_d[k], st_c[k], RTOL, ATOL, f"SGD {k}")


def test_loss_call_returns_a_float_and_weights_follow_the_input(dev, rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    target = rng.integers(0, 4, 6)
    w = rng.random(4).astype(np.float64) + 0.5  # float64 weights for float32 logits: cast as on the CPU
    on_cpu = CrossEntropyLoss(weight=w)(logits, target)
    fn = CrossEntropyLoss(weight=w)
    on_dev = fn(dev.asarray(logits), dev.asarray(target))
    assert type(on_dev) is float and math.isclose(on_dev, on_cpu, rel_tol=RTOL)
    assert dev.get_array_module(fn.backward()) is dev
    mse = MSELoss(reduction="none")
    x, t = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    per = mse(dev.asarray(x), dev.asarray(t))
    g = mse.backward(rng.random(3).astype(np.float32).reshape(3, 1).repeat(2, 1))
    assert dev.get_array_module(per) is dev and dev.get_array_module(g) is dev


def test_clip_grad_norm_on_device_matches_cpu(dev, rng):
    m_c, m_d = _model(), _model().to("cuda")
    g = (rng.standard_normal(m_c.num_parameters()) * 10).astype(np.float32)
    nncore.parameter.flat_span(m_c.parameters())[1][...] = g
    nncore.parameter.flat_span(m_d.parameters())[1][...] = dev.asarray(g)
    for norm_type in (2, "inf"):
        total_c = optim.clip_grad_norm_(m_c.parameters(), 1.0, norm_type=norm_type)
        total_d = optim.clip_grad_norm_(m_d.parameters(), 1.0, norm_type=norm_type)
        assert dev.get_array_module(total_d) is dev, "the norm stays on the device"
        assert math.isclose(float(total_d), total_c, rel_tol=1e-6)
        assert_close(to_numpy(nncore.parameter.flat_span(m_d.parameters())[1]),
                     nncore.parameter.flat_span(m_c.parameters())[1], RTOL, ATOL, f"clipped ({norm_type})")


def test_fit_on_device_matches_cpu(dev, data):
    """Two epochs of seeded fit with dropout, a validation split and a per-step schedule: the same history
    on both devices (data shuffled by the same host generator, the same dropout masks)."""
    X, y = data
    runs = []
    for device in ("cpu", "cuda"):
        m = _model(dropout=0.25)
        opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        sched = nncore.schedules.ExponentialLR(opt, gamma=0.9, interval="step")
        h = fit(m, X, y, loss=CrossEntropyLoss(), optimizer=opt, epochs=2, batch_size=6, validation_split=0.25,
                schedule=sched, seed=3, progress=False, device=device)
        assert m.device == device
        runs.append((h, {k: to_numpy(v) for k, v in m.state_dict().items()}))
    (h_c, sd_c), (h_d, sd_d) = runs
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(h_d[key], h_c[key], rtol=1e-4, err_msg=key)
    for k in sd_c:
        assert_close(sd_d[k].astype(np.float64), sd_c[k].astype(np.float64), 1e-4, 1e-5, k)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the simulator's NumPy matmul on inf
def test_fit_on_device_restores_the_epoch_start_when_the_loss_is_not_finite(dev, data):
    X, y = data
    X = X.copy()
    X[9, 2] = np.inf  # a batch of the first epoch (no shuffle: rows 8..11 are its third batch)
    m = _model().to("cuda")
    opt = optim.Adam(m.parameters(), lr=1e-2)
    before = {k: to_numpy(v) for k, v in m.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, step 3 \(batch 3 of the epoch\).*"
                                                 r"put back to their state at the start of epoch 1"):
        fit(m, X, y, loss=CrossEntropyLoss(), optimizer=opt, epochs=1, batch_size=4, shuffle=False, progress=False)
    for k, v in before.items():
        np.testing.assert_array_equal(to_numpy(m.state_dict()[k]), v, err_msg=k)
    assert opt.state_dict()["state"] == {}, "the optimizer is back to its state before its first step"


def test_checkpoints_load_on_either_device(dev, data, tmp_path):
    X, y = data
    m = _model(batchnorm=True).to("cuda")
    opt = optim.Adam(m.parameters(), lr=1e-2)
    fit(m, X, y, loss=CrossEntropyLoss(), optimizer=opt, epochs=1, batch_size=8, progress=False)
    path = nncore.save(tmp_path / "gpu.npz", m, opt)
    on_cpu = nncore.load(path)
    assert on_cpu.model.device == "cpu"
    on_gpu = nncore.load(path, device="cuda")
    assert on_gpu.model.device == "cuda"
    assert dev.get_array_module(on_gpu.optimizer._states[0].units[0][2]["exp_avg"]) is dev
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(on_cpu.model.state_dict()[k], to_numpy(v), err_msg=k)
        np.testing.assert_array_equal(to_numpy(on_gpu.model.state_dict()[k]), to_numpy(v), err_msg=k)
    for k, v in opt.state_dict()["state"][0].items():
        assert np.array_equal(on_cpu.optimizer.state_dict()["state"][0][k], v), k


def test_device_errors(dev, data):
    X, y = data
    m = _model().to("cuda")
    with pytest.raises(TypeError, match=r"Linear\(.*\) is on 'cuda' but got an input on 'cpu'; move one of them"):
        m(X)
    with pytest.raises(ValueError, match="device = 'tpu' is not one of"):
        m.to("tpu")
    with pytest.raises(ValueError, match="device = 'cuda:1' is not one of"):
        fit(m, X, y, loss=CrossEntropyLoss(), optimizer=optim.SGD(m.parameters(), lr=0.1), epochs=1,
            device="cuda:1")


def test_asking_for_the_gpu_without_cupy_names_what_is_missing(monkeypatch):
    import sys

    import numba

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", False)
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    assert nncore.available_devices() == ["cpu"]
    with pytest.raises(nncore.DeviceUnavailableError, match="device 'cuda' was requested but CUDA device arrays "
                                                         "need CuPy, which is not installed: pip install cupy-cuda12x"):
        _model().to("cuda")


def test_cli_trains_on_the_device_or_says_why_not(dev, monkeypatch, capsys, tmp_path):
    from nncore.cli import main

    path = tmp_path / "iris.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.standard_normal((20, 3)), y=np.arange(20) % 2)
    assert main(["train", "--data", str(path), "--hidden", "4", "--epochs", "1", "--batch-size", "8",
                 "--device", "cuda", "--dropout", "0", "--quiet"]) == 0
    assert "1 epochs in" in capsys.readouterr().out
    import sys

    import numba

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", False)
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["train", "--data", str(path), "--epochs", "1", "--device", "cuda"]) == 2
    assert "nncore: error: device 'cuda' was requested but CUDA device arrays need CuPy" in capsys.readouterr().err
