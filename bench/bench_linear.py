"""Linear layer + relu, forward and backward, float32: nncore against its own three BLAS GEMMs and torch-cpu.

Goal: nncore's forward+backward within 1.15x of the time of the three GEMMs it cannot avoid (x @ w,
dz @ w.T, x.T @ dz, timed in the same group on the same arrays): everything nncore adds (bias, activation,
dz, the bias-gradient reduction) must cost at most 15% on top. All variants write into preallocated
outputs; torch runs the usual autograd step (F.linear + relu, weight in torch's (out, in) layout).
"""

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import linear as L
from kernels import reference as R

SHAPES = [(256, 1024, 1024), (4096, 1024, 1024)]
SHAPE_IDS = ["256x1024x1024", "4096x1024x1024"]


def _rounds(n):
    return 20 if n <= 256 else 5


@pytest.fixture(scope="module")
def layers():
    cache = {}

    def get(n, k, m):
        if (n, k, m) not in cache:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((n, k)).astype(np.float32)
            w = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(np.float32)
            b = rng.standard_normal(m).astype(np.float32)
            dy = rng.standard_normal((n, m)).astype(np.float32)
            cache[(n, k, m)] = x, w, b, dy
        return cache[(n, k, m)]

    return get


def _flops(n, k, m):
    return 3 * 2 * n * k * m


def _check(n, x, w, b, y, dx, dw, db, dy):
    # rows of the batch are independent: checking a few keeps the float64 oracle cheap for N = 4096
    r = slice(0, min(n, 64))
    np.testing.assert_allclose(y[r], R.linear_forward(x[r], w, b, "relu"), rtol=1e-4, atol=1e-4)
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, "relu")
    np.testing.assert_allclose(dx, rdx, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dw, rdw, rtol=1e-3, atol=1e-3 * np.sqrt(n))
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-4 * np.sqrt(n))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_nncore_forward_backward(benchmark, report, layers, shape):
    benchmark.group = f"linear-relu-fwd+bwd-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    n, k, m = shape
    x, w, b, dy = layers(n, k, m)
    y = np.empty((n, m), np.float32)
    dx, dw, db = np.empty((n, k), np.float32), np.empty((k, m), np.float32), np.empty(m, np.float32)
    ws = L.LinearWorkspace(n, m, np.float32)

    def step():
        L.linear_forward(x, w, b, "relu", out=y)
        L.linear_backward(dy, x, w, y, "relu", out_dx=dx, out_dw=dw, out_db=db, workspace=ws)

    step()
    benchmark.pedantic(step, rounds=_rounds(n), warmup_rounds=1)
    report(benchmark, flops=_flops(n, k, m), nbytes=0)
    _check(n, x, w, b, y, dx, dw, db, dy)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_three_gemms_only(benchmark, report, layers, shape):
    """The floor: the three GEMMs of a linear step, on the same arrays, with nothing around them."""
    benchmark.group = f"linear-relu-fwd+bwd-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    n, k, m = shape
    x, w, _, dy = layers(n, k, m)
    y = np.empty((n, m), np.float32)
    dx, dw = np.empty((n, k), np.float32), np.empty((k, m), np.float32)

    def gemms():
        np.matmul(x, w, out=y)
        np.matmul(dy, w.T, out=dx)
        np.matmul(x.T, dy, out=dw)

    gemms()
    benchmark.pedantic(gemms, rounds=_rounds(n), warmup_rounds=1)
    report(benchmark, flops=_flops(n, k, m))
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    np.testing.assert_allclose(y[:4], x64[:4] @ w64, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx[:4], dy64[:4] @ w64.T, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dw[:, :4], x64.T @ dy64[:, :4], rtol=1e-3, atol=1e-3 * np.sqrt(n))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_torch_forward_backward(benchmark, report, layers, shape):
    torch = torch_or_skip()
    benchmark.group = f"linear-relu-fwd+bwd-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    n, k, m = shape
    x_np, w_np, b_np, dy_np = layers(n, k, m)
    x = torch.from_numpy(x_np).requires_grad_()
    weight = torch.from_numpy(np.ascontiguousarray(w_np.T)).requires_grad_()  # torch layout (out, in)
    bias = torch.from_numpy(b_np.copy()).requires_grad_()
    dy = torch.from_numpy(dy_np)
    out = {}

    def step():
        x.grad = weight.grad = bias.grad = None
        y = torch.relu(torch.nn.functional.linear(x, weight, bias))
        y.backward(dy)
        out["y"] = y

    step()
    benchmark.pedantic(step, rounds=_rounds(n), warmup_rounds=1)
    report(benchmark, flops=_flops(n, k, m), torch_threads=torch.get_num_threads())
    _check(n, x_np, w_np, b_np, out["y"].detach().numpy(), x.grad.numpy(), weight.grad.numpy().T,
           bias.grad.numpy(), dy_np)
