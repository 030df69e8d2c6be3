"""BatchNorm1d in training mode on x (N, C), float32: forward, backward, and forward + backward in one call.

    nncore      kernels.batchnorm.batchnorm_forward(x, gamma, beta, running_mean, running_var,
                training=True, out=y) and batchnorm_backward(dy, x, gamma, mean, invstd, out=dx): into
                preallocated outputs, on NumPy arrays (nncore-cpu) or CuPy arrays (nncore-cuda)
    numpy/cupy  the textbook formulas: mean, biased var, xhat = (x - mean) invstd, y = gamma xhat + beta,
                the running statistics updated in place; backward dbeta = sum dy, dgamma = sum dy xhat,
                dx = gamma invstd / N (N dy - dbeta - xhat dgamma) (naive, allocating)
    torch       forward: torch.ops.aten.native_batch_norm.out (the op F.batch_norm calls, into preallocated
                y / save_mean / save_invstd, as nncore's out=); backward: native_batch_norm_backward (the op
                its autograd node calls); forward + backward: F.batch_norm with autograd (torch.autograd.grad),
                as a training step does, allocating
    jax         forward: jax.jit of the textbook forward (the running statistics returned, JAX being
                functional); backward: jax.jit of the vjp function that jax.vjp returned for that forward
                (its residuals saved before timing); forward + backward: jax.jit of jax.vjp and its call

Every forward also updates the running statistics (momentum 0.1), as training does; they are per-column
vectors, negligible next to the passes over (N, C), and not checked (each call moves them).

Bytes counted per call, each (N, C) array read or written once (the (C,) vectors are negligible): forward
x and y, 2 N C itemsize; backward dy, x and dx, 3 N C itemsize; forward + backward 5 N C itemsize.
Speed goal (issue 2): each of the three at >= 50% of the copy-bandwidth floor at 4096x4096 and 65536x256
(full preset).

Check: a spread of 64 columns (the columns are independent) against the float64 oracle,
kernels/reference.batchnorm_forward_train and batchnorm_backward, the backward through the oracle's own
float64 batch statistics.

    pytest bench/bench_batchnorm.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

from bench.bench_matmul import spread
from bench.conftest import one_case, shapes
from kernels import batchnorm as bn
from kernels import reference as ref

MOMENTUM, EPS = 0.1, 1e-5
TARGETS = [(4096, 4096), (65536, 256)]  # issue 2's target shapes: 16M elements each

BN_SHAPES = shapes(tiny=[(3, 37), (130, 5)], quick=[(4096, 512)], full=[(256, 1024), (4096, 512)] + TARGETS)


class Case:
    """Fresh random x (N(0.5, 2^2)), dy (N(0, 1)), gamma (U(0.5, 1.5)) and beta (N(0, 1)), float32, with
    the float64 expectations on the sampled columns."""

    def __init__(self, n, c):
        rng = np.random.default_rng()
        self.x = rng.standard_normal((n, c), dtype=np.float32) * np.float32(2) + np.float32(0.5)
        self.dy = rng.standard_normal((n, c), dtype=np.float32)
        self.gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
        self.beta = rng.standard_normal(c, dtype=np.float32)
        self.cols = spread(c)
        s = self.cols
        y, _, _, mean, invstd = ref.batchnorm_forward_train(self.x[:, s], self.gamma[s], self.beta[s], None, None,
                                                            eps=EPS)
        self.expected_y = y
        self.expected_grads = ref.batchnorm_backward(self.dy[:, s], self.x[:, s], self.gamma[s], mean, invstd)

    def check_forward(self, y, nncore):
        assert y.shape == self.x.shape and y.dtype == np.float32
        tol = 2e-5 if nncore else 1e-4
        np.testing.assert_allclose(y[:, self.cols], self.expected_y, rtol=tol, atol=tol)

    def check_backward(self, grads, nncore):
        dx, dgamma, dbeta = grads
        assert dx.shape == self.x.shape and dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
        s = self.cols
        edx, edgamma, edbeta = self.expected_grads
        np.testing.assert_allclose(dx[:, s], edx, rtol=1e-4, atol=1e-5 if nncore else 2e-5)
        # nncore sums blocks of 64 rows, then the blocks in float64; others may sum N float32 terms in row
        # order (NumPy's axis-0 sum), whose rounding grows like eps sqrt(N) times the sqrt(N) of these terms
        atol = 1e-3 if nncore else max(1e-3, 10 * np.finfo(np.float32).eps * self.x.shape[0])
        np.testing.assert_allclose(dgamma[s], edgamma, rtol=1e-4, atol=atol)
        np.testing.assert_allclose(dbeta[s], edbeta, rtol=1e-4, atol=atol)


# ---- the op on each provider: each builder takes the NumPy case and returns a call with no arguments --


def _naive_forward(xp, x, gamma, beta, running_mean, running_var):
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    invstd = 1 / xp.sqrt(var + EPS)
    y = (x - mean) * invstd * gamma + beta
    running_mean *= 1 - MOMENTUM
    running_mean += MOMENTUM * mean
    running_var *= 1 - MOMENTUM
    running_var += MOMENTUM * n / (n - 1) * var
    return y, mean, invstd


def _naive_backward(dy, x, gamma, mean, invstd):
    n = x.shape[0]
    xhat = (x - mean) * invstd
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = gamma * invstd / n * (n * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def _jax_forward(x, gamma, beta):
    """y and, as auxiliary output, the batch mean and biased variance."""
    import jax

    mean, var = x.mean(axis=0), x.var(axis=0)
    return (x - mean) * jax.lax.rsqrt(var + EPS) * gamma + beta, (mean, var)


def _jax_running(running_mean, running_var, stats, n):
    mean, var = stats
    return ((1 - MOMENTUM) * running_mean + MOMENTUM * mean,
            (1 - MOMENTUM) * running_var + MOMENTUM * n / (n - 1) * var)


def _arrays(provider, case):
    """x, dy, gamma, beta on the provider, and fresh running statistics (zeros, ones)."""
    c = case.x.shape[1]
    return [provider.asarray(a) for a in (case.x, case.dy, case.gamma, case.beta, np.zeros(c, np.float32),
                                          np.ones(c, np.float32))]


def forward_call(provider, case):
    """Returns a tuple starting with y."""
    x, _, gamma, beta, rm, rv = _arrays(provider, case)
    xp = provider.xp
    if provider.library == "nncore":
        y = xp.empty_like(x)
        return lambda: bn.batchnorm_forward(x, gamma, beta, rm, rv, training=True, momentum=MOMENTUM, eps=EPS, out=y)
    if provider.library in ("numpy", "cupy"):
        return lambda: _naive_forward(xp, x, gamma, beta, rm, rv)
    if provider.library == "torch":
        y, mean, invstd = xp.empty_like(x), xp.empty_like(gamma), xp.empty_like(gamma)
        return lambda: xp.ops.aten.native_batch_norm.out(x, gamma, beta, rm, rv, True, MOMENTUM, EPS, out=y,
                                                         save_mean=mean, save_invstd=invstd)
    import jax

    n = x.shape[0]

    def fwd(x, gamma, beta, rm, rv):
        y, stats = _jax_forward(x, gamma, beta)
        return (y, *_jax_running(rm, rv, stats, n))

    f = jax.jit(fwd)
    return lambda: f(x, gamma, beta, rm, rv)


def backward_call(provider, case):
    """Returns (dx, dgamma, dbeta), from what this provider's own forward saved (computed here, untimed)."""
    x, dy, gamma, beta, rm, rv = _arrays(provider, case)
    xp = provider.xp
    if provider.library == "nncore":
        _, mean, invstd = bn.batchnorm_forward(x, gamma, beta, None, None, training=True, eps=EPS)
        dx = xp.empty_like(x)
        return lambda: bn.batchnorm_backward(dy, x, gamma, mean, invstd, out=dx)
    if provider.library in ("numpy", "cupy"):
        _, mean, invstd = _naive_forward(xp, x, gamma, beta, rm, rv)
        return lambda: _naive_backward(dy, x, gamma, mean, invstd)
    if provider.library == "torch":
        _, mean, invstd = xp.ops.aten.native_batch_norm(x, gamma, beta, None, None, True, MOMENTUM, EPS)
        return lambda: xp.ops.aten.native_batch_norm_backward(dy, x, gamma, None, None, mean, invstd, True, EPS,
                                                              [True, True, True])
    import jax

    _, vjp_fn, _ = jax.vjp(_jax_forward, x, gamma, beta, has_aux=True)  # vjp_fn holds the residuals
    f = jax.jit(lambda vjp_fn, dy: vjp_fn(dy))
    return lambda: f(vjp_fn, dy)


