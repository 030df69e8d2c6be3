"""Dropout forward in training mode (mask generation + apply), p = 0.2, on flat float32 arrays: every provider.

The op returns y = x * mask / (1 - p) with a Bernoulli(1 - p) keep mask generated in the call:
    nncore      kernels.dropout_forward(x, p, seed, counter, out=y): Philox4x32-10 computed on the fly, one
                pass, the mask never stored, on NumPy arrays (nncore-cpu) or CuPy arrays (nncore-cuda)
    numpy/cupy  mask = xp.random.random(shape) >= p; y = x * mask / (1 - p) (naive: float64 uniforms, a
                bool mask and a temporary are materialised)
    torch       F.dropout(x, p, training=True)
    jax         jax.jit of jnp.where(jax.random.bernoulli(key, 1 - p, shape), x / (1 - p), 0)

nncore and jax are called with one fixed (seed, counter) or key, so they regenerate the same mask every call;
numpy, cupy and torch draw a new one. Either way every call generates a whole mask, as a training step does.
Bytes counted per call: x read once and y written once, 2 N itemsize, for every provider (what
the op must move; the naive version's float64 uniforms and mask are its own extra traffic). Speed goal:
>= 50% of the copy-bandwidth floor at N = 16M float32 (issue 2); Philox costs ten rounds of two
32x32 -> 64-bit multiplies per four elements on top of the copy.

Checks: nncore's mask equals the oracle's (kernels.reference, the same seed and counter) exactly and its
kept values are x / (1 - p); for the others every element is 0 or x / (1 - p), and the kept fraction lies
within five standard deviations of 1 - p.

Sizes: 2M elements (quick); 64K, 2M and the 16M target (full).

    pytest bench/bench_dropout.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

from bench.conftest import one_case, shape_id, shapes
from kernels import dropout
from kernels import reference as ref

P = 0.2
SEED, COUNTER = 0x5EED_0001_2345, 17
TARGET = (1 << 24,)  # issue 2's target size: 16M elements
ORACLE_ELEMENTS = 8192  # the Python oracle's Philox is slow: nncore's mask is compared on a prefix


class Case:
    """Fresh random x (N(0, 1), never exactly 0, so y == 0 means dropped) of one shape."""

    def __init__(self, shape):
        self.x = np.random.default_rng().standard_normal(shape, dtype=np.float32)
        self.x[self.x == 0] = 1.0

    def check(self, y, exact_mask, rtol):
        assert y.shape == self.x.shape and y.dtype == self.x.dtype
        x, y = self.x.reshape(-1), y.reshape(-1)
        kept = y != 0
        np.testing.assert_allclose(y[kept], x[kept].astype(np.float64) / (1 - P), rtol=rtol, atol=0)
        n = x.size
        rate = np.count_nonzero(kept) / n
        assert abs(rate - (1 - P)) <= 5 * np.sqrt(P * (1 - P) / n), (rate, 1 - P)
        if exact_mask:
            m = min(n, ORACLE_ELEMENTS)
            np.testing.assert_array_equal(kept[:m], ref.dropout_mask((m,), P, SEED, COUNTER))


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --


def _naive_dropout(xp, x):
    mask = xp.random.random(x.shape) >= P
    return x * mask / (1 - P)


def dropout_call(provider, case):
    x = provider.asarray(case.x)
    if provider.library == "nncore":
        out = provider.xp.empty_like(x)
        return lambda: dropout.dropout_forward(x, P, SEED, COUNTER, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_dropout(provider.xp, x)
    if provider.library == "torch":
        import torch

        return lambda: torch.nn.functional.dropout(x, P, training=True)
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(SEED & 0xFFFFFFFF)

    @jax.jit
    def f(key, x):
        return jnp.where(jax.random.bernoulli(key, 1 - P, x.shape), x / (1 - P), 0)

    return lambda: f(key, x)


def case_for(shape):
    """One Case per shape per session."""
    return one_case((__name__, tuple(shape)), lambda: Case(shape))


@shapes(tiny=[(3, 37)], quick=[(1 << 21,)], full=[(1 << 16,), (1 << 21,), TARGET], ids=shape_id)
def test_dropout_forward(measure, provider, shape):
    case = case_for(shape)
    exact = provider.library == "nncore"
    measure(dropout_call(provider, case), op=f"dropout p={P} forward f32", shape=shape_id(shape),
            nbytes=2 * case.x.nbytes,
            check=lambda y: case.check(y, exact, 2e-7 if exact else 1e-6))
