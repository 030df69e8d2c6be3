"""Activations, forward and backward, on flat float32 arrays: every provider, every size.

relu, leaky_relu (negative slope 0.01), sigmoid and tanh; each direction of each activation is its own op
("relu forward f32", "relu backward f32", ...). The backward takes the upstream gradient dy and the saved
output y = act(x), as nncore's layers save it:
    nncore      kernels.relu / leaky_relu / sigmoid / tanh (x, out=y) and their *_backward(dy, y, out=dx),
                one vectorised pass, on NumPy arrays (nncore-cpu) or CuPy arrays (nncore-cuda)
    numpy/cupy  the formulas as array expressions: maximum, where, 1 / (1 + exp(-x)), tanh; backward
                dy * (y > 0), where, dy * y * (1 - y), dy * (1 - y * y) (naive: temporaries allocated)
    torch       torch.relu, F.leaky_relu, torch.sigmoid, torch.tanh; backward the functional formulas
                autograd runs: aten threshold_backward, leaky_relu_backward (self_is_result), sigmoid_backward,
                tanh_backward, each on (dy, y)
    jax         jax.jit of jax.nn.relu, jax.nn.leaky_relu, jax.nn.sigmoid, jnp.tanh; backward jax.jit of
                jax.vjp of the forward at the saved input x, applied to dy (JAX's autodiff keeps x, not y)

Bytes counted per call: forward reads x and writes y, 2 N itemsize; backward reads dy and y (x for jax) and
writes dx, 3 N itemsize. Speed goal: >= 50% of the copy-bandwidth floor at N = 16M float32, forward and
backward of every activation (issue 2).

Sizes: 2M elements (quick); 64K (where per-call overhead shows), 2M and the 16M target (full).

    pytest bench/bench_activations.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import one_case, shape_id, shapes
from kernels import activations as act
from kernels import reference as ref

KINDS = ("relu", "leaky_relu", "sigmoid", "tanh")
SLOPE = 0.01  # leaky_relu's negative slope
TARGET = (1 << 24,)  # issue 2's target size: 16M elements


ACTIVATION_SHAPES = shapes(
    tiny=[(3, 37)],
    quick=[(1 << 21,)],
    full=[(1 << 16,), (1 << 21,), TARGET],
    ids=shape_id,
)


class Case:
    """Fresh random x (N(0, 4^2): every activation's both regimes) and dy (N(0, 1)) of one shape."""

    def __init__(self, shape):
        rng = np.random.default_rng()
        self.x = rng.standard_normal(shape, dtype=np.float32) * np.float32(4.0)
        self.dy = rng.standard_normal(shape, dtype=np.float32)
        self._y = {}

    def y(self, kind):
        """The saved forward output the backward takes: the float64 oracle's, rounded to float32."""
        if kind not in self._y:
            self._y[kind] = ref.activation(self.x, kind, SLOPE).astype(np.float32)
        return self._y[kind]

    @staticmethod
    def _sample(a):
        return a.reshape(-1)[::97]  # a strided sample keeps the oracle cheap and spans the whole array

    def check_forward(self, kind, y, rtol):
        assert y.shape == self.x.shape and y.dtype == self.x.dtype
        expected = ref.activation(self._sample(self.x), kind, SLOPE)
        np.testing.assert_allclose(self._sample(y), expected, rtol=rtol, atol=1e-6)

    def check_backward(self, kind, dx, rtol):
        assert dx.shape == self.x.shape and dx.dtype == self.x.dtype
        expected = ref.activation_backward(self._sample(self.dy), self._sample(self.y(kind)), kind, SLOPE)
        np.testing.assert_allclose(self._sample(dx), expected, rtol=rtol, atol=2e-6)


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --

NNCORE_FORWARD = {"relu": act.relu, "leaky_relu": lambda x, out: act.leaky_relu(x, SLOPE, out=out),
                  "sigmoid": act.sigmoid, "tanh": act.tanh}
NNCORE_BACKWARD = {"relu": act.relu_backward,
                   "leaky_relu": lambda dy, y, out: act.leaky_relu_backward(dy, y, SLOPE, out=out),
                   "sigmoid": act.sigmoid_backward, "tanh": act.tanh_backward}


def _naive_forward(xp, kind, x):
    if kind == "relu":
        return xp.maximum(x, 0)
    if kind == "leaky_relu":
        return xp.where(x > 0, x, SLOPE * x)
    if kind == "sigmoid":
        return 1 / (1 + xp.exp(-x))
    return xp.tanh(x)


def _naive_backward(xp, kind, dy, y):
    if kind == "relu":
        return dy * (y > 0)
    if kind == "leaky_relu":
        return xp.where(y > 0, dy, SLOPE * dy)
    if kind == "sigmoid":
        return dy * y * (1 - y)
    return dy * (1 - y * y)


def _jax_forward(kind):
    import jax
    import jax.numpy as jnp

    return {"relu": jax.nn.relu, "leaky_relu": lambda x: jax.nn.leaky_relu(x, SLOPE),
            "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[kind]


def forward_call(provider, case, kind):
    x = provider.asarray(case.x)
    if provider.library == "nncore":
        out = provider.xp.empty_like(x)
        return lambda: NNCORE_FORWARD[kind](x, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_forward(provider.xp, kind, x)
    if provider.library == "torch":
        import torch

        f = {"relu": torch.relu, "leaky_relu": lambda x: torch.nn.functional.leaky_relu(x, SLOPE),
             "sigmoid": torch.sigmoid, "tanh": torch.tanh}[kind]
        return lambda: f(x)  # no out=: it allocates
    import jax

    f = jax.jit(_jax_forward(kind))
    return lambda: f(x)


def backward_call(provider, case, kind):
    dy = provider.asarray(case.dy)
    if provider.library == "jax":
        import jax

        forward = _jax_forward(kind)
        f = jax.jit(lambda x, dy: jax.vjp(forward, x)[1](dy)[0])
        x = provider.asarray(case.x)
        return lambda: f(x, dy)
    y = provider.asarray(case.y(kind))
    if provider.library == "nncore":
        out = provider.xp.empty_like(dy)
        return lambda: NNCORE_BACKWARD[kind](dy, y, out=out)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_backward(provider.xp, kind, dy, y)
    import torch

    aten = torch.ops.aten
    f = {"relu": lambda dy, y: aten.threshold_backward(dy, y, 0.0),
         "leaky_relu": lambda dy, y: aten.leaky_relu_backward(dy, y, SLOPE, True),
         "sigmoid": aten.sigmoid_backward, "tanh": aten.tanh_backward}[kind]
    return lambda: f(dy, y)


def case_for(shape):
    """One Case per shape per session (all activations and directions of a shape share it)."""
    return one_case((__name__, tuple(shape)), lambda: Case(shape))


@pytest.mark.parametrize("kind", KINDS)
@ACTIVATION_SHAPES
def test_activation_forward(measure, provider, shape, kind):
    case = case_for(shape)
    measure(forward_call(provider, case, kind), op=f"{kind} forward f32", shape=shape_id(shape),
            nbytes=2 * case.x.nbytes,
            check=lambda y: case.check_forward(kind, y, provider.rtol))


@pytest.mark.parametrize("kind", KINDS)
@ACTIVATION_SHAPES
def test_activation_backward(measure, provider, shape, kind):
    case = case_for(shape)
    measure(backward_call(provider, case, kind), op=f"{kind} backward f32", shape=shape_id(shape),
            nbytes=3 * case.x.nbytes,
            check=lambda dx: case.check_backward(kind, dx, provider.rtol))
