"""Fused optimizer updates against the float64 oracle, against torch.optim, and on convex/non-convex problems.

Every run is multi-step (a single step hides bias-correction and state bugs): fresh random parameters, a
fresh random gradient each step, every state buffer compared as well as the parameter.
"""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest

from kernels import optim
from kernels import reference as R
from kernels._util import PARALLEL_MIN_ELEMENTS
from tests.helpers import (
    DTYPE_IDS,
    DTYPES,
    TOLS,
    assert_close,
    assert_same_bits_at_one_and_two_threads,
    needs_two_threads,
)

STEPS = 20
# 33*1025 is above PARALLEL_MIN_ELEMENTS: it takes the parallel path (two full chunks and a partial one).
SIZES = [1, 7, 1023, 33 * 1025]
SIZE_IDS = ["1", "7", "1023", "33x1025"]
BIG = 3 * optim._CHUNK + 5
# the sizes must keep covering both paths if the kernel's thresholds move (checked at import, not a test)
assert SIZES[-1] >= PARALLEL_MIN_ELEMENTS > SIZES[-2], (SIZES, PARALLEL_MIN_ELEMENTS)
assert BIG >= PARALLEL_MIN_ELEMENTS and BIG % optim._CHUNK != 0, (BIG, optim._CHUNK)

# Relative tolerances for a 20-step trajectory against the float64 oracle (evaluated at the hyper-parameters
# as the kernel's dtype holds them), applied as |actual - expected| <= rtol |expected| + max(rtol
# rms(expected), DTYPE_TOLS' atol). float32: every step rounds the parameter and each state buffer, and
# errors carried in the state feed every later step, so a trajectory drifts by some float32 ulps *of the
# typical magnitude* (a momentum buffer that cancels to near zero keeps the absolute error of its O(1)
# terms: hence the rms term). float64 stays at 1e-10 relative.
TRAJ_TOLS = [(np.float32, 1e-5), (np.float64, 1e-10)]


def traj_rtol(dtype, kw):
    """A centered RMSprop with alpha < 0.5 averages over ~2 steps: the variance estimate sq - ga^2 cancels
    badly and 1/sqrt of it amplifies float32 rounding about 5x (torch's own float32 run strays as far)."""
    rtol = dict(TRAJ_TOLS)[dtype]
    if dtype == np.float32 and kw.get("centered") and kw.get("alpha", 0.99) < 0.5:
        rtol *= 5
    return rtol


# (optimizer, hyper-parameters in torch.optim's names). The options that change the arithmetic: weight
# decay, maximize, momentum/dampening/nesterov, centered, amsgrad, decoupled decay; beta1 / alpha below
# 0.5 take the other side of torch's two-sided lerp formula.
CONFIGS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02, maximize=True)),
    ("adagrad", dict(lr=0.1)),
    ("adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, eps=1e-8, maximize=True)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("rmsprop", dict(lr=0.01, centered=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.5)),
    ("rmsprop", dict(lr=0.01, alpha=0.3, centered=True, momentum=0.9, weight_decay=0.05, maximize=True)),
    ("adadelta", dict()),
    ("adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("adam", dict(lr=0.01, amsgrad=True)),
    ("adam", dict(lr=0.01, betas=(0.3, 0.9), amsgrad=True, weight_decay=0.05)),
    ("adamw", dict(lr=0.01)),
    ("adamw", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("nadam", dict(lr=0.01)),
    ("nadam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("nadam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("nadam", dict(lr=0.01, betas=(0.4, 0.99), momentum_decay=0.01)),
]
CONFIG_IDS = [name + "-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in CONFIGS]

# One configuration per optimizer with every option switched on (the most arithmetic per element).
RICH = {
    "sgd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02, maximize=True),
    "adagrad": dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, maximize=True),
    "rmsprop": dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.05, maximize=True),
    "adadelta": dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=True),
    "adam": dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True),
    "adamw": dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True),
    "nadam": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
}

