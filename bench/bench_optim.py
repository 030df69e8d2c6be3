"""Optimizer updates on flat float32 parameters: nncore's fused single-pass kernels against the same rules
elsewhere, every provider, one op per update rule.

One call is one step of one torch.optim rule on one flat parameter vector with its gradient and state, the
step count advancing every call as in training:
    nncore      kernels.optim.<rule>_update: one fused pass over param, grad and state, in place, on NumPy
                arrays (nncore-cpu) or CuPy arrays (nncore-cuda)
    numpy/cupy  the rule written once against the array module, one array expression per line of torch's
                single-tensor rule, in place where the line allows (naive: each line a pass over memory)
    torch       torch.optim.<Rule> on one parameter tensor with a .grad, timed as variants: ``default``
                (what a user gets without flags: the single-tensor loop on the CPU, one aten op per line of
                the rule; foreach on CUDA), ``fused`` (one fused kernel, for the rules torch has one: SGD,
                Adagrad, Adam, AdamW on the CPU), and in the full preset (and tiny, for correctness)
                ``foreach`` (foreach=True, the _foreach_* multi-tensor ops). The report's "vs PyTorch"
                column divides by the fastest of them.
    jax         the numpy/cupy code as a pure function (params, grad, state) -> (params, state) under
                jax.jit, with the params and state donated so XLA may update them in place

Bytes counted per step: the minimum the rule must move, every buffer read once and every written buffer
written once: param r/w, grad r, and r/w of each state buffer (Adam: 7 x 4 bytes per parameter). Speed
goals: >= 50% of the copy-bandwidth floor at 16M float32 parameters for every rule (issue 2); on a GPU,
Adam over 100M parameters at >= 70% of the device's copy bandwidth (issue 4).

Shapes: the parameter count. quick: 2M parameters for a representative subset of the rules; full: every
rule at 16M, Adam at 64K (where per-call overhead shows) and Adam at 100M (GPU providers only).

Checks: the harness calls a step a varying number of times, so the check does not count them: after
timing it snapshots the state (param, state buffers, step count; NumPy float64, a strided sample of
elements), takes ONE more step on the provider and compares it with kernels/reference.<rule>_step applied
once to the snapshot. Every buffer starts fresh random and non-zero, as after START_STEP steps.

    pytest bench/bench_optim.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from bench.conftest import gpu_only, one_case, only, shapes
from kernels import optim
from kernels import reference as ref

# rule -> (torch.optim rule it is, hyper-parameters in torch.optim's names, shared by every provider)
RULES = {
    "sgd": ("sgd", dict(lr=1e-2)),
    "sgd-momentum": ("sgd", dict(lr=1e-2, momentum=0.9)),
    "adagrad": ("adagrad", dict(lr=1e-2)),
    "rmsprop": ("rmsprop", dict(lr=1e-2)),
    "rmsprop-centered-momentum": ("rmsprop", dict(lr=1e-2, centered=True, momentum=0.9)),
    "adadelta": ("adadelta", dict()),
    "adam": ("adam", dict(lr=1e-3)),
    "adam-amsgrad": ("adam", dict(lr=1e-3, amsgrad=True)),
    "adamw": ("adamw", dict(lr=1e-3, weight_decay=1e-2)),
    "nadam": ("nadam", dict(lr=2e-3)),
}
QUICK_RULES = ("sgd-momentum", "rmsprop", "adam", "adamw", "nadam")
TORCH_CLASS = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adadelta": "Adadelta", "adam": "Adam",
               "adamw": "AdamW", "nadam": "NAdam"}

QUICK_N = 1 << 21
TARGET_N = 1 << 24  # issue 2's CPU target: 16M parameters
GPU_N = 100_000_000  # issue 4's GPU target: Adam over 100M parameters, GPU providers only
SIZE_IDS = {37: "37", 1 << 16: "64K", QUICK_N: "2M", TARGET_N: "16M", GPU_N: "100M"}
START_STEP = 10  # the state is as after this many steps: non-zero moments, bias corrections not yet 1
EPS32 = float(np.finfo(np.float32).eps)
SAMPLE = 4096  # about this many elements, strided over the whole vector, are compared with the oracle


def _shape_id(shape):
    rule, n = shape
    return f"{rule}-{SIZE_IDS[n]}"


OPTIM_SHAPES = shapes(
    tiny=[(rule, 37) for rule in RULES],
    quick=[(rule, QUICK_N) for rule in QUICK_RULES],
    full=[(rule, QUICK_N) for rule in QUICK_RULES] + [(rule, TARGET_N) for rule in RULES]
    + [("adam", 1 << 16), ("adam", GPU_N)],
    ids=_shape_id,
)


def state_buffers(family, kw):
    """The names of the rule's state buffers, as torch.optim names them in ``optimizer.state[param]``."""
    if family == "sgd":
        return ["momentum_buffer"] if kw.get("momentum") else []
    if family == "adagrad":
        return ["sum"]
    if family == "rmsprop":
        return (["square_avg"] + (["grad_avg"] if kw.get("centered") else [])
                + (["momentum_buffer"] if kw.get("momentum") else []))
    if family == "adadelta":
        return ["square_avg", "acc_delta"]
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if kw.get("amsgrad") else [])


