"""GPU benchmarks (issue 4): nncore on CuPy arrays against PyTorch eager on the same GPU, and against the
device's own copy bandwidth measured in the same run. Skipped without CuPy and a CUDA device (and under
the Numba CUDA simulator). Run on a GPU machine with bench/gpu_check.sh, which keeps the results under
bench/results/.

Groups and the issue's targets:
- ``gpu-xent``: softmax cross-entropy forward + backward, float32, N=16384, C=32768 (hard labels, mean).
  Bytes: the logits read once and the gradient written once (2 N C 4 B = 4.3 GB; the labels and per-row
  losses are < 0.1%). Target: at least 70% of copy bandwidth, and faster than torch's
  F.cross_entropy forward + backward.
- ``gpu-train-step-b256`` / ``-b4096``: one training step of the training-library benchmark's MLP
  (784-1024-1024-10, Linear -> BatchNorm1d -> ReLU -> Dropout(0.2), CrossEntropyLoss, Adam), float32, TF32
  off on both sides. Target: faster than torch eager.
- ``gpu-adam-100M``: one Adam update of 100M float32 parameters. Bytes: param, grad, exp_avg, exp_avg_sq
  read, param and both moments written (7 x 4 B per parameter). Target: at least 70% of copy bandwidth.

Timing: every timed call ends with a synchronisation of the device, so the host timer of pytest-benchmark
measures the GPU work (these calls take milliseconds; launch overhead is part of what a user pays). The
copy-bandwidth floor is a device-to-device copy of a 1 GiB array, timed with CUDA events, best of 10,
counting its read and write. Results are checked after timing against torch (or the CPU).
"""

import numba
import numpy as np
import pytest

import kernels as K
import nncore
from bench.conftest import torch_or_skip

cupy = pytest.importorskip("cupy", reason="CuPy not installed: the GPU benchmarks need a CUDA device")
if numba.config.ENABLE_CUDASIM:
    pytest.skip("the GPU benchmarks need a real GPU, not the CUDA simulator", allow_module_level=True)
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except cupy.cuda.runtime.CUDARuntimeError as exc:
    pytest.skip(f"no usable CUDA device: {exc}", allow_module_level=True)


def _sync():
    cupy.cuda.get_current_stream().synchronize()


@pytest.fixture(scope="session")
def gpu_copy_Bps():
    a = cupy.random.default_rng(0).random((1 << 28,), dtype=cupy.float32)  # 1 GiB
    b = cupy.empty_like(a)
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    best = float("inf")
    for _ in range(11):
        start.record()
        cupy.copyto(b, a)
        stop.record()
        stop.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return 2 * a.nbytes / best


