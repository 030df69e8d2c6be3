"""Optimizer updates on 16M float32 parameters: nncore's fused single-pass kernels against torch.optim.

Bytes per step are the minimum the rule must move: every buffer it reads once, every buffer it writes once
(Adam: param r/w, grad r, exp_avg r/w, exp_avg_sq r/w = 7 x 4 bytes per element). Goal: at least half of
the copy bandwidth measured in the same run (bench/conftest.py).

torch.optim is timed three ways on the same tensors, all on the CPU with torch's default thread count:
``single`` (foreach=False: one aten op per line of the update rule, each a full pass over memory),
``foreach`` (torch's default on CPU: the same passes through the _foreach_* multi-tensor ops, which with a
single parameter tensor do the same work), and ``fused`` (one fused kernel; torch has it on CPU for SGD,
Adagrad, Adam and AdamW only, skipped for the others). Both sides start from the same state, advance the
step count every call, and are checked against the float64 oracle after timing.
"""

import numpy as np
import pytest

from bench.conftest import torch_or_skip
from kernels import optim
from kernels import reference as R

N = 1 << 24
ROUNDS = 7
ITEMSIZE = 4
SAMPLE = slice(None, None, 997)  # strided sample for the oracle check: cheap, but spread over the array

# (case, optimizer, hyper-parameters in torch.optim's names, arrays touched per element: reads + writes)
CASES = [
    ("sgd", "sgd", dict(lr=1e-2), 3),
    ("sgd-momentum", "sgd", dict(lr=1e-2, momentum=0.9), 5),
    ("adagrad", "adagrad", dict(lr=1e-2), 5),
    ("rmsprop", "rmsprop", dict(lr=1e-2), 5),
    ("rmsprop-centered-momentum", "rmsprop", dict(lr=1e-2, centered=True, momentum=0.9), 9),
    ("adadelta", "adadelta", dict(), 7),
    ("adam", "adam", dict(lr=1e-3), 7),
    ("adam-amsgrad", "adam", dict(lr=1e-3, amsgrad=True), 9),
    ("adamw", "adamw", dict(lr=1e-3, weight_decay=1e-2), 7),
    ("nadam", "nadam", dict(lr=2e-3), 7),
]
CASE_IDS = [c[0] for c in CASES]
FUSED_ON_CPU = {"sgd", "adagrad", "adam", "adamw"}
TORCH = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adadelta": "Adadelta", "adam": "Adam",
         "adamw": "AdamW", "nadam": "NAdam"}
ORACLE = {"sgd": R.sgd_step, "adagrad": R.adagrad_step, "rmsprop": R.rmsprop_step, "adadelta": R.adadelta_step,
          "adam": R.adam_step, "adamw": R.adamw_step, "nadam": R.nadam_step}
START_STEP = 10  # state as after some steps: nonzero moments, bias corrections not yet 1


def state_names(name, kw):
    if name == "sgd":
        return ["momentum_buffer"] if kw.get("momentum") else []
    if name == "adagrad":
        return ["sum"]
    if name == "rmsprop":
        return ["square_avg"] + (["grad_avg"] if kw.get("centered") else []) + (
            ["momentum_buffer"] if kw.get("momentum") else [])
    if name == "adadelta":
        return ["square_avg", "acc_delta"]
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if kw.get("amsgrad") else [])


def initial_state(rng, name, kw):
    """Fresh random, non-zero parameter, gradient and state (second moments positive, variance > 0)."""
    p = rng.standard_normal(N, dtype=np.float32)
    g = rng.standard_normal(N, dtype=np.float32)
    state = {}
    for k in state_names(name, kw):
        if k in ("momentum_buffer", "exp_avg", "grad_avg"):
            state[k] = (0.1 * rng.standard_normal(N, dtype=np.float32)).astype(np.float32)
        else:
            state[k] = rng.uniform(0.5, 1.0, N).astype(np.float32)
    if "grad_avg" in state:
        state["grad_avg"] *= 0.5
    if "max_exp_avg_sq" in state:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], state["exp_avg_sq"])
    return p, g, state


def mu_product_after(steps, beta1=0.9, momentum_decay=4e-3):
    mu = 1.0
    for t in range(1, steps + 1):
        mu *= beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    return mu


