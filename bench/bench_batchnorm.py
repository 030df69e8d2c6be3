"""BatchNorm1d training forward and backward on 16M float32 elements (N=4096, C=4096 and N=65536, C=256),
nncore against torch-cpu. Goal: at least half of the copy bandwidth, counting each input read once and
each output written once (forward: x, y; backward: dy, x, dx; the (C,) vectors are negligible).

Both sides write into preallocated outputs where the API allows it (torch's forward: the .out overload of
native_batch_norm); torch's backward runs the aten op its autograd node calls (native_batch_norm_backward),
and the forward+backward pair runs F.batch_norm with autograd, as a training step does.
"""

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import reference as R
from kernels.batchnorm import batchnorm_backward, batchnorm_forward

SHAPES = [(4096, 4096), (65536, 256)]
SHAPE_IDS = ["4096x4096", "65536x256"]
ROUNDS = 10
MOMENTUM, EPS = 0.1, 1e-5

shapes = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)


def _arrays(shape):
    rng = np.random.default_rng(0)
    n, c = shape
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    return x, dy, gamma, beta


def _cols(c):
    # columns are independent: the float64 oracle on every 61st column checks the whole computation
    return slice(None, None, 61) if c > 61 else slice(None)


def _check_forward(y, x, gamma, beta):
    s = _cols(x.shape[1])
    exp_y = R.batchnorm_forward_train(x[:, s], gamma[s], beta[s], None, None, eps=EPS)[0]
    np.testing.assert_allclose(y[:, s], exp_y, rtol=2e-5, atol=2e-5)


def _check_backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd):
    s = _cols(x.shape[1])
    exp = R.batchnorm_backward(dy[:, s], x[:, s], gamma[s], mean[s], invstd[s])
    np.testing.assert_allclose(dx[:, s], exp[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dgamma[s], exp[1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dbeta[s], exp[2], rtol=1e-4, atol=1e-3)


@shapes
def test_forward_nncore(benchmark, report, shape):
    benchmark.group = f"batchnorm-forward-train-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, _, gamma, beta = _arrays(shape)
    rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
    y = np.empty_like(x)
    fn = lambda: batchnorm_forward(  # noqa: E731
        x, gamma, beta, rm, rv, training=True, momentum=MOMENTUM, eps=EPS, out=y)
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=2 * x.nbytes)
    _check_forward(y, x, gamma, beta)


@shapes
def test_backward_nncore(benchmark, report, shape):
    benchmark.group = f"batchnorm-backward-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, dy, gamma, beta = _arrays(shape)
    _, mean, invstd = batchnorm_forward(x, gamma, beta, None, None, training=True, eps=EPS)
    dx = np.empty_like(x)
    fn = lambda: batchnorm_backward(dy, x, gamma, mean, invstd, out=dx)  # noqa: E731
    fn()
    result = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=3 * x.nbytes)
    _check_backward(dx, result[1], result[2], dy, x, gamma, mean, invstd)


@shapes
def test_forward_backward_nncore(benchmark, report, shape):
    benchmark.group = f"batchnorm-forward+backward-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, dy, gamma, beta = _arrays(shape)
    rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)

    def fn():
        _, mean, invstd = batchnorm_forward(x, gamma, beta, rm, rv, training=True, momentum=MOMENTUM,
                                            eps=EPS, out=y)
        return batchnorm_backward(dy, x, gamma, mean, invstd, out=dx)

    fn()
    _, dgamma, dbeta = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=5 * x.nbytes)
    _check_forward(y, x, gamma, beta)
    _, mean, invstd = batchnorm_forward(x, gamma, beta, None, None, training=True, eps=EPS)
    _check_backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd)


def _torch_arrays(torch, shape):
    x, dy, gamma, beta = _arrays(shape)
    t = {k: torch.from_numpy(v) for k, v in dict(x=x, dy=dy, gamma=gamma, beta=beta).items()}
    t["rm"], t["rv"] = torch.zeros(shape[1]), torch.ones(shape[1])
    return x, dy, gamma, beta, t


@shapes
def test_forward_torch(benchmark, report, shape):
    torch = torch_or_skip()
    benchmark.group = f"batchnorm-forward-train-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, _, gamma, beta, t = _torch_arrays(torch, shape)
    # into preallocated outputs, as nncore's out=: the .out overload of the op F.batch_norm calls
    y, save_mean, save_invstd = torch.empty_like(t["x"]), torch.empty(shape[1]), torch.empty(shape[1])
    fn = lambda: torch.ops.aten.native_batch_norm.out(  # noqa: E731
        t["x"], t["gamma"], t["beta"], t["rm"], t["rv"], True, MOMENTUM, EPS, out=y, save_mean=save_mean,
        save_invstd=save_invstd)
    fn()
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=2 * x.nbytes)
    _check_forward(y.numpy(), x, gamma, beta)


@shapes
def test_backward_torch(benchmark, report, shape):
    torch = torch_or_skip()
    benchmark.group = f"batchnorm-backward-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, dy, gamma, beta, t = _torch_arrays(torch, shape)
    _, mean, invstd = torch.ops.aten.native_batch_norm(t["x"], t["gamma"], t["beta"], None, None, True,
                                                       MOMENTUM, EPS)
    fn = lambda: torch.ops.aten.native_batch_norm_backward(  # noqa: E731
        t["dy"], t["x"], t["gamma"], None, None, mean, invstd, True, EPS, [True, True, True])
    fn()
    dx, dgamma, dbeta = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=3 * x.nbytes)
    _check_backward(dx.numpy(), dgamma.numpy(), dbeta.numpy(), dy, x, gamma, mean.numpy(), invstd.numpy())


@shapes
def test_forward_backward_torch(benchmark, report, shape):
    torch = torch_or_skip()
    benchmark.group = f"batchnorm-forward+backward-{SHAPE_IDS[SHAPES.index(shape)]}-float32"
    x, dy, gamma, beta, t = _torch_arrays(torch, shape)
    xg, gg, bg = (t[k].clone().requires_grad_() for k in ("x", "gamma", "beta"))

    def fn():
        y = torch.nn.functional.batch_norm(xg, t["rm"], t["rv"], gg, bg, training=True, momentum=MOMENTUM,
                                           eps=EPS)
        return y, torch.autograd.grad(y, (xg, gg, bg), t["dy"])

    fn()
    y, (dx, dgamma, dbeta) = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=5 * x.nbytes)
    _check_forward(y.detach().numpy(), x, gamma, beta)
    _, mean, invstd = batchnorm_forward(x, gamma, beta, None, None, training=True, eps=EPS)
    _check_backward(dx.numpy(), dgamma.numpy(), dbeta.numpy(), dy, x, gamma, mean, invstd)