@pytest.fixture
def gpu_report(gpu_copy_Bps):
    def _report(benchmark, nbytes=0, **extra):
        info = benchmark.extra_info
        info["device"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["device_copy_GBps"] = round(gpu_copy_Bps / 1e9, 1)
        if benchmark.stats is None:
            return info
        t = benchmark.stats.stats.median
        info["median_s"] = t
        if nbytes:
            info["bytes"] = int(nbytes)
            info["GBps"] = round(nbytes / t / 1e9, 1)
            info["fraction_of_floor"] = round(nbytes / t / gpu_copy_Bps, 3)  # of the device's copy bandwidth
        info.update(extra)
        return info

    return _report


# ---- softmax cross-entropy

N, C = 16384, 32768


def _xent_inputs():
    rng = np.random.default_rng(0)
    x = cupy.asarray((rng.standard_normal((N, C), dtype=np.float32) * 3))
    t = cupy.asarray(rng.integers(0, C, N))
    return x, t


def test_gpu_xent_nncore(benchmark, gpu_report):
    benchmark.group = "gpu-xent N16384 C32768"
    x, t = _xent_inputs()
    g = cupy.empty_like(x)

    def run():
        loss, _ = K.softmax_cross_entropy(x, t, out=g)
        _sync()
        return loss

    run()
    loss = benchmark.pedantic(run, rounds=20, warmup_rounds=3)
    gpu_report(benchmark, nbytes=2 * x.nbytes)
    torch = pytest.importorskip("torch")
    xt = torch.as_tensor(x, device="cuda").requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(xt, torch.as_tensor(t, device="cuda"))
    ref.backward()
    np.testing.assert_allclose(float(loss), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(cupy.asnumpy(g[:64]), xt.grad[:64].cpu().numpy(), rtol=1e-4, atol=1e-9)


def test_gpu_xent_torch(benchmark, gpu_report):
    torch = torch_or_skip()
    benchmark.group = "gpu-xent N16384 C32768"
    x, t = _xent_inputs()
    xt = torch.as_tensor(x, device="cuda").requires_grad_(True)
    tt = torch.as_tensor(t, device="cuda")

    def run():
        xt.grad = None
        torch.nn.functional.cross_entropy(xt, tt).backward()
        torch.cuda.synchronize()

    run()
    benchmark.pedantic(run, rounds=20, warmup_rounds=3)
    gpu_report(benchmark, nbytes=2 * x.nbytes)


# ---- training step

SIZES = (784, 1024, 1024, 10)
DROPOUT = 0.2


def _step_data(n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], n)


@pytest.mark.parametrize("n", [256, 4096])
def test_gpu_train_step_nncore(benchmark, gpu_report, n):
    benchmark.group = f"gpu-train-step-b{n}"
    model = nncore.MLP(SIZES, dropout=DROPOUT, batchnorm=True, seed=0).to("cuda")
    opt = nncore.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nncore.CrossEntropyLoss()
    x, y = (cupy.asarray(a) for a in _step_data(n))

    def step():
        loss = loss_fn.forward(model(x), y)  # stays on the device: no read-back per step
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step()
        _sync()
        return loss

    for _ in range(3):
        step()
    loss = benchmark.pedantic(step, rounds=100, warmup_rounds=5)
    gpu_report(benchmark)
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("n", [256, 4096])
def test_gpu_train_step_torch(benchmark, gpu_report, n):
    torch = torch_or_skip()
    benchmark.group = f"gpu-train-step-b{n}"
    torch.backends.cuda.matmul.allow_tf32 = False  # as nncore's default: full float32 GEMMs
    torch.manual_seed(0)
    layers = []
    for a, b in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.BatchNorm1d(b), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT)]
    layers.append(torch.nn.Linear(SIZES[-2], SIZES[-1]))
    model = torch.nn.Sequential(*layers).cuda()
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = (torch.from_numpy(a).cuda() for a in _step_data(n))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        return loss

    for _ in range(3):
        step()
    loss = benchmark.pedantic(step, rounds=100, warmup_rounds=5)
    gpu_report(benchmark)
    assert torch.isfinite(loss).item()


# ---- optimizer update

P = 100_000_000


def test_gpu_adam_100M_nncore(benchmark, gpu_report):
    benchmark.group = "gpu-adam-100M"
    rng = cupy.random.default_rng(0)
    p, g = rng.standard_normal(P, dtype=cupy.float32), rng.standard_normal(P, dtype=cupy.float32)
    m, v = cupy.zeros_like(p), cupy.zeros_like(p)
    p0 = p[:1000].get()
    step = [0]

    def run():
        step[0] += 1
        K.adam_update(p, g, m, v, step=step[0], lr=1e-3)
        _sync()

    run()
    benchmark.pedantic(run, rounds=20, warmup_rounds=3)
    gpu_report(benchmark, nbytes=7 * 4 * P)
    assert np.isfinite(p[:1000].get()).all() and not np.array_equal(p[:1000].get(), p0)


def test_gpu_adam_100M_torch(benchmark, gpu_report):
    torch = torch_or_skip()
    benchmark.group = "gpu-adam-100M"
    p = torch.nn.Parameter(torch.randn(P, device="cuda"))
    p.grad = torch.randn(P, device="cuda")
    opt = torch.optim.Adam([p], lr=1e-3, foreach=False, fused=True)

    def run():
        opt.step()
        torch.cuda.synchronize()

    run()
    benchmark.pedantic(run, rounds=20, warmup_rounds=3)
    gpu_report(benchmark, nbytes=7 * 4 * P)