ORACLE = {"sgd": R.sgd_step, "adagrad": R.adagrad_step, "rmsprop": R.rmsprop_step, "adadelta": R.adadelta_step,
          "adam": R.adam_step, "adamw": R.adamw_step, "nadam": R.nadam_step}
TORCH = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adadelta": "Adadelta", "adam": "Adam",
         "adamw": "AdamW", "nadam": "NAdam"}


def state_names(name, kw):
    """The state buffers an optimizer keeps for these options, named as torch.optim and the oracle do."""
    if name == "sgd":
        return ["momentum_buffer"] if kw.get("momentum", 0.0) != 0 else []
    if name == "adagrad":
        return ["sum"]
    if name == "rmsprop":
        return (["square_avg"] + (["grad_avg"] if kw.get("centered") else [])
                + (["momentum_buffer"] if kw.get("momentum", 0.0) > 0 else []))
    if name == "adadelta":
        return ["square_avg", "acc_delta"]
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if kw.get("amsgrad") else [])


class KernelRun:
    """Our kernels driven like a torch optimizer: state starts at zero, the step count and NAdam's
    mu_product live on the host."""

    def __init__(self, name, kw, p0):
        self.name, self.kw = name, dict(kw)
        if "betas" in self.kw:
            self.kw["beta1"], self.kw["beta2"] = self.kw.pop("betas")
        self.p = p0.copy()
        # state a caller never initialised: the first step must not read it (SGD) or it starts at zero
        self.state = {k: (np.full_like(p0, np.nan) if k == "momentum_buffer" and name == "sgd" else np.zeros_like(p0))
                      for k in state_names(name, kw)}
        self.t = 0
        self.mu_product = 1.0

    def step(self, g, p=None, state=None):
        """One update of (p, state), by default this run's own buffers."""
        p = self.p if p is None else p
        s = self.state if state is None else state
        self.t += 1
        name, kw, t = self.name, self.kw, self.t
        if name == "sgd":
            out = optim.sgd_update(p, g, s.get("momentum_buffer"), first_step=t == 1, **kw)
        elif name == "adagrad":
            out = optim.adagrad_update(p, g, s["sum"], step=t, **kw)
        elif name == "rmsprop":
            out = optim.rmsprop_update(p, g, s["square_avg"], grad_avg=s.get("grad_avg"),
                                       momentum_buffer=s.get("momentum_buffer"), **kw)
        elif name == "adadelta":
            out = optim.adadelta_update(p, g, s["square_avg"], s["acc_delta"], **kw)
        elif name in ("adam", "adamw"):
            fn = optim.adam_update if name == "adam" else optim.adamw_update
            out = fn(p, g, s["exp_avg"], s["exp_avg_sq"], step=t, max_exp_avg_sq=s.get("max_exp_avg_sq"), **kw)
        else:
            self.mu_product = optim.nadam_update(p, g, s["exp_avg"], s["exp_avg_sq"], step=t,
                                                 mu_product=self.mu_product, **kw)
            return
        assert out is None


def oracle_run(name, kw, p0, grads):
    p, state = p0.astype(np.float64), {}
    kw = as_dtype_hypers(kw, p0.dtype.type)
    with np.errstate(invalid="ignore", over="ignore"):
        for g in grads:
            p, state = ORACLE[name](p, g, state, **kw)
    return p, state


def random_problem(rng, n, dtype, steps=STEPS):
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(steps)]
    return p0, grads


