"""Linear layer + relu, forward and backward in one call, float32: every provider, and the three GEMMs alone.

One call computes y = relu(x @ w + b) and, from the upstream gradient dy, dx, dw and db:
    nncore        kernels.linear.linear_forward(x, w, b, "relu", out=y) then linear_backward(dy, x, w, y,
                  "relu", out_dx=dx, out_dw=dw, out_db=db, workspace=ws): its fastest documented usage,
                  preallocated outputs and a LinearWorkspace (no allocation per step), on NumPy arrays
                  (nncore-cpu, BLAS GEMMs) or CuPy arrays (nncore-cuda, cuBLAS GEMMs with TF32 off and a
                  device workspace, LinearWorkspace(..., device="cuda"))
    numpy/cupy    the textbook sequence: y = relu(x @ w + b); dz = dy * (y > 0); dw = x.T @ dz;
                  db = dz.sum(0); dx = dz @ w.T (naive, allocating)
    torch         F.linear + relu, then y.backward(dy) (weight in torch's (out, in) layout)
    jax           jax.jit of the forward and its jax.vjp
    3 GEMMs only  numpy, variant "3 GEMMs only": x @ w, dy @ w.T and x.T @ dy into preallocated outputs,
                  nothing around them, on the same arrays: the time no implementation can go below

Flops counted per call: the three GEMMs, 3 * 2 N in out (the elementwise work is a few percent of it).
Speed goal (issue 2): nncore-cpu within 1.15x of "3 GEMMs only" at N=256, 1024 -> 1024: bias, relu, dz
and the bias-gradient reduction may cost at most 15% on top of the GEMMs they sit between.

Check, against the float64 oracle (kernels/reference.py) on a spread of 64 rows and 64 columns: y on those
rows and on those columns, dx on the rows, dw and db on the columns, each within the float32 rounding
bound of bench_matmul.assert_dot_close (which a GEMM run in TF32 would exceed). The relu mask of the
backward is the provider's own y > 0, once y has been checked: where z = x @ w + b lies within rounding of
0 either mask is right, and the float64 one would flag a correct result.

    pytest bench/bench_linear.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

from bench.bench_matmul import assert_dot_close, spread
from bench.conftest import only, shapes
from kernels import linear as L
from kernels import reference as ref

TARGET = (256, 1024, 1024)  # issue 2's target: N, in_features, out_features

LINEAR_SHAPES = shapes(tiny=[(3, 37, 5), (70, 9, 65)], quick=[TARGET], full=[TARGET, (4096, 1024, 1024)])


class Case:
    """Fresh random x, w (scaled by 1/sqrt(in)), b and dy, N(0, 1), float32, for one (N, in, out)."""

    def __init__(self, n, k, m):
        rng = np.random.default_rng()
        self.x = rng.standard_normal((n, k), dtype=np.float32)
        self.w = rng.standard_normal((k, m), dtype=np.float32) / np.float32(np.sqrt(k))
        self.b = rng.standard_normal(m, dtype=np.float32)
        self.dy = rng.standard_normal((n, m), dtype=np.float32)
        self.rows, self.cols = spread(n), spread(m)

    @property
    def flops(self):
        (n, k), m = self.x.shape, self.w.shape[1]
        return 3 * 2 * n * k * m

    def check(self, result, *, layer=True, dw_transposed=False):
        """``result`` = (y, dx, dw, db) of the layer, or with ``layer=False`` (y, dx, dw) of the three GEMMs
        alone (y = x @ w, dz = dy); ``dw_transposed``: dw comes in torch's (out, in) layout."""
        y, dx, dw = result[:3]
        n, k, m = self.x.shape + self.w.shape[1:]
        if dw_transposed:
            dw = dw.T
        assert y.shape == (n, m) and dx.shape == (n, k) and dw.shape == (k, m)
        assert y.dtype == dx.dtype == dw.dtype == np.float32
        x, w, dz = self.x.astype(np.float64), self.w.astype(np.float64), self.dy.astype(np.float64)
        xb, wb = x, w
        if layer:  # the bias as one more term of each dot product
            xb, wb = np.hstack([x, np.ones((n, 1))]), np.vstack([w, self.b[None, :]])
        assert_dot_close(y[self.rows], xb[self.rows], wb, relu=layer)
        assert_dot_close(y[:, self.cols], xb, wb[:, self.cols], relu=layer)
        if layer:
            dz = ref.activation_backward(dz, y, "relu")  # the provider's mask, now that y is checked
        assert_dot_close(dx[self.rows], dz[self.rows], w.T)
        assert_dot_close(dw[:, self.cols], x.T, dz[:, self.cols])
        if layer:
            db = result[3]
            assert db.shape == (m,) and db.dtype == np.float32
            assert_dot_close(db[self.cols], np.ones((1, n)), dz[:, self.cols])


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --


