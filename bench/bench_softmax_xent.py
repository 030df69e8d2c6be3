"""Benchmarks of kernels.softmax_xent: the fused cross-entropy (forward + backward) and softmax.

Bytes counted per call: the logits read once and the gradient (or softmax) written once, N * C * itemsize
each; the targets are negligible. Speed goal (bench/RESULTS.md): softmax_cross_entropy float32 at
N=4096, C=32768, hard targets, mean, with a preallocated ``out=``: >= 65% of the copy-bandwidth floor,
and >= 8x faster than torch.nn.functional.cross_entropy forward + backward on the same arrays.

Run: pytest bench/bench_softmax_xent.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import reference as ref
from kernels import softmax_xent as sx

SHAPES = [(4096, 32768), (256, 1000), (4096, 10)]
SHAPE_IDS = ["4096x32768", "256x1000", "4096x10"]
# the big shape moves 1 GiB per call: a few rounds are enough, and torch takes ~1 s per call there
ROUNDS = {(4096, 32768): 5, (256, 1000): 200, (4096, 10): 200}
TORCH_ROUNDS = {(4096, 32768): 3, (256, 1000): 50, (4096, 10): 50}


class _Case:
    """Fresh random logits and labels for one shape, with the expected mean loss computed once."""

    def __init__(self, n, c, dtype=np.float32):
        rng = np.random.default_rng()
        self.x = rng.standard_normal((n, c), dtype=dtype) * dtype(2.0)
        self.t = rng.integers(0, c, size=n)
        self.out = np.empty_like(self.x)
        self._loss = None

    @property
    def nbytes(self):
        return 2 * self.x.nbytes

    def expected_mean_loss(self):
        """Mean of lse_i - x[i, t_i] in float64, a few hundred rows at a time (the oracle would need GiBs)."""
        if self._loss is None:
            total = 0.0
            for i in range(0, self.x.shape[0], 256):
                xs = self.x[i:i + 256].astype(np.float64)
                m = xs.max(axis=1)
                lse = m + np.log(np.exp(xs - m[:, None]).sum(axis=1))
                total += float((lse - xs[np.arange(xs.shape[0]), self.t[i:i + 256]]).sum())
            self._loss = total / self.x.shape[0]
        return self._loss

    def check_xent(self, loss, g, rtol=2e-5):
        assert g.shape == self.x.shape and g.dtype == self.x.dtype
        assert abs(float(loss) - self.expected_mean_loss()) <= rtol * abs(self.expected_mean_loss())
        rows = slice(0, 64)
        _, eg = ref.cross_entropy(self.x[rows], self.t[rows], reduction="sum")
        n = self.x.shape[0]
        np.testing.assert_allclose(g[rows] * n, eg, rtol=rtol, atol=1e-6)


_cases = {}


def _case(shape, dtype=np.float32):
    key = (shape, np.dtype(dtype).name)
    if key not in _cases:  # the 4096 x 32768 case holds 1 GiB (logits + out): built once per session
        _cases[key] = _Case(*shape, dtype=dtype)
    return _cases[key]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_xent_fused_out(benchmark, report, shape):
    case = _case(shape)
    benchmark.group = f"softmax_xent f32 {shape[0]}x{shape[1]}"
    fn = lambda: sx.softmax_cross_entropy(case.x, case.t, out=case.out)  # noqa: E731
    fn()
    loss, g = benchmark.pedantic(fn, rounds=ROUNDS[shape], warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes)
    case.check_xent(loss, g)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_xent_fused_alloc(benchmark, report, shape):
    case = _case(shape)
    benchmark.group = f"softmax_xent f32 {shape[0]}x{shape[1]}"
    fn = lambda: sx.softmax_cross_entropy(case.x, case.t)  # noqa: E731
    fn()
    loss, g = benchmark.pedantic(fn, rounds=ROUNDS[shape], warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes)
    case.check_xent(loss, g)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_xent_torch(benchmark, report, shape):
    torch = torch_or_skip()
    case = _case(shape)
    benchmark.group = f"softmax_xent f32 {shape[0]}x{shape[1]}"
    xt = torch.from_numpy(case.x).requires_grad_(True)
    tt = torch.from_numpy(case.t)

    def fn():
        xt.grad = None  # backward accumulates: start from no gradient, as our call does
        loss = torch.nn.functional.cross_entropy(xt, tt)
        loss.backward()
        return loss

    fn()
    loss = benchmark.pedantic(fn, rounds=TORCH_ROUNDS[shape], warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes, torch_threads=torch.get_num_threads())
    case.check_xent(loss.item(), xt.grad.numpy(), rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES[:2], ids=SHAPE_IDS[:2])
def test_softmax_forward(benchmark, report, shape):
    case = _case(shape)
    benchmark.group = f"softmax f32 {shape[0]}x{shape[1]}"
    fn = lambda: sx.softmax(case.x, out=case.out)  # noqa: E731
    fn()
    y = benchmark.pedantic(fn, rounds=ROUNDS[shape], warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes)
    rows = slice(0, 64)
    np.testing.assert_allclose(y[rows], ref.softmax(case.x[rows]), rtol=2e-5, atol=2e-7)


@pytest.mark.parametrize("shape", SHAPES[:2], ids=SHAPE_IDS[:2])
def test_softmax_forward_torch(benchmark, report, shape):
    torch = torch_or_skip()
    case = _case(shape)
    benchmark.group = f"softmax f32 {shape[0]}x{shape[1]}"
    xt = torch.from_numpy(case.x)
    fn = lambda: torch.softmax(xt, dim=-1)  # noqa: E731  (torch.softmax has no out=: it allocates)
    fn()
    y = benchmark.pedantic(fn, rounds=TORCH_ROUNDS[shape], warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes, torch_threads=torch.get_num_threads())
    rows = slice(0, 64)
    np.testing.assert_allclose(y[rows].numpy(), ref.softmax(case.x[rows]), rtol=1e-5, atol=1e-7)


def test_xent_fused_float64(benchmark, report):
    case = _case((256, 1000), np.float64)
    benchmark.group = "softmax_xent f64 256x1000"
    fn = lambda: sx.softmax_cross_entropy(case.x, case.t, out=case.out)  # noqa: E731
    fn()
    loss, g = benchmark.pedantic(fn, rounds=200, warmup_rounds=1)
    report(benchmark, nbytes=case.nbytes, dtype=np.float64)
    case.check_xent(loss, g, rtol=1e-10)