def forward_backward_call(provider, case):
    """Returns a tuple starting with (y, dx, dgamma, dbeta)."""
    x, dy, gamma, beta, rm, rv = _arrays(provider, case)
    xp = provider.xp
    if provider.library == "nncore":
        y, dx = xp.empty_like(x), xp.empty_like(x)

        def step():
            _, mean, invstd = bn.batchnorm_forward(x, gamma, beta, rm, rv, training=True, momentum=MOMENTUM, eps=EPS,
                                                   out=y)
            return (y, *bn.batchnorm_backward(dy, x, gamma, mean, invstd, out=dx))

        return step
    if provider.library in ("numpy", "cupy"):
        def naive():
            y, mean, invstd = _naive_forward(xp, x, gamma, beta, rm, rv)
            return (y, *_naive_backward(dy, x, gamma, mean, invstd))

        return naive
    if provider.library == "torch":
        x.requires_grad_(True)
        gamma.requires_grad_(True)
        beta.requires_grad_(True)

        def autograd():
            y = xp.nn.functional.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=MOMENTUM, eps=EPS)
            return (y, *xp.autograd.grad(y, (x, gamma, beta), dy))

        return autograd
    import jax

    n = x.shape[0]

    def fwd_bwd(x, gamma, beta, rm, rv, dy):
        y, vjp_fn, stats = jax.vjp(_jax_forward, x, gamma, beta, has_aux=True)
        return (y, *vjp_fn(dy), *_jax_running(rm, rv, stats, n))

    f = jax.jit(fwd_bwd)
    return lambda: f(x, gamma, beta, rm, rv, dy)


