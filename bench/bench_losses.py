"""Elementwise losses, forward + backward in one call (the mean loss and dx), on flat float32 arrays.

MSE, L1 and binary cross-entropy on logits, "mean" reduction, target t of x's shape; each loss is its own op
("mse_loss fwd+bwd f32", ...):
    nncore      kernels.mse_loss / l1_loss / binary_cross_entropy_with_logits (x, t, out=dx): one pass
                writing dx and summing the loss per block, on NumPy arrays (nncore-cpu) or CuPy arrays
                (nncore-cuda)
    numpy/cupy  the formulas as array expressions, d = x - t: mean(d * d) and d * 2 / N; mean(|d|) and
                sign(d) / N; with e = exp(-|x|), mean(max(x, 0) - x t + log1p(e)) and
                (where(x >= 0, 1, e) / (1 + e) - t) / N (naive: temporaries allocated)
    torch       F.mse_loss / F.l1_loss / F.binary_cross_entropy_with_logits (x, t), then loss.backward()
    jax         jax.jit(jax.value_and_grad(the same mean written with jnp))

Bytes counted per call: x and t read once and dx written once, 3 N itemsize (the loss is one scalar). No
speed target was set for the losses; issue 2 measured them at N = 16M float32: MSE and L1 at the memory
floor, BCE (an exp and a log1p per element) compute-bound at about a fifth of it.

Sizes: 2M elements (quick); 64K, 2M and 16M (full).

    pytest bench/bench_losses.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import one_case, shape_id, shapes
from kernels import losses
from kernels import reference as ref

TARGET = (1 << 24,)  # issue 2's size: 16M elements
ORACLE = {"mse_loss": ref.mse_loss, "l1_loss": ref.l1_loss,
          "bce_with_logits": ref.binary_cross_entropy_with_logits}
NNCORE = {"mse_loss": losses.mse_loss, "l1_loss": losses.l1_loss,
          "bce_with_logits": losses.binary_cross_entropy_with_logits}
TORCH = {"mse_loss": "mse_loss", "l1_loss": "l1_loss", "bce_with_logits": "binary_cross_entropy_with_logits"}


class Case:
    """Fresh random logits x (N(0, 3^2)) and targets t (uniform in [0, 1]) of one shape."""

    def __init__(self, shape):
        rng = np.random.default_rng()
        self.x = rng.standard_normal(shape, dtype=np.float32) * np.float32(3.0)
        self.t = rng.random(shape, dtype=np.float32)
        self._loss = {}

    def expected_mean_loss(self, name):
        """The float64 oracle's mean loss, 1M elements at a time (all 16M at once would take GiBs)."""
        if name not in self._loss:
            x, t, chunk = self.x.reshape(-1), self.t.reshape(-1), 1 << 20
            total = sum(float(ORACLE[name](x[i:i + chunk], t[i:i + chunk], reduction="sum")[0])
                        for i in range(0, x.size, chunk))
            self._loss[name] = total / x.size
        return self._loss[name]

    def check(self, name, result, rtol):
        loss, dx = result
        assert dx.shape == self.x.shape and dx.dtype == self.x.dtype
        expected = self.expected_mean_loss(name)
        assert abs(float(loss) - expected) <= rtol * abs(expected), (float(loss), expected)
        m = 1 << 16  # the gradient is elementwise: the oracle on a prefix is enough
        _, edx = ORACLE[name](self.x.reshape(-1)[:m], self.t.reshape(-1)[:m], reduction="none")
        np.testing.assert_allclose(dx.reshape(-1)[:m] * np.float64(self.x.size), edx, rtol=rtol, atol=1e-6)


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --


def _naive_loss(xp, name, x, t):
    n = x.size
    if name == "mse_loss":
        d = x - t
        return (d * d).mean(), d * (2 / n)
    if name == "l1_loss":
        d = x - t
        return xp.abs(d).mean(), xp.sign(d) / n
    e = xp.exp(-xp.abs(x))
    loss = (xp.maximum(x, 0) - x * t + xp.log1p(e)).mean()
    return loss, (xp.where(x >= 0, 1, e) / (1 + e) - t) / n


def _jax_loss(name):
    import jax.numpy as jnp

    def loss(x, t):
        if name == "mse_loss":
            return jnp.mean((x - t) ** 2)
        if name == "l1_loss":
            return jnp.mean(jnp.abs(x - t))
        return jnp.mean(jnp.maximum(x, 0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x))))

    return loss


def loss_call(provider, case, name):
    x, t = provider.asarray(case.x), provider.asarray(case.t)
    if provider.library == "nncore":
        out = provider.xp.empty_like(x)
        return lambda: NNCORE[name](x, t, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_loss(provider.xp, name, x, t)
    if provider.library == "torch":
        import torch

        f = getattr(torch.nn.functional, TORCH[name])
        x.requires_grad_(True)

        def step():
            x.grad = None  # backward accumulates: start from no gradient, as the other providers do
            loss = f(x, t)
            loss.backward()
            return loss, x.grad

        return step
    import jax

    f = jax.jit(jax.value_and_grad(_jax_loss(name)))
    return lambda: f(x, t)


def case_for(shape):
    """One Case per shape per session (the three losses of a shape share it)."""
    return one_case((__name__, tuple(shape)), lambda: Case(shape))


@pytest.mark.parametrize("name", list(ORACLE))
@shapes(tiny=[(3, 37)], quick=[(1 << 21,)], full=[(1 << 16,), (1 << 21,), TARGET], ids=shape_id)
def test_loss(measure, provider, shape, name):
    case = case_for(shape)
    measure(loss_call(provider, case, name), op=f"{name} fwd+bwd f32", shape=shape_id(shape),
            nbytes=3 * case.x.nbytes,
            check=lambda r: case.check(name, r, provider.rtol))