class NncoreStep:
    """One call = one optimizer step on the preallocated buffers, the step count advancing as in training."""

    def __init__(self, name, kw, p, g, state):
        self.name, self.p, self.g, self.s = name, p, g, state
        self.kw = dict(kw)
        self.t = START_STEP
        self.mu_product = mu_product_after(START_STEP)

    def __call__(self):
        self.t += 1
        name, p, g, s, kw, t = self.name, self.p, self.g, self.s, self.kw, self.t
        if name == "sgd":
            optim.sgd_update(p, g, s.get("momentum_buffer"), **kw)
        elif name == "adagrad":
            optim.adagrad_update(p, g, s["sum"], step=t, **kw)
        elif name == "rmsprop":
            optim.rmsprop_update(p, g, s["square_avg"], grad_avg=s.get("grad_avg"),
                                 momentum_buffer=s.get("momentum_buffer"), **kw)
        elif name == "adadelta":
            optim.adadelta_update(p, g, s["square_avg"], s["acc_delta"], **kw)
        elif name in ("adam", "adamw"):
            fn = optim.adam_update if name == "adam" else optim.adamw_update
            fn(p, g, s["exp_avg"], s["exp_avg_sq"], step=t, max_exp_avg_sq=s.get("max_exp_avg_sq"), **kw)
        else:
            self.mu_product = optim.nadam_update(p, g, s["exp_avg"], s["exp_avg_sq"], step=t,
                                                 mu_product=self.mu_product, **kw)


def check_one_step(name, kw, do_step, p, g, state, t_before, mu_product=None):
    """Take one more step and compare a strided sample of param and state with the float64 oracle."""
    ref_state = {k: v[SAMPLE].astype(np.float64) for k, v in state.items()}
    ref_state["step"] = t_before
    if mu_product is not None:
        ref_state["mu_product"] = mu_product
    p_ref, s_ref = ORACLE[name](p[SAMPLE], g[SAMPLE], ref_state, **kw)
    do_step()
    # one float32 step from float32 state: a few ulps; the atol covers moments that cancel to near zero
    np.testing.assert_allclose(p[SAMPLE], p_ref, rtol=1e-5, atol=1e-6)
    for k, v in state.items():
        np.testing.assert_allclose(v[SAMPLE], s_ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("case, name, kw, arrays", CASES, ids=CASE_IDS)
def test_nncore(benchmark, report, case, name, kw, arrays):
    benchmark.group = f"optim-{case}-16M-float32"
    p, g, state = initial_state(np.random.default_rng(0), name, kw)
    step = NncoreStep(name, kw, p, g, state)
    step()
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=arrays * N * ITEMSIZE)
    check_one_step(name, kw, step, p, g, state, step.t, step.mu_product if name == "nadam" else None)


@pytest.mark.parametrize("impl", ["single", "foreach", "fused"])
@pytest.mark.parametrize("case, name, kw, arrays", CASES, ids=CASE_IDS)
def test_torch(benchmark, report, case, name, kw, arrays, impl):
    torch = torch_or_skip()
    if impl == "fused" and name not in FUSED_ON_CPU:
        pytest.skip(f"torch.optim.{TORCH[name]} has no fused CPU implementation")
    benchmark.group = f"optim-{case}-16M-float32"
    p_np, g_np, state_np = initial_state(np.random.default_rng(0), name, kw)
    tp = torch.from_numpy(p_np).requires_grad_(True)
    tp.grad = torch.from_numpy(g_np)
    flags = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[impl]
    opt = getattr(torch.optim, TORCH[name])([tp], **kw, **flags)
    opt.step()  # creates torch's state; then start it from the same state as nncore's run
    st = opt.state[tp]
    with torch.no_grad():
        for k, v in state_np.items():
            st[k].copy_(torch.from_numpy(v))
        if "step" in st:
            st["step"].fill_(START_STEP)
        if "mu_product" in st:
            st["mu_product"].fill_(mu_product_after(START_STEP))
    benchmark.pedantic(opt.step, rounds=ROUNDS, warmup_rounds=1)
    report(benchmark, nbytes=arrays * N * ITEMSIZE, torch_threads=torch.get_num_threads(), torch_impl=impl)
    state_views = {k: st[k].numpy() for k in state_np}
    t_before = int(st["step"].item()) if "step" in st else 0
    mu = float(st["mu_product"].item()) if "mu_product" in st else None
    check_one_step(name, kw, opt.step, tp.detach().numpy(), g_np, state_views, t_before, mu)
