"""Activations on 16M float32 elements: forward (reads x, writes y) and backward (reads dy and y, writes dx),
nncore against torch-cpu. Goal: at least half of the copy bandwidth (bench/conftest.py measures it).

Both sides write into preallocated outputs (torch through out= / the aten *_backward.grad_input overloads),
so the timings compare the kernels, not the allocator's page faults.
"""

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import activations as A
from kernels import reference as R

N = 1 << 24
KINDS = ["relu", "leaky_relu", "sigmoid", "tanh"]
SLOPE = 0.01
ROUNDS = 15


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(N) * 4).astype(np.float32)
    dy = rng.standard_normal(N).astype(np.float32)
    return x, dy


def _check(got, x_or_dy, kind, y=None):
    # a strided sample keeps the float64 oracle cheap while touching the whole array
    s = slice(None, None, 97)
    if y is None:
        ref = R.activation(x_or_dy[s], kind, SLOPE)
    else:
        ref = R.activation_backward(x_or_dy[s], y[s], kind, SLOPE)
    np.testing.assert_allclose(got[s], ref, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_nncore(benchmark, report, arrays, kind):
    benchmark.group = f"activation-forward-{kind}-16M-float32"
    x, _ = arrays
    y = np.empty_like(x)
    fn = lambda: A.activation_forward(x, kind, negative_slope=SLOPE, out=y)  # noqa: E731
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=2 * x.nbytes)
    _check(y, x, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_nncore(benchmark, report, arrays, kind):
    benchmark.group = f"activation-backward-{kind}-16M-float32"
    x, dy = arrays
    y = A.activation_forward(x, kind, negative_slope=SLOPE)
    dx = np.empty_like(x)
    fn = lambda: A.activation_backward(dy, y, kind, negative_slope=SLOPE, out=dx)  # noqa: E731
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=3 * x.nbytes)
    _check(dx, dy, kind, y)


def _torch_forward(torch, kind, x, y):
    if kind == "relu":  # torch.relu has no out=; it is clamp_min(x, 0)
        return lambda: torch.clamp_min(x, 0.0, out=y)
    if kind == "leaky_relu":  # F.leaky_relu has no out=; the aten op has
        return lambda: torch.ops.aten.leaky_relu.out(x, SLOPE, out=y)
    return {"sigmoid": lambda: torch.sigmoid(x, out=y), "tanh": lambda: torch.tanh(x, out=y)}[kind]


def _torch_backward(torch, kind, dy, y, dx):
    aten = torch.ops.aten
    return {
        "relu": lambda: aten.threshold_backward.grad_input(dy, y, 0.0, grad_input=dx),
        "leaky_relu": lambda: aten.leaky_relu_backward.grad_input(dy, y, SLOPE, True, grad_input=dx),
        "sigmoid": lambda: aten.sigmoid_backward.grad_input(dy, y, grad_input=dx),
        "tanh": lambda: aten.tanh_backward.grad_input(dy, y, grad_input=dx),
    }[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_forward_torch(benchmark, report, arrays, kind):
    torch = torch_or_skip()
    benchmark.group = f"activation-forward-{kind}-16M-float32"
    x = torch.from_numpy(arrays[0])
    y = torch.empty_like(x)
    fn = _torch_forward(torch, kind, x, y)
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=2 * x.numel() * 4, torch_threads=torch.get_num_threads())
    _check(y.numpy(), arrays[0], kind)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_torch(benchmark, report, arrays, kind):
    torch = torch_or_skip()
    benchmark.group = f"activation-backward-{kind}-16M-float32"
    x_np, dy_np = arrays
    y_np = A.activation_forward(x_np, kind, negative_slope=SLOPE)
    dy, y = torch.from_numpy(dy_np), torch.from_numpy(y_np)
    dx = torch.empty_like(dy)
    fn = _torch_backward(torch, kind, dy, y, dx)
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=3 * dy.numel() * 4, torch_threads=torch.get_num_threads())
    _check(dx.numpy(), dy_np, kind, y_np)
