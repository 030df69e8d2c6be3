"""Elementwise losses, forward + backward (loss and dx) on 16M float32 elements, nncore vs torch-cpu.

Bytes moved: read x and target, write dx ("mean" reduction: the loss itself is one scalar). torch runs
the same work through autograd: the loss, then its gradient with respect to x.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import losses as L
from kernels import reference as ref
from tests.helpers import assert_close

N = 1 << 24
LOSSES = {
    "bce": (L.binary_cross_entropy_with_logits, ref.binary_cross_entropy_with_logits,
            "binary_cross_entropy_with_logits"),
    "mse": (L.mse_loss, ref.mse_loss, "mse_loss"),
    "l1": (L.l1_loss, ref.l1_loss, "l1_loss"),
}


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(N) * 3).astype(np.float32)
    t = rng.uniform(0.0, 1.0, N).astype(np.float32)
    return x, t


@pytest.fixture(scope="module")
def expected_mean(inputs):
    """The float64 oracle's mean loss per loss name, computed once, chunk by chunk (float64 temporaries of
    all 16M elements at once would take gigabytes)."""
    x, t = inputs
    chunk = 1 << 20

    def mean(name):
        oracle = LOSSES[name][1]
        return sum(float(oracle(x[i:i + chunk], t[i:i + chunk], reduction="sum")[0]) for i in range(0, N, chunk)) / N

    return {name: mean(name) for name in LOSSES}


def _check(name, x, t, loss, dx, expected_mean):
    m = 1 << 16  # the elementwise gradient: the oracle on a slice is enough
    _, oracle, _ = LOSSES[name]
    _, r_dx = oracle(x[:m], t[:m], reduction="none")
    assert_close(dx[:m] * np.float32(N), r_dx, 1e-4, 1e-5, "dx")
    assert abs(float(loss) - expected_mean[name]) <= 1e-5 * abs(expected_mean[name]), (loss, expected_mean[name])


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_nncore(benchmark, report, inputs, expected_mean, name):
    x, t = inputs
    fn = LOSSES[name][0]
    dx = np.empty_like(x)
    fn(x, t, out=dx)
    benchmark.group = f"{name}-fwd+bwd-16M-float32"
    loss, _ = benchmark.pedantic(fn, args=(x, t), kwargs={"out": dx}, rounds=5, warmup_rounds=1)
    _check(name, x, t, loss, dx, expected_mean)
    report(benchmark, nbytes=3 * x.nbytes)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_torch(benchmark, report, inputs, expected_mean, name):
    torch = torch_or_skip()
    x, t = inputs
    xt = torch.from_numpy(x).requires_grad_(True)  # autograd writes no input: no copy needed
    tt = torch.from_numpy(t)
    f = getattr(torch.nn.functional, LOSSES[name][2])

    def run():
        loss = f(xt, tt)
        (dx,) = torch.autograd.grad(loss, xt)
        return loss, dx

    run()
    benchmark.group = f"{name}-fwd+bwd-16M-float32"
    loss, dx = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _check(name, x, t, loss.item(), dx.numpy(), expected_mean)
    report(benchmark, nbytes=3 * x.nbytes, torch_threads=torch.get_num_threads())
