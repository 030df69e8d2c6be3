"""Dropout forward on 16M float32 elements: nncore (Philox mask computed on the fly) vs torch-cpu.

Bytes moved: read x, write y (the mask is never stored). The floor is that over the measured copy
bandwidth; Philox4x32-10 costs ten rounds of two 32x32->64 multiplies per four elements on top.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import dropout as D
from kernels import reference as ref

N = 1 << 24
P = 0.3
SEED, COUNTER = 0x5EED_0001_2345, 17


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal(N).astype(np.float32)


def _check(x, y):
    m = 20000
    keep = ref.dropout_mask((m,), P, SEED, COUNTER)
    np.testing.assert_array_equal(y[:m] != 0, keep)
    scale = np.float32(1.0 / (1.0 - P))
    np.testing.assert_array_equal(y[:m][keep], x[:m][keep] * scale)
    rate = float(np.count_nonzero(y)) / y.size
    assert abs(rate - (1 - P)) < 1e-3, rate


@pytest.mark.benchmark(group="dropout_forward-16M-float32")
def test_dropout_forward_nncore(benchmark, report, x):
    y = np.empty_like(x)
    D.dropout_forward(x, P, SEED, COUNTER, out=y)
    y.fill(0)
    benchmark.pedantic(D.dropout_forward, args=(x, P, SEED, COUNTER), kwargs={"out": y}, rounds=10, warmup_rounds=1)
    _check(x, y)
    report(benchmark, nbytes=2 * x.nbytes)


@pytest.mark.benchmark(group="dropout_forward-16M-float32")
def test_dropout_forward_torch(benchmark, report, x):
    torch = torch_or_skip()
    xt = torch.from_numpy(x)

    def run():
        return torch.nn.functional.dropout(xt, P, training=True)

    run()
    y = benchmark.pedantic(run, rounds=5, warmup_rounds=1).numpy()
    rate = float(np.count_nonzero(y)) / y.size
    assert abs(rate - (1 - P)) < 1e-3, rate
    report(benchmark, nbytes=2 * x.nbytes, torch_threads=torch.get_num_threads())


@pytest.mark.benchmark(group="dropout_mask-16M")
def test_dropout_mask_nncore(benchmark, report):
    D.dropout_mask((N,), P, SEED, COUNTER)
    m = benchmark.pedantic(D.dropout_mask, args=((N,), P, SEED, COUNTER), rounds=10, warmup_rounds=1)
    np.testing.assert_array_equal(m[:20000], ref.dropout_mask((20000,), P, SEED, COUNTER))
    # dropout_mask has no out=: the time includes allocating (and first touching) the 16 MB result
    report(benchmark, nbytes=m.nbytes, includes_allocation=True)