def assert_scaled_close(actual, expected, rtol, name):
    """|actual - expected| <= rtol |expected| + atol, atol = max(rtol * rms(expected), the dtype's atol): a
    buffer that cancels to near zero keeps the absolute error of its O(1) terms."""
    finite = np.asarray(expected, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    rms = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    atol = TOLS[np.asarray(actual).dtype.type][1]
    assert_close(actual, expected, rtol, max(atol, rtol * rms), name=name)


def as_dtype_hypers(kw, dtype):
    """The hyper-parameters as a dtype kernel holds them. The float32 kernel runs with lr, wd, ... rounded to
    float32, so the oracle is evaluated at those values: otherwise a gradient that nearly cancels against
    wd * p (g + 0.1 p ~ 1e-7) carries the rounding of 0.1 into RMSprop's g / sqrt(v) ~ O(1) at full size."""
    def rnd(v):
        if isinstance(v, tuple):
            return tuple(rnd(x) for x in v)
        return float(dtype(v)) if isinstance(v, float) else v

    return {k: rnd(v) for k, v in kw.items()}


def assert_run_close(run, p_ref, state_ref, rtol, what):
    assert_scaled_close(run.p, p_ref, rtol, f"{what}: param")
    for k, buf in run.state.items():
        assert_scaled_close(buf, state_ref[k], rtol, f"{what}: {k}")


# ------------------------------------------------------------------------------------------ vs oracle


@pytest.mark.parametrize("n", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_matches_oracle_over_many_steps(rng, name, kw, dtype, n):
    p0, grads = random_problem(rng, n, dtype)
    run = KernelRun(name, kw, p0)
    for g in grads:
        g_before = g.copy()
        run.step(g)
        np.testing.assert_array_equal(g, g_before)  # grad is read only
    assert run.p.shape == (n,)
    assert run.p.dtype == dtype and all(b.dtype == dtype for b in run.state.values())
    p_ref, state_ref = oracle_run(name, kw, p0, grads)
    assert_run_close(run, p_ref, state_ref, traj_rtol(dtype, kw), f"{name} {kw} after {STEPS} steps")
    if name == "nadam":  # a float64 host scalar at every dtype: the product of torch's mu_t schedule
        beta1, psi = kw.get("betas", (0.9, 0.999))[0], kw.get("momentum_decay", 4e-3)
        mus = [beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)) for t in range(1, STEPS + 1)]
        assert run.mu_product == pytest.approx(np.prod(mus), rel=1e-13, abs=0.0)


def non_finite_problem(rng, dtype):
    """NaN in the first step's gradient, +-Inf in the last one's (an infinite moment turns NaN at the next
    torch-style lerp, inf + w (g - inf), where the oracle's beta m + (1 - beta) g stays infinite)."""
    p0, grads = random_problem(rng, 1023, dtype, steps=3)
    grads[0][3] = np.nan
    grads[2][5] = np.inf
    grads[2][8] = -np.inf
    return p0, grads


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(RICH))
def test_non_finite_gradients_propagate_like_the_oracle(rng, name, dtype):
    # NaN/Inf in the gradient is not an error: IEEE arithmetic carries it into that element's parameter and
    # state only (e.g. Adam: m = inf, v = inf, m / sqrt(v) = NaN), exactly as the float64 oracle does.
    p0, grads = non_finite_problem(rng, dtype)
    run = KernelRun(name, RICH[name], p0)
    for g in grads:
        run.step(g)
    p_ref, state_ref = oracle_run(name, RICH[name], p0, grads)
    assert not np.isfinite(run.p[[3, 5, 8]]).any()
    assert np.isfinite(np.delete(run.p, [3, 5, 8])).all()
    assert_run_close(run, p_ref, state_ref, traj_rtol(dtype, RICH[name]), f"{name} with NaN/Inf gradients")


# ------------------------------------------------------------------------------------------ vs torch


