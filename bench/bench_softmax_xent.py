"""Softmax cross-entropy, forward + backward in one call, and softmax alone: every provider, every shape.

The op (hard integer labels, mean over rows) returns the loss and the gradient of the logits:
    nncore      kernels.softmax_cross_entropy(x, t, out=g): one fused pass per row (log-sum-exp, loss,
                gradient), on NumPy arrays (nncore-cpu) or CuPy arrays (nncore-cuda)
    numpy/cupy  the textbook sequence: max, exp, sum, log, gather, divide, scatter-subtract (naive)
    torch       F.cross_entropy(x, t) then loss.backward()
    jax         jax.jit(jax.value_and_grad(mean(logsumexp(x) - x[t])))

Bytes counted per call: the logits read once and the gradient written once, 2 N C itemsize (the labels
are negligible); softmax the same. Speed goals: >= 65% of the copy-bandwidth floor and >= 8x torch-cpu at
N=4096, C=32768, float32 (issue 2); on a GPU >= 70% of the device's copy bandwidth and faster than
torch-cuda at N=16384, C=32768 (issue 4).

Scaling: N=256 (quick) or 1024 (full) rows over C = 2^8 .. 2^17, so the curves show where each provider
stops being bound by per-call overhead and where the GPU overtakes the CPU.

    pytest bench/bench_softmax_xent.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

from bench.conftest import gpu_only, one_case, only, shapes
from kernels import reference as ref
from kernels import softmax_xent as sx

TARGET = (4096, 32768)  # issue 2's CPU target shape
GPU_TARGET = (16384, 32768)  # issue 4's GPU target shape: 4.3 GB per call, GPU providers only


def _sweep(n, powers):
    return [(n, 1 << p) for p in powers]


QUICK_SWEEP = _sweep(256, (8, 11, 14, 17))
FULL_SWEEP = _sweep(1024, range(8, 18))
XENT_SHAPES = shapes(tiny=[(3, 37), (1, 5)], quick=QUICK_SWEEP, full=FULL_SWEEP + [TARGET, (4096, 10), GPU_TARGET])


class Case:
    """Fresh random logits (N(0, 2^2)) and labels for one shape, with the float64 expectations."""

    def __init__(self, n, c, dtype=np.float32):
        rng = np.random.default_rng()
        self.x = rng.standard_normal((n, c), dtype=np.float32).astype(dtype) * dtype(2.0)
        self.t = rng.integers(0, c, size=n)
        self._loss = None

    @property
    def nbytes(self):
        return 2 * self.x.nbytes

    def expected_mean_loss(self):
        """Mean of lse_i - x[i, t_i] in float64, 256 rows at a time (the whole oracle would need GiBs)."""
        if self._loss is None:
            total = 0.0
            for i in range(0, self.x.shape[0], 256):
                xs = self.x[i:i + 256].astype(np.float64)
                total += float((ref.logsumexp(xs) - xs[np.arange(xs.shape[0]), self.t[i:i + 256]]).sum())
            self._loss = total / self.x.shape[0]
        return self._loss

    def check_xent(self, result, rtol):
        loss, g = result
        assert g.shape == self.x.shape and g.dtype == self.x.dtype
        expected = self.expected_mean_loss()
        assert abs(float(loss) - expected) <= rtol * abs(expected) + 1e-7, (float(loss), expected)
        rows = slice(0, 64)
        _, eg = ref.cross_entropy(self.x[rows], self.t[rows], reduction="sum")
        np.testing.assert_allclose(g[rows] * self.x.shape[0], eg, rtol=rtol, atol=1e-6)

    def check_softmax(self, y, rtol):
        assert y.shape == self.x.shape and y.dtype == self.x.dtype
        rows = slice(0, 64)
        np.testing.assert_allclose(y[rows], ref.softmax(self.x[rows]), rtol=rtol, atol=1e-7)


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --


def _naive_xent(xp, x, t):
    m = x.max(axis=1, keepdims=True)
    e = xp.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    rows = xp.arange(x.shape[0])
    loss = (xp.log(s[:, 0]) + m[:, 0] - x[rows, t]).mean()
    g = e / s
    g[rows, t] -= 1
    g /= x.shape[0]
    return loss, g


def _naive_softmax(xp, x):
    e = xp.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def xent_call(provider, case):
    x, t = provider.asarray(case.x), provider.asarray(case.t)
    if provider.library == "nncore":
        out = provider.xp.empty_like(x)
        return lambda: sx.softmax_cross_entropy(x, t, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_xent(provider.xp, x, t)
    if provider.library == "torch":
        import torch

        x.requires_grad_(True)

        def step():
            x.grad = None  # backward accumulates: start from no gradient, as the other providers do
            loss = torch.nn.functional.cross_entropy(x, t)
            loss.backward()
            return loss, x.grad

        return step
    import jax
    import jax.numpy as jnp

    t = provider.asarray(case.t.astype(np.int32))  # JAX is 32-bit unless x64 is enabled

    def loss(x, t):
        return jnp.mean(jax.nn.logsumexp(x, axis=1) - jnp.take_along_axis(x, t[:, None], axis=1)[:, 0])

    f = jax.jit(jax.value_and_grad(loss))
    return lambda: f(x, t)


def softmax_call(provider, case):
    x = provider.asarray(case.x)
    if provider.library == "nncore":
        out = provider.xp.empty_like(x)
        return lambda: sx.softmax(x, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_softmax(provider.xp, x)
    if provider.library == "torch":
        import torch

        return lambda: torch.softmax(x, dim=-1)  # no out=: it allocates
    import jax

    f = jax.jit(lambda x: jax.nn.softmax(x, axis=-1))
    return lambda: f(x)


def case_for(shape, dtype=np.float32):
    """One Case per shape and dtype per session: the big ones hold hundreds of MiB."""
    return one_case((__name__, tuple(shape), np.dtype(dtype).name), lambda: Case(*shape, dtype=dtype))


@XENT_SHAPES
def test_softmax_xent(measure, provider, shape):
    if tuple(shape) == GPU_TARGET:
        gpu_only(provider, "the GPU target shape moves 4.3 GB per call")
    case = case_for(shape)
    n, c = shape
    sweep = {"N": n, "C": c} if shape in QUICK_SWEEP + FULL_SWEEP else None  # a point on the scaling curve
    measure(xent_call(provider, case), op="softmax_xent f32", shape=f"{n}x{c}", nbytes=case.nbytes, params=sweep,
            check=lambda r: case.check_xent(r, provider.rtol))


@only("nncore-cpu", "nncore-cuda")
@shapes(tiny=[(3, 37)], quick=[(256, 1 << 17)], full=[TARGET])
def test_softmax_xent_allocating(measure, provider, shape):
    """The same call without ``out=``: it allocates the gradient each time (issue 2 asks for this figure
    beside the preallocated one; on the CPU a fresh 512 MiB array costs its first-touch page faults)."""
    case = case_for(shape)
    n, c = shape
    x, t = provider.asarray(case.x), provider.asarray(case.t)
    measure(lambda: sx.softmax_cross_entropy(x, t), op="softmax_xent f32", shape=f"{n}x{c}", nbytes=case.nbytes,
            variant="allocating", check=lambda r: case.check_xent(r, provider.rtol))


@shapes(tiny=[(3, 37)], quick=[(512, 4096)], full=[(512, 4096), (256, 1000), TARGET])
def test_softmax(measure, provider, shape):
    case = case_for(shape)
    n, c = shape
    measure(softmax_call(provider, case), op="softmax f32", shape=f"{n}x{c}", nbytes=case.nbytes,
            check=lambda y: case.check_softmax(y, provider.rtol))


@only("nncore-cpu", "numpy", "torch-cpu", "nncore-cuda", "cupy", "torch-cuda")  # jax is float32 by default
@shapes(tiny=[(3, 37)], quick=[(256, 1000)])
def test_softmax_xent_float64(measure, provider, shape):
    case = case_for(shape, np.float64)
    n, c = shape
    measure(xent_call(provider, case), op="softmax_xent f64", shape=f"{n}x{c}", nbytes=case.nbytes,
            dtype=np.float64, check=lambda r: case.check_xent(r, 1e-10))