def case_for(shape):
    """One Case per shape per session (one at a time: the tests of a shape run together)."""
    return one_case((__name__, shape), lambda: Case(*shape))


def _shape_args(shape):
    n, c = shape
    return {"shape": f"{n}x{c}", "params": {"N": n, "C": c}}


@BN_SHAPES
def test_batchnorm_forward(measure, provider, shape):
    case = case_for(shape)
    nncore = provider.library == "nncore"
    measure(forward_call(provider, case), op="batchnorm fwd f32", nbytes=2 * case.x.nbytes,
            check=lambda r: case.check_forward(r[0], nncore), **_shape_args(shape))


@BN_SHAPES
def test_batchnorm_backward(measure, provider, shape):
    case = case_for(shape)
    nncore = provider.library == "nncore"
    measure(backward_call(provider, case), op="batchnorm bwd f32", nbytes=3 * case.x.nbytes,
            check=lambda r: case.check_backward(r, nncore), **_shape_args(shape))


@BN_SHAPES
def test_batchnorm_forward_backward(measure, provider, shape):
    case = case_for(shape)
    nncore = provider.library == "nncore"

    def check(r):
        case.check_forward(r[0], nncore)
        case.check_backward(r[1:4], nncore)

    measure(forward_backward_call(provider, case), op="batchnorm fwd+bwd f32", nbytes=5 * case.x.nbytes,
            check=check, **_shape_args(shape))