@pytest.mark.parametrize("n", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_optim_float32(rng, name, kw, n):
    torch = pytest.importorskip("torch")
    p0, grads = random_problem(rng, n, np.float32)
    run = KernelRun(name, kw, p0)
    tp = torch.tensor(p0, requires_grad=True)
    opt = getattr(torch.optim, TORCH[name])([tp], foreach=False, **kw)
    for g in grads:
        run.step(g)
        tp.grad = torch.tensor(g)
        opt.step()
    torch_state = opt.state[tp]
    # Same float32 operations in the same order; what remains is FMA contraction in our loops (torch's
    # addcmul rounds the product first) and NAdam's mu_product, which torch rounds to float32 every step
    # and we keep in float64. Both runs stray from the float64 oracle by about the same amount.
    rtol = traj_rtol(np.float32, kw)
    assert_scaled_close(run.p, tp.detach().numpy(), rtol, f"{name} {kw}: param vs torch")
    for k, buf in run.state.items():
        assert_scaled_close(buf, torch_state[k].numpy(), rtol, f"{name} {kw}: {k} vs torch")


@pytest.mark.parametrize("name", list(RICH))
def test_non_finite_gradients_match_torch(rng, name):
    # Inf in the middle of a run: torch's lerp turns the infinite first moment into NaN at the next step,
    # and so do we.
    torch = pytest.importorskip("torch")
    p0, grads = random_problem(rng, 1023, np.float32, steps=3)
    grads[0][3] = np.nan
    grads[1][5] = np.inf
    grads[1][8] = -np.inf
    run = KernelRun(name, RICH[name], p0)
    tp = torch.tensor(p0, requires_grad=True)
    opt = getattr(torch.optim, TORCH[name])([tp], foreach=False, **RICH[name])
    for g in grads:
        run.step(g)
        tp.grad = torch.tensor(g)
        opt.step()
    assert_scaled_close(run.p, tp.detach().numpy(), traj_rtol(np.float32, RICH[name]), f"{name}: param vs torch")
    for k, buf in run.state.items():
        assert_scaled_close(buf, opt.state[tp][k].numpy(), traj_rtol(np.float32, RICH[name]), f"{name}: {k} vs torch")


# ------------------------------------------------------------------------------------------ determinism


def _run_rich(name, p0, grads):
    run = KernelRun(name, RICH[name], p0)
    for g in grads:
        run.step(g)
    return run


@needs_two_threads
@pytest.mark.parametrize("name", list(RICH))
def test_bitwise_identical_with_one_and_two_threads(rng, name):
    p0, grads = random_problem(rng, BIG, np.float32, steps=3)

    def run():
        r = _run_rich(name, p0, grads)
        return [r.p, *(r.state[k] for k in state_names(name, RICH[name]))]

    assert_same_bits_at_one_and_two_threads(run)


@pytest.mark.parametrize("name", list(RICH))
def test_serial_and_parallel_paths_agree_bitwise(rng, name):
    # One call on BIG elements takes the parallel path; the same update done piece by piece on views of
    # _CHUNK elements (each below PARALLEL_MIN_ELEMENTS) takes the serial one. Each element's result must
    # not depend on the path.
    p0, grads = random_problem(rng, BIG, np.float64, steps=2)
    whole = _run_rich(name, p0, grads)
    pieces = KernelRun(name, RICH[name], p0)
    for g in grads:
        t, mu = pieces.t, pieces.mu_product
        for lo in range(0, BIG, optim._CHUNK):
            sl = slice(lo, lo + optim._CHUNK)
            assert pieces.p[sl].size < PARALLEL_MIN_ELEMENTS
            pieces.t, pieces.mu_product = t, mu
            pieces.step(g[sl], pieces.p[sl], {k: b[sl] for k, b in pieces.state.items()})
    np.testing.assert_array_equal(whole.p, pieces.p)
    for k in whole.state:
        np.testing.assert_array_equal(whole.state[k], pieces.state[k])


def _f32(*values):
    return tuple(np.float32(v) for v in values)


# (range kernel, array arguments, hyper-parameter tuple, flags): the float32 loops with every buffer present
VECTOR_CASES = {
    "sgd": (optim._sgd_range, 3, _f32(-0.1, 0.9, 1.0, 0.01), (True, True, False)),
    "rmsprop": (optim._rmsprop_range, 5, _f32(-0.01, 0.99, 0.01, 0.99, 1e-8, 0.9, 0.01), (True,)),
    "adadelta": (optim._adadelta_range, 4, _f32(-1.0, 0.9, 0.1, 1e-6, 0.01), (True,)),
    "adam": (optim._adam_range, 5, _f32(-1e-3, 0.1, 0.9, 0.999, 1e-3, 0.5, 1e-8, 1.0, 0.01), (True,)),
}


@pytest.mark.parametrize("name", list(VECTOR_CASES))
def test_float32_loops_vectorise(name):
    # The kernels are memory-bound only if the loop body runs in SIMD lanes: a signed index (wraparound
    # check) or a Python-style division-by-zero test would make it scalar. Recompiled without the cache so
    # the assembly can be inspected; the callees are inlined into it.
    if "avx" not in open("/proc/cpuinfo").read():
        pytest.skip("CPU without AVX")
    kernel, n_arrays, h, flags = VECTOR_CASES[name]
    fresh = numba.njit(**{**optim._JIT, "cache": False})(kernel.py_func)
    arrays = [np.ones(64, np.float32) for _ in range(n_arrays)]
    fresh(*arrays, 0, 64, h, *flags)
    asm = fresh.inspect_asm(fresh.signatures[0])
    assert re.search(r"\tv(fmadd\d+|mul|add)ps\s+[^\n]*%[yz]mm", asm), f"{name}: no packed float32 arithmetic"
    if name != "sgd":
        assert re.search(r"\tvsqrtps\s+[^\n]*%[yz]mm", asm), f"{name}: sqrt is not vectorised"
        # sqrt(a) / sqrt(b) must stay a correctly rounded division, not the approximate vrsqrt estimate
        assert "vrsqrt" not in asm and "vrcp" not in asm, f"{name}: approximate reciprocal in the loop"


# ------------------------------------------------------------------------------------------ layouts


def test_any_shape_is_updated_as_one_flat_vector(rng):
    p0 = rng.standard_normal((33, 31))
    m0, v0 = rng.standard_normal((33, 31)), rng.random((33, 31))
    g = rng.standard_normal((33, 31))
    p, m, v = p0.copy(), m0.copy(), v0.copy()
    optim.adam_update(p, g, m, v, step=3, lr=0.01)
    pf, mf, vf = p0.ravel().copy(), m0.ravel().copy(), v0.ravel().copy()
    optim.adam_update(pf, g.ravel(), mf, vf, step=3, lr=0.01)
    assert p.shape == (33, 31)
    np.testing.assert_array_equal(p.ravel(), pf)
    np.testing.assert_array_equal(m.ravel(), mf)
    np.testing.assert_array_equal(v.ravel(), vf)


def test_non_contiguous_grad_is_accepted_by_copy(rng):
    base = rng.standard_normal(2 * 1023).astype(np.float32)
    g = base[::2]
    assert not g.flags.c_contiguous
    p0 = rng.standard_normal(1023).astype(np.float32)
    p1, p2 = p0.copy(), p0.copy()
    s1, s2 = np.zeros_like(p0), np.zeros_like(p0)
    optim.adagrad_update(p1, g, s1, step=1, lr=0.1)
    optim.adagrad_update(p2, np.ascontiguousarray(g), s2, step=1, lr=0.1)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1, s2)