def _naive(xp, x, w, b, dy):
    y = xp.maximum(x @ w + b, 0)
    dz = dy * (y > 0)
    return y, dz @ w.T, x.T @ dz, dz.sum(axis=0)


def layer_call(provider, case):
    x, w, b, dy = (provider.asarray(a) for a in (case.x, case.w, case.b, case.dy))
    if provider.library == "nncore":
        y, dx, dw, db = (provider.xp.empty_like(a) for a in (dy, x, w, b))
        ws = L.LinearWorkspace(*case.dy.shape, np.float32, device=provider.device)

        def step():
            L.linear_forward(x, w, b, "relu", out=y)
            L.linear_backward(dy, x, w, y, "relu", out_dx=dx, out_dw=dw, out_db=db, workspace=ws)
            return y, dx, dw, db

        return step
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive(provider.xp, x, w, b, dy)
    if provider.library == "torch":
        import torch

        weight = provider.asarray(case.w.T).requires_grad_(True)  # torch's layout: (out, in)
        x.requires_grad_(True)
        b.requires_grad_(True)

        def step():
            x.grad = weight.grad = b.grad = None  # backward accumulates: start from none, as the others do
            y = torch.relu(torch.nn.functional.linear(x, weight, b))
            y.backward(dy)
            return y, x.grad, weight.grad, b.grad

        return step
    import jax

    def fwd_bwd(x, w, b, dy):
        y, vjp = jax.vjp(lambda x, w, b: jax.nn.relu(x @ w + b), x, w, b)
        return (y, *vjp(dy))

    f = jax.jit(fwd_bwd)
    return lambda: f(x, w, b, dy)


def three_gemms_call(case):
    """The three GEMMs of the layer on NumPy arrays, into preallocated outputs, with dy in place of dz."""
    x, w, dy = case.x, case.w, case.dy
    y, dx, dw = np.empty_like(dy), np.empty_like(x), np.empty_like(w)

    def gemms():
        np.matmul(x, w, out=y)
        np.matmul(dy, w.T, out=dx)
        np.matmul(x.T, dy, out=dw)
        return y, dx, dw

    return gemms


_cases: dict = {}


def case_for(shape):
    """One Case per shape per session, all kept (40 MiB at most), so the three GEMMs alone run on the very
    arrays the layer ran on."""
    if shape not in _cases:
        _cases[shape] = Case(*shape)
    return _cases[shape]


def _run(measure, fn, case, shape, check, **extra):
    n, k, m = shape
    measure(fn, op="linear+relu fwd+bwd f32", shape=f"{n}x{k}x{m}", flops=case.flops,
            check=check, **extra)


@LINEAR_SHAPES
def test_linear_relu(measure, provider, shape):
    case = case_for(shape)
    _run(measure, layer_call(provider, case), case, shape,
         lambda r: case.check(r, dw_transposed=provider.library == "torch"))


@only("numpy")
@LINEAR_SHAPES
def test_linear_three_gemms_only(measure, provider, shape):
    case = case_for(shape)
    _run(measure, three_gemms_call(case), case, shape, lambda r: case.check(r, layer=False),
         variant="3 GEMMs only")