def mu_product_after(steps, beta1=0.9, momentum_decay=4e-3):
    """NAdam's product mu_1 ... mu_steps of the momentum coefficients (torch.optim.NAdam's schedule)."""
    mu = 1.0
    for t in range(1, steps + 1):
        mu *= beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    return mu


class Case:
    """Fresh random parameter, gradient and state of one rule over ``n`` parameters (float32).

    ``state`` holds what torch.optim keeps per parameter, under its names: the state buffers (moments
    N(0, 0.1^2), second moments in [0.5, 1), so every buffer is non-zero and variances positive) and the
    host scalars ``step`` (every rule but SGD) and ``mu_product`` (NAdam).
    """

    def __init__(self, rule, n):
        self.rule, self.n = rule, n
        self.family, self.kw = RULES[rule]
        rng = np.random.default_rng()
        self.p = rng.standard_normal(n, dtype=np.float32)
        self.g = rng.standard_normal(n, dtype=np.float32)
        self.buffers = state_buffers(self.family, self.kw)
        self.state = {}
        for k in self.buffers:
            if k in ("momentum_buffer", "exp_avg", "grad_avg"):
                self.state[k] = np.float32(0.1) * rng.standard_normal(n, dtype=np.float32)
            else:
                self.state[k] = np.float32(0.5) + np.float32(0.5) * rng.random(n, dtype=np.float32)
        if "grad_avg" in self.state:
            self.state["grad_avg"] *= 0.5  # centred variance square_avg - grad_avg^2 stays positive
        if "max_exp_avg_sq" in self.state:
            np.maximum(self.state["max_exp_avg_sq"], self.state["exp_avg_sq"], out=self.state["max_exp_avg_sq"])
        if self.family != "sgd":
            self.state["step"] = START_STEP
        if self.family == "nadam":
            self.state["mu_product"] = mu_product_after(START_STEP)
        self.sample = slice(None, None, max(1, n // SAMPLE))

    @property
    def nbytes(self):
        """param r/w + grad r + r/w of every state buffer."""
        return (3 + 2 * len(self.buffers)) * self.p.nbytes


# ---- the naive rules: torch.optim's single-tensor code, one array expression per line, written once ------
# against the array module ``xp`` (numpy, cupy, jax.numpy). Each takes the param, the gradient and the state
# dict (buffers and host scalars, updated in the dict) and returns the new param. On NumPy and CuPy arrays
# the augmented assignments update the buffers in place; on jax arrays they rebind, so the same code is a
# pure function of (param, grad, state) for jax.jit.


def _sgd(xp, p, g, s, *, lr, momentum=0.0):
    if momentum:
        s["momentum_buffer"] *= momentum
        s["momentum_buffer"] += g
        g = s["momentum_buffer"]
    p -= lr * g
    return p


def _adagrad(xp, p, g, s, *, lr=1e-2, eps=1e-10):
    s["step"] += 1
    s["sum"] += g * g
    p -= lr * g / (xp.sqrt(s["sum"]) + eps)
    return p


def _rmsprop(xp, p, g, s, *, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
    s["step"] += 1
    s["square_avg"] *= alpha
    s["square_avg"] += (1 - alpha) * g * g
    if centered:
        s["grad_avg"] *= alpha
        s["grad_avg"] += (1 - alpha) * g
        avg = xp.sqrt(s["square_avg"] - s["grad_avg"] * s["grad_avg"]) + eps
    else:
        avg = xp.sqrt(s["square_avg"]) + eps
    if momentum:
        s["momentum_buffer"] *= momentum
        s["momentum_buffer"] += g / avg
        p -= lr * s["momentum_buffer"]
    else:
        p -= lr * g / avg
    return p


def _adadelta(xp, p, g, s, *, lr=1.0, rho=0.9, eps=1e-6):
    s["step"] += 1
    s["square_avg"] *= rho
    s["square_avg"] += (1 - rho) * g * g
    delta = xp.sqrt(s["acc_delta"] + eps) / xp.sqrt(s["square_avg"] + eps) * g
    s["acc_delta"] *= rho
    s["acc_delta"] += (1 - rho) * delta * delta
    p -= lr * delta
    return p


def _adam(xp, p, g, s, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False):
    beta1, beta2 = betas
    s["step"] += 1
    t = s["step"]
    s["exp_avg"] *= beta1
    s["exp_avg"] += (1 - beta1) * g
    s["exp_avg_sq"] *= beta2
    s["exp_avg_sq"] += (1 - beta2) * g * g
    v = s["exp_avg_sq"]
    if amsgrad:
        v = s["max_exp_avg_sq"] = xp.maximum(s["max_exp_avg_sq"], v)
    denom = xp.sqrt(v) / (1 - beta2**t) ** 0.5 + eps
    p -= lr / (1 - beta1**t) * s["exp_avg"] / denom
    return p


def _adamw(xp, p, g, s, *, lr=1e-3, weight_decay=1e-2, **kw):
    p *= 1 - lr * weight_decay
    return _adam(xp, p, g, s, lr=lr, **kw)


def _nadam(xp, p, g, s, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3):
    beta1, beta2 = betas
    s["step"] += 1
    t = s["step"]
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    s["mu_product"] *= mu
    s["exp_avg"] *= beta1
    s["exp_avg"] += (1 - beta1) * g
    s["exp_avg_sq"] *= beta2
    s["exp_avg_sq"] += (1 - beta2) * g * g
    denom = xp.sqrt(s["exp_avg_sq"] / (1 - beta2**t)) + eps
    p -= lr * (1 - mu) / (1 - s["mu_product"]) * g / denom
    p -= lr * mu_next / (1 - s["mu_product"] * mu_next) * s["exp_avg"] / denom
    return p


NAIVE = {"sgd": _sgd, "adagrad": _adagrad, "rmsprop": _rmsprop, "adadelta": _adadelta, "adam": _adam,
         "adamw": _adamw, "nadam": _nadam}


# ---- the rule on each provider: calling a run takes one step and returns what the harness must wait for ---


class Run:
    """The case's param, gradient and state copied onto the provider; ``current()`` gives (param, state)
    as the provider holds them now."""

    def __init__(self, provider, case):
        self.provider, self.case = provider, case
        self.p, self.g = provider.asarray(case.p), provider.asarray(case.g)
        self.s = {k: provider.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.state.items()}

    def current(self):
        return self.p, self.s

    def snapshot(self):
        """The param and state now, as float64 NumPy (the buffers at the case's sample of elements)."""
        p, s = self.current()
        out = {"param": p, **s}
        for k, v in out.items():
            if k == "step":
                out[k] = int(self.provider.to_numpy(v))
            elif k == "mu_product":
                out[k] = float(self.provider.to_numpy(v))
            else:
                out[k] = self.provider.to_numpy(v[self.case.sample]).astype(np.float64)
        return out


class NncoreRun(Run):
    """kernels.optim's fused update; the step count and NAdam's mu_product stay host scalars."""

    def __call__(self):
        p, g, s, kw = self.p, self.g, self.s, self.case.kw
        family = self.case.family
        if "step" in s:
            s["step"] += 1
        if family == "sgd":
            optim.sgd_update(p, g, s.get("momentum_buffer"), **kw)
        elif family == "adagrad":
            optim.adagrad_update(p, g, s["sum"], step=s["step"], **kw)
        elif family == "rmsprop":
            optim.rmsprop_update(p, g, s["square_avg"], grad_avg=s.get("grad_avg"),
                                 momentum_buffer=s.get("momentum_buffer"), **kw)
        elif family == "adadelta":
            optim.adadelta_update(p, g, s["square_avg"], s["acc_delta"], **kw)
        elif family in ("adam", "adamw"):
            update = optim.adam_update if family == "adam" else optim.adamw_update
            update(p, g, s["exp_avg"], s["exp_avg_sq"], step=s["step"], max_exp_avg_sq=s.get("max_exp_avg_sq"),
                   **kw)
        else:
            s["mu_product"] = optim.nadam_update(p, g, s["exp_avg"], s["exp_avg_sq"], step=s["step"],
                                                 mu_product=s["mu_product"], **kw)


class NaiveRun(Run):
    """The naive rule on NumPy or CuPy arrays, in place."""

    def __call__(self):
        self.p = NAIVE[self.case.family](self.provider.xp, self.p, self.g, self.s, **self.case.kw)


class JaxRun(Run):
    """The naive rule as a pure function under jax.jit; step and mu_product are device scalars (int32,
    float32) in the state, so a new step count does not recompile."""

    def __init__(self, provider, case):
        import jax
        import jax.numpy as jnp

        super().__init__(provider, case)
        scalar_dtypes = {"step": jnp.int32, "mu_product": jnp.float32}
        self.s = {k: jnp.asarray(v, dtype=scalar_dtypes[k]) if k in scalar_dtypes else v for k, v in self.s.items()}
        rule, kw = NAIVE[case.family], case.kw

        def step(p, g, s):
            s = dict(s)
            return rule(jnp, p, g, s, **kw), s

        self.step = jax.jit(step, donate_argnums=(0, 2))

    def __call__(self):
        self.p, self.s = self.step(self.p, self.g, self.s)
        return self.p, self.s


class TorchRun(Run):
    """torch.optim on one parameter tensor with a .grad; ``self.s`` is torch's own state of that tensor."""

    FLAGS = {"default": {}, "foreach": dict(foreach=True), "fused": dict(fused=True)}

    def __init__(self, provider, case, variant):
        import torch

        super().__init__(provider, case)
        self.p.requires_grad_(True)
        self.p.grad = self.g
        self.opt = getattr(torch.optim, TORCH_CLASS[case.family])([self.p], **case.kw, **self.FLAGS[variant])
        initial = self.s
        self.opt.step()  # creates torch's state (its dtypes, its devices); then start it from the case's
        self.s = self.opt.state[self.p]
        with torch.no_grad():
            self.p.copy_(torch.from_numpy(case.p))
            for k, v in initial.items():
                if torch.is_tensor(v):
                    self.s[k].copy_(v)
                else:
                    self.s[k].fill_(v)

    def __call__(self):
        self.opt.step()


def optim_run(provider, case, variant=None):
    if provider.library == "nncore":
        return NncoreRun(provider, case)
    if provider.library in ("numpy", "cupy"):
        return NaiveRun(provider, case)
    if provider.library == "torch":
        return TorchRun(provider, case, variant)
    return JaxRun(provider, case)


def assert_step_close(name, before, after, expected, rtol):
    """``after`` is one float32 step from ``before``, ``expected`` the float64 oracle's step from the same.

    The step itself must agree within ``rtol``, give or take two float32 roundings of the value: compared
    as values, a step far smaller than the value (Adam moves a parameter ~1 by ~1e-5) would pass any rtol
    even if it were never taken.
    """
    err = np.abs(after - expected)
    tol = rtol * np.abs(expected - before) + 2 * EPS32 * np.maximum(np.abs(before), np.abs(expected)) + 1e-12
    i = int(np.argmax(err / tol))
    assert err[i] <= tol[i], (f"{name}[{i}]: {after[i]!r}, oracle {expected[i]!r} (from {before[i]!r}, "
                              f"tolerance {tol[i]:.3g}); {int((err > tol).sum())} of {err.size} elements off")


def check_one_more_step(run, rtol):
    """Snapshot ``run``'s state, take one more step on the provider, compare with the oracle's one step."""
    case = run.case
    before = run.snapshot()
    run()
    after = run.snapshot()
    oracle = getattr(ref, f"{case.family}_step")
    state = {k: v for k, v in before.items() if k != "param"}
    p_ref, s_ref = oracle(before["param"], case.g[case.sample], state, **case.kw)
    assert_step_close("param", before["param"], after["param"], p_ref, rtol)
    for k in case.buffers:
        assert_step_close(k, before[k], after[k], s_ref[k], rtol)
    if "step" in before:
        assert after["step"] == before["step"] + 1, (before["step"], after["step"])


def case_for(shape):
    """One Case per rule and size per session: the big ones hold hundreds of MiB."""
    return one_case((__name__, shape), lambda: Case(*shape))


def _measure(measure, provider, shape, variant=None):
    if shape[1] == GPU_N:
        gpu_only(provider, "100M parameters (2.8 GB per Adam step) is issue 4's GPU target")
    case = case_for(shape)
    run = optim_run(provider, case, variant)
    extra = {} if variant is None else {"variant": variant}
    measure(run, op=f"{case.rule} update f32", shape=SIZE_IDS[case.n], nbytes=case.nbytes,
            check=lambda _: check_one_more_step(run, provider.rtol), **extra)


@OPTIM_SHAPES
def test_optim(measure, provider, shape):
    _measure(measure, provider, shape, "default" if provider.library == "torch" else None)


@only("torch-cpu", "torch-cuda")
@pytest.mark.parametrize("variant", ["fused", "foreach"])
@OPTIM_SHAPES
def test_optim_torch_variants(measure, provider, shape, variant, preset):
    """torch.optim's other implementations of the same step (test_optim times torch's default)."""
    cls = TORCH_CLASS[RULES[shape[0]][0]]
    if variant == "fused" and "fused" not in inspect.signature(getattr(provider.xp.optim, cls)).parameters:
        pytest.skip(f"torch.optim.{cls} has no fused implementation")
    if variant == "foreach" and preset == "quick":
        pytest.skip("torch's foreach variant is timed in the full preset (checked in tiny)")
    _measure(measure, provider, shape, variant)