def test_empty_buffers_are_a_no_op():
    e = np.empty(0)
    optim.adam_update(e, np.empty(0), np.empty(0), np.empty(0), step=1)
    assert optim.nadam_update(e, np.empty(0), np.empty(0), np.empty(0), step=1, mu_product=1.0) > 0


def test_sgd_first_step_ignores_the_old_buffer(rng):
    # torch's first momentum step sets buf = grad (no dampening), whatever the buffer held
    p = rng.standard_normal(7)
    g = rng.standard_normal(7)
    buf = np.full(7, np.nan)
    expected = p - 0.1 * g
    optim.sgd_update(p, g, buf, lr=0.1, momentum=0.9, dampening=0.5, first_step=True)
    np.testing.assert_array_equal(buf, g)
    assert_close(p, expected, 1e-15, 0.0)


# ------------------------------------------------------------------------------------------ convergence


def _drive(name, kw, grad_fn, x0, steps):
    """Run an optimizer for `steps` steps on an analytic gradient; return the final x."""
    run = KernelRun(name, kw, x0)
    for _ in range(steps):
        run.step(grad_fn(run.p))
    return run.p


# (optimizer, hyper-parameters, steps, tolerance on ||x - x*||) on f(x) = 0.5 x^T A x - b^T x, eigenvalues
# of A in [1, 10], d = 10. SGD, Adagrad, Adadelta and Adam converge linearly here and must get within
# 1e-4. Methods whose step is normalised by sqrt(v) and never enter the eps regime -- RMSprop (no bias
# correction), NAdam (its momentum schedule), AdamW (the decay keeps kicking x off the fixed point) -- end
# in a cycle of radius ~lr*sqrt(d) around x* (measured: up to 0.4 lr sqrt(d) over 150 random problems), so
# their tolerance is 2 lr sqrt(d), still some 40x below the starting distance. With L2 (coupled) weight
# decay the minimiser is that of f + wd/2 |x|^2: (A + wd I)^-1 b.
D = 10
QUADRATIC = [
    ("sgd", dict(lr=0.1), 300, 1e-4),
    ("sgd", dict(lr=0.05, momentum=0.9), 300, 1e-4),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.5), 300, 1e-4),
    ("adagrad", dict(lr=0.5), 1000, 1e-4),
    ("rmsprop", dict(lr=1e-3, momentum=0.9), 3000, 2e-3 * D**0.5),
    ("rmsprop", dict(lr=1e-3, centered=True, momentum=0.9), 3000, 2e-3 * D**0.5),
    ("adadelta", dict(lr=0.1, eps=1e-6), 5000, 1e-4),
    ("adam", dict(lr=0.05), 1000, 1e-4),
    ("adam", dict(lr=0.05, amsgrad=True, weight_decay=0.5), 1000, 1e-4),
    ("adamw", dict(lr=0.01, weight_decay=1e-2), 3000, 2e-2 * D**0.5),
    ("nadam", dict(lr=0.01), 2000, 2e-2 * D**0.5),
]


@pytest.mark.parametrize("name, kw, steps, tol", QUADRATIC, ids=[f"{c[0]}-{c[1]}" for c in QUADRATIC])
def test_converges_on_a_convex_quadratic(rng, name, kw, steps, tol):
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    a = q @ np.diag(np.linspace(1.0, 10.0, D)) @ q.T
    b = rng.standard_normal(D)
    x0 = rng.standard_normal(D)
    l2 = kw.get("weight_decay", 0.0) if name != "adamw" else 0.0
    x_star = np.linalg.solve(a + l2 * np.eye(D), b)
    x = _drive(name, kw, lambda x: a @ x - b, x0, steps)
    err = np.linalg.norm(x - x_star)
    start = np.linalg.norm(x0 - x_star)
    assert err <= tol, f"{name} {kw}: |x - x*| = {err:.3e} after {steps} steps (started {start:.3f} away)"


def _rosenbrock_grad(x):
    # f(x, y) = (1 - x)^2 + 100 (y - x^2)^2
    return np.array([-2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] ** 2), 200.0 * (x[1] - x[0] ** 2)])


# (optimizer, hyper-parameters, steps). The budget is about 1.3x the steps each first came within 1e-2.
# Tolerance 1e-2 on |x - (1, 1)|: from (-1.5, 2), 2.5 away, every method must travel the whole curved
# valley; near (1, 1) the valley floor is flat (Hessian eigenvalues ~1000 and ~0.4), and the adaptive
# methods with a constant lr hover around the minimum with an amplitude of a few lr (lr <= 1e-2 here),
# so a tighter bound would test the step size rather than the update rule.
ROSENBROCK = [
    ("sgd", dict(lr=1e-3, momentum=0.9), 3000),
    ("sgd", dict(lr=1e-3, momentum=0.9, nesterov=True), 3000),
    ("adagrad", dict(lr=1.0), 12000),
    ("rmsprop", dict(lr=1e-3), 10000),
    ("rmsprop", dict(lr=1e-3, centered=True, momentum=0.5), 10000),
    ("adadelta", dict(lr=0.05, eps=1e-7), 20000),
    ("adam", dict(lr=1e-2), 5000),
    ("adamw", dict(lr=1e-2, weight_decay=1e-3), 8000),
    ("nadam", dict(lr=3e-3), 8000),
]


@pytest.mark.parametrize("name, kw, steps", ROSENBROCK, ids=[f"{c[0]}-{c[1]}" for c in ROSENBROCK])
def test_minimises_rosenbrock(name, kw, steps):
    x = _drive(name, kw, _rosenbrock_grad, np.array([-1.5, 2.0]), steps)
    err = np.linalg.norm(x - 1.0)
    assert err <= 1e-2, f"{name} {kw}: |x - (1, 1)| = {err:.3e} after {steps} steps, x = {x}"


# ------------------------------------------------------------------------------------------ bad input


def _buffers(n=5, dtype=np.float64, k=4):
    return [np.linspace(0.1, 1.0, n).astype(dtype) for _ in range(k)]


def _adam(**over):
    p, g, m, v = _buffers()
    args = dict(param=p, grad=g, exp_avg=m, exp_avg_sq=v)
    kw = dict(step=1)
    for key, val in over.items():
        (args if key in args else kw)[key] = val
    return lambda: optim.adam_update(args["param"], args["grad"], args["exp_avg"], args["exp_avg_sq"], **kw)


_p, _g, _m, _v = _buffers()
_ro = np.ones(5)
_ro.flags.writeable = False
BAD = [
    # arrays
    ("param is a list", _adam(param=[1.0] * 5), TypeError, "param must be a numpy.ndarray"),
    ("integer param", _adam(param=np.arange(5)), TypeError, "param has dtype int64; allowed dtypes: float32, float64"),
    ("float16 grad", _adam(grad=np.ones(5, np.float16)), TypeError, "grad has dtype float16"),
    ("mixed dtypes", _adam(grad=np.ones(5, np.float32)), TypeError,
     "grad has dtype float32 but param has dtype float64"),
    ("grad shape", _adam(grad=np.ones(6)), ValueError, r"grad has shape \(6,\) but param has shape \(5,\)"),
    ("state shape", _adam(exp_avg=np.ones((5, 1))), ValueError, r"exp_avg has shape \(5, 1\), expected \(5,\)"),
    ("non-contiguous param", _adam(param=np.ones(10)[::2]), ValueError, "param must be C-contiguous"),
    ("non-contiguous state", _adam(exp_avg_sq=np.ones(10)[::2]), ValueError, "exp_avg_sq must be C-contiguous"),
    ("read-only state", _adam(exp_avg=_ro), ValueError, "exp_avg is read-only"),
    ("grad is param", _adam(param=_p, grad=_p), ValueError, "grad overlaps param"),
    ("grad is a view of state", _adam(exp_avg=_m, grad=_m[::-1]), ValueError, "exp_avg overlaps grad"),
    ("two states alias", _adam(exp_avg=_v, exp_avg_sq=_v), ValueError, "exp_avg_sq overlaps exp_avg"),
    ("missing amsgrad state", _adam(amsgrad=True), ValueError, "max_exp_avg_sq is required when amsgrad=True"),
    ("unused amsgrad state", _adam(max_exp_avg_sq=np.ones(5)), ValueError, "max_exp_avg_sq was given"),
    ("device array", _adam(param=type("Dev", (), {"__cuda_array_interface__": {}})()), TypeError, "device array"),
    # scalars
    ("step 0", _adam(step=0), ValueError, "step = 0 is out of range: must be >= 1"),
    ("float step", _adam(step=1.0), TypeError, "step must be an integer"),
    ("negative lr", _adam(lr=-1e-3), ValueError, "Invalid learning rate: lr = -0.001"),
    ("NaN lr", _adam(lr=float("nan")), ValueError, "lr must not be NaN"),
    ("beta1 = 1", _adam(beta1=1.0), ValueError, "beta1 = 1.0 is out of range: must be < 1.0"),
    ("negative beta2", _adam(beta2=-0.1), ValueError, "beta2 = -0.1"),
    ("negative eps", _adam(eps=-1e-8), ValueError, "Invalid epsilon value: eps = -1e-08"),
    ("negative weight decay", _adam(weight_decay=-0.1), ValueError, "weight_decay = -0.1"),
    ("string lr", _adam(lr="0.1"), TypeError, "lr must be a real number"),
    ("non-bool flag", _adam(maximize=1), TypeError, "maximize must be a bool"),
    # per-optimizer rules
    ("sgd momentum without buffer", lambda: optim.sgd_update(_p, _g, lr=0.1, momentum=0.9), ValueError,
     "momentum_buffer is required when momentum != 0"),
    ("sgd buffer without momentum", lambda: optim.sgd_update(_p, _g, _m, lr=0.1), ValueError,
     "momentum_buffer was given"),
    ("sgd nesterov without momentum", lambda: optim.sgd_update(_p, _g, lr=0.1, nesterov=True), ValueError,
     "Nesterov momentum requires a momentum and zero dampening"),
    ("sgd nesterov with dampening", lambda: optim.sgd_update(_p, _g, _m, lr=0.1, momentum=0.9, dampening=0.1,
                                                             nesterov=True), ValueError, "dampening = 0.1"),
    ("sgd negative momentum", lambda: optim.sgd_update(_p, _g, _m, lr=0.1, momentum=-0.9), ValueError,
     "Invalid momentum value: momentum = -0.9"),
    ("sgd lr missing", lambda: optim.sgd_update(_p, _g), TypeError, "lr"),
    ("adagrad negative lr_decay", lambda: optim.adagrad_update(_p, _g, _m, step=1, lr_decay=-1.0), ValueError,
     "Invalid lr_decay value: lr_decay = -1.0"),
    ("adagrad state missing", lambda: optim.adagrad_update(_p, _g, None, step=1), ValueError,
     "state_sum is required"),
    ("rmsprop centered without grad_avg", lambda: optim.rmsprop_update(_p, _g, _m, centered=True), ValueError,
     "grad_avg is required when centered=True"),
    ("rmsprop momentum without buffer", lambda: optim.rmsprop_update(_p, _g, _m, momentum=0.5), ValueError,
     "momentum_buffer is required when momentum > 0"),
    ("rmsprop negative alpha", lambda: optim.rmsprop_update(_p, _g, _m, alpha=-0.5), ValueError,
     "Invalid alpha value: alpha = -0.5"),
    ("adadelta rho > 1", lambda: optim.adadelta_update(_p, _g, _m, _v, rho=1.5), ValueError,
     "Invalid rho value: rho = 1.5 is out of range: must be <= 1.0"),
    ("adadelta states alias", lambda: optim.adadelta_update(_p, _g, _m, _m), ValueError,
     "acc_delta overlaps square_avg"),
    ("nadam mu_product > 1", lambda: optim.nadam_update(_p, _g, _m, _v, step=1, mu_product=1.5), ValueError,
     "mu_product = 1.5 is out of range"),
    ("nadam negative momentum_decay", lambda: optim.nadam_update(_p, _g, _m, _v, step=1, mu_product=1.0,
                                                                 momentum_decay=-1.0), ValueError,
     "Invalid momentum_decay value: momentum_decay = -1.0"),
    ("adamw negative weight decay", lambda: optim.adamw_update(_p, _g, _m, _v, step=1, weight_decay=-0.1), ValueError,
     "Invalid weight_decay value"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_naming_the_argument(case, call, exc, match):
    before = [a.copy() for a in (_p, _g, _m, _v)]
    with pytest.raises(exc, match=match):
        call()
    for a, b in zip((_p, _g, _m, _v), before):
        np.testing.assert_array_equal(a, b)  # validation happens before any kernel writes
