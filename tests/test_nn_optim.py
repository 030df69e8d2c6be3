"""nncore.optim: optimizers over Parameters, against the float64 oracle and torch.optim, over many steps.

Parameters of awkward shapes are either packed into one flat buffer (the one-kernel-call-per-group path)
or built separately (the per-parameter fallback path). Each run feeds a fixed sequence of fresh random
gradients, written into ``p.grad`` as a model's backward does, and compares parameters and state buffers.
"""

from __future__ import annotations

import copy
import inspect
import math
import re

import numpy as np
import pytest

from kernels import reference as R
from nncore import optim as O
from nncore.parameter import Parameter, flat_span, pack
from tests.helpers import DTYPE_IDS, DTYPES, TOLS, assert_close

SHAPES = [(7, 3), (3,), (1,), (5, 4)]
STEPS = 25

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-8,
                     maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=0.01)),
]
CONFIG_IDS = [name + "-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in CONFIGS]
NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam"]

ORACLE = {"SGD": R.sgd_step, "Adagrad": R.adagrad_step, "RMSprop": R.rmsprop_step, "Adadelta": R.adadelta_step,
          "Adam": R.adam_step, "AdamW": R.adamw_step, "NAdam": R.nadam_step}
# float32 trajectories drift by some float32 ulps of the typical magnitude (state errors feed later steps)
RTOL = {np.float32: 1e-5, np.float64: 1e-10}


# ------------------------------------------------------------------------------------------ helpers


def make_params(rng, dtype, packed=True, shapes=SHAPES):
    """Fresh random Parameters: packed into one flat buffer, or each in its own buffer (no flat span)."""
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    if packed:
        pack(params)
        assert flat_span(params) is not None
    else:
        assert flat_span(params) is None
    return params


def make_grads(rng, dtype, steps=STEPS, shapes=SHAPES):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def run(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad[...] = g
        assert opt.step() is None


def as_dtype_hypers(kw, dtype):
    """The hyper-parameters as the dtype's kernel holds them (lr, wd, ... rounded to float32 for float32)."""
    def rnd(v):
        if isinstance(v, tuple):
            return tuple(rnd(x) for x in v)
        return float(dtype(v)) if isinstance(v, float) else v

    return {k: rnd(v) for k, v in kw.items()}


def oracle_run(name, kw, p0s, grads, dtype, lrs=None):
    """The float64 oracle per parameter; ``lrs[t]`` overrides lr at step t. Returns [(param, state)]."""
    out = []
    for j, p0 in enumerate(p0s):
        p, s = np.asarray(p0, np.float64), {}
        for t, gs in enumerate(grads):
            step_kw = kw if lrs is None else {**kw, "lr": lrs[t]}
            p, s = ORACLE[name](p, gs[j], s, **as_dtype_hypers(step_kw, dtype))
        out.append((p, s))
    return out


def assert_scaled_close(actual, expected, rtol, name):
    """|actual - expected| <= rtol |expected| + max(rtol rms(expected), the dtype's atol): a buffer that
    nearly cancels keeps the absolute error of its O(1) terms."""
    expected = np.asarray(expected, dtype=np.float64)
    rms = float(np.sqrt(np.mean(expected**2)))
    atol = TOLS[np.asarray(actual).dtype.type][1]
    assert_close(actual, expected, rtol, max(atol, rtol * rms), name=name)


def assert_matches_oracle(opt, params, ref, rtol, what):
    for j, (p, (p_ref, _)) in enumerate(zip(params, ref)):
        assert_scaled_close(p.data, p_ref, rtol, f"{what}: param {j}")
    state = opt.state_dict()["state"][0]
    for name, buf in state.items():
        if name in ("step", "mu_product"):
            continue
        expected = np.concatenate([s[name].reshape(-1) for _, s in ref])
        assert_scaled_close(buf, expected, rtol, f"{what}: state {name}")
    assert state["step"] == STEPS
    if "mu_product" in state:  # a float64 host scalar from the unrounded hyper-parameters at every dtype
        beta1, psi = opt.param_groups[0]["betas"][0], opt.param_groups[0]["momentum_decay"]
        mus = [beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)) for t in range(1, STEPS + 1)]
        assert state["mu_product"] == pytest.approx(math.prod(mus), rel=1e-13, abs=0.0)


# ------------------------------------------------------------------------------------------ vs oracle


@pytest.mark.parametrize("packed", [True, False], ids=["flat", "per-param"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_matches_oracle_over_many_steps(rng, name, kw, dtype, packed):
    params = make_params(rng, dtype, packed)
    p0s = [p.data.copy() for p in params]
    grads = make_grads(rng, dtype)
    opt = getattr(O, name)(params, **kw)
    run(opt, params, grads)
    for p, gs in zip(params, grads[-1]):
        np.testing.assert_array_equal(p.grad, gs)  # the optimizer only reads gradients
        assert p.data.dtype == dtype
    ref = oracle_run(name, kw, p0s, grads, dtype)
    assert_matches_oracle(opt, params, ref, RTOL[dtype], f"{name} {kw} {'flat' if packed else 'per-param'}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_own_lr_and_lr_changed_between_steps(rng, name, dtype):
    # two groups, each a consecutive piece of one flat buffer (so each takes the one-call path); group 1's
    # lr is changed half way, as a schedule does
    params = make_params(rng, dtype)
    p0s = [p.data.copy() for p in params]
    grads = make_grads(rng, dtype)
    lr0, lr1 = (0.05, 0.01) if name != "Adadelta" else (1.0, 0.5)
    opt = getattr(O, name)([{"params": params[:2], "lr": lr0}, {"params": params[2:]}], lr=lr1)
    assert [g["lr"] for g in opt.param_groups] == [lr0, lr1]
    for t, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad[...] = g
        if t == STEPS // 2:
            opt.param_groups[1]["lr"] = lr1 / 2
        opt.step()
    lrs1 = [lr1 if t < STEPS // 2 else lr1 / 2 for t in range(STEPS)]
    ref = oracle_run(name, {"lr": lr0}, p0s[:2], [gs[:2] for gs in grads], dtype)
    ref += oracle_run(name, {}, p0s[2:], [gs[2:] for gs in grads], dtype, lrs=lrs1)
    for j, (p, (p_ref, _)) in enumerate(zip(params, ref)):
        assert_scaled_close(p.data, p_ref, RTOL[dtype], f"{name} group param {j}")
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]


def test_subset_in_other_order_takes_the_per_parameter_path(rng):
    # parameters of one buffer, but not consecutive in the given order: no flat span, same numbers
    params = make_params(rng, np.float64)
    order = [params[3], params[0]]
    assert flat_span(order) is None
    p0s = [p.data.copy() for p in order]
    grads = make_grads(rng, np.float64, shapes=[p.shape for p in order])
    opt = O.Adam(order, lr=0.01, amsgrad=True)
    run(opt, order, grads)
    ref = oracle_run("Adam", dict(lr=0.01, amsgrad=True), p0s, grads, np.float64)
    assert_matches_oracle(opt, order, ref, RTOL[np.float64], "Adam on a reordered subset")


# ------------------------------------------------------------------------------------------ vs torch


@pytest.fixture
def torch64():
    """torch with float64 as the default dtype, in which torch keeps step scalars such as NAdam's mu_product
    (float32 by default; ours is a float64 host scalar)."""
    torch = pytest.importorskip("torch")
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(saved)


@pytest.mark.parametrize("packed", [True, False], ids=["flat", "per-param"])
@pytest.mark.parametrize("name, kw", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_optim_float64(rng, name, kw, packed, torch64):
    torch = torch64
    params = make_params(rng, np.float64, packed)
    tps = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    grads = make_grads(rng, np.float64)
    opt = getattr(O, name)(params, **kw)
    topt = getattr(torch.optim, name)(tps, foreach=False, **kw)
    _step_both(torch, opt, topt, params, tps, grads)
    for j, (p, tp) in enumerate(zip(params, tps)):
        assert_scaled_close(p.data, tp.detach().numpy(), 1e-10, f"{name} {kw} vs torch: param {j}")
    state = opt.state_dict()["state"][0]
    for k, buf in state.items():
        if k in ("step", "mu_product"):
            continue
        expected = np.concatenate([topt.state[tp][k].numpy().reshape(-1) for tp in tps])
        assert_scaled_close(buf, expected, 1e-10, f"{name} {kw} vs torch: state {k}")


def _step_both(torch, opt, topt, params, tps, grads):
    """Feed the same gradients to an nncore and a torch optimizer, one step per set of gradients."""
    for gs in grads:
        for p, tp, g in zip(params, tps, gs):
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()


def test_param_groups_match_torch(rng):
    torch = pytest.importorskip("torch")
    params = make_params(rng, np.float64)
    tps = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = O.SGD([{"params": params[:1], "momentum": 0.9}, {"params": params[1:], "lr": 0.2}], lr=0.05,
                weight_decay=0.01)
    topt = torch.optim.SGD([{"params": tps[:1], "momentum": 0.9}, {"params": tps[1:], "lr": 0.2}], lr=0.05,
                           weight_decay=0.01, foreach=False)
    _step_both(torch, opt, topt, params, tps, make_grads(rng, np.float64))
    for j, (p, tp) in enumerate(zip(params, tps)):
        assert_scaled_close(p.data, tp.detach().numpy(), 1e-10, f"SGD groups vs torch: param {j}")


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(O, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for arg, param in ours.items():
        assert arg in theirs, f"{name}: torch has no argument {arg!r}"
        assert param.default == theirs[arg].default, \
            f"{name}({arg}=...): {param.default} vs torch {theirs[arg].default}"
    # our positional arguments are torch's first ones, in torch's order (the flags after them are keyword-only)
    positional = [a for a, p in ours.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == list(theirs)[:len(positional)]


def test_repr_lists_the_hyper_parameters_like_torch(rng):
    torch = pytest.importorskip("torch")
    params = make_params(rng, np.float64)
    ours = repr(O.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], amsgrad=True))
    tps = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    theirs = repr(torch.optim.Adam([{"params": tps[:1]}, {"params": tps[1:], "lr": 0.5}], amsgrad=True))
    assert ours.startswith("Adam (\nParameter Group 0\n") and ours.endswith("\n)")
    assert "Parameter Group 1\n" in ours and "    lr: 0.5\n" in ours and "    amsgrad: True\n" in ours
    assert set(ours.splitlines()) <= set(theirs.splitlines()), (ours, theirs)


# ------------------------------------------------------------------------------------------ state dict


@pytest.mark.parametrize("packed", [True, False], ids=["flat", "per-param"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bitwise(rng, name, dtype, packed):
    kw = {"SGD": dict(lr=0.05, momentum=0.9, nesterov=True), "Adam": dict(lr=0.01, amsgrad=True),
          "RMSprop": dict(lr=0.01, centered=True, momentum=0.3), "NAdam": dict(lr=0.01)}.get(name, {})
    grads = make_grads(rng, dtype)
    params = make_params(rng, dtype, packed)
    p0s = [p.data.copy() for p in params]
    k = 7
    opt = getattr(O, name)([{"params": params[:3]}, {"params": params[3:]}], **kw)
    run(opt, params, grads[:k])
    saved_values = [p.data.copy() for p in params]
    sd = copy.deepcopy(opt.state_dict())
    run(opt, params, grads[k:])  # the uninterrupted run

    assert sorted(sd["state"]) == [0, 1]
    for s in sd["state"].values():
        assert s["step"] == k
        buffers = [v for n, v in s.items() if n not in ("step", "mu_product")]
        assert buffers and all(isinstance(v, np.ndarray) and v.dtype == dtype for v in buffers)
    # a fresh model at the checkpoint, a fresh optimizer built with other hyper-parameters: load restores them
    fresh = make_params(rng, dtype, packed)
    for p, v in zip(fresh, saved_values):
        p.data[...] = v
    other = getattr(O, name)([{"params": fresh[:3]}, {"params": fresh[3:]}], **{**kw, "lr": 0.123})
    other.load_state_dict(sd)
    assert [g["lr"] for g in other.param_groups] == [g["lr"] for g in opt.param_groups]
    run(other, fresh, grads[k:])
    for j, (a, b) in enumerate(zip(fresh, params)):
        np.testing.assert_array_equal(a.data, b.data, err_msg=f"{name}: param {j} after reload")
    assert not np.array_equal(p0s[0], params[0].data)  # the run did move the parameters


def test_state_dict_is_a_copy_and_empty_before_the_first_step(rng):
    params = make_params(rng, np.float64)
    opt = O.Adam(params, lr=0.01)
    sd = opt.state_dict()
    assert sd["state"] == {}
    assert sd["param_groups"] == [dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                                       maximize=False, params=[0, 1, 2, 3])]
    run(opt, params, make_grads(rng, np.float64, steps=2))
    sd = opt.state_dict()
    before = opt.state_dict()["state"][0]["exp_avg"].copy()
    sd["state"][0]["exp_avg"][:] = 123.0
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["exp_avg"], before)
    # hyper-parameters that went through JSON (betas as a list) come back as given to the constructor
    sd["param_groups"][0]["betas"] = [0.8, 0.99]
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    # loading a state dict without state resets the optimizer to a fresh one
    fresh = O.Adam(params, lr=0.01)
    opt.load_state_dict(fresh.state_dict())
    assert opt.state_dict()["state"] == {}


def test_state_dict_moves_between_flat_and_per_parameter_layouts(rng):
    grads = make_grads(rng, np.float64)
    a = make_params(rng, np.float64, packed=True)
    b = make_params(rng, np.float64, packed=False)
    for p, q in zip(a, b):
        q.data[...] = p.data
    opt_a = O.RMSprop(a, lr=0.01, centered=True, momentum=0.5)
    run(opt_a, a, grads[:5])
    opt_b = O.RMSprop(b, lr=0.01, centered=True, momentum=0.5)
    for p, q in zip(a, b):
        q.data[...] = p.data
    opt_b.load_state_dict(opt_a.state_dict())
    run(opt_a, a, grads[5:])
    run(opt_b, b, grads[5:])
    for j, (p, q) in enumerate(zip(a, b)):
        assert_close(q.data, p.data, 1e-14, 1e-15, name=f"param {j}")


def test_load_state_dict_errors(rng):
    params = make_params(rng, np.float64)
    opt = O.Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.01)
    run(opt, params, make_grads(rng, np.float64, steps=2))
    sd = opt.state_dict()

    def bad(mutate, exc, match):
        d = copy.deepcopy(sd)
        mutate(d)
        before = copy.deepcopy(opt.state_dict())
        with pytest.raises(exc, match=match):
            opt.load_state_dict(d)
        after = opt.state_dict()  # nothing was loaded
        assert after["param_groups"] == before["param_groups"]
        np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])

    bad(lambda d: d.pop("state"), ValueError, "keys 'state' and 'param_groups'")
    bad(lambda d: d["param_groups"].pop(), ValueError, "has 1 parameter groups, this optimizer has 2")
    bad(lambda d: d["param_groups"][1]["params"].pop(), ValueError, "group 1: .* has 1 parameters, .* has 2")
    bad(lambda d: d["param_groups"][0].pop("amsgrad"), ValueError, "group 0: loaded hyper-parameters")
    bad(lambda d: d["param_groups"][0].update(lr=-1.0), ValueError, "Invalid learning rate: -1.0")
    bad(lambda d: d["state"][0].update(exp_avg=np.zeros(5)), ValueError,
        re.escape("group 0: loaded buffer 'exp_avg' has shape (5,), expected (24,)"))
    bad(lambda d: d["state"][1].update(exp_avg_sq=d["state"][1]["exp_avg_sq"].astype(np.float32)), ValueError,
        "group 1: loaded buffer 'exp_avg_sq' has dtype float32, expected float64")
    bad(lambda d: d["state"][0].pop("exp_avg_sq"), ValueError, "group 0: loaded state has entries")
    bad(lambda d: d["state"][0].update(step=0), ValueError, "step = 0 must be an integer >= 1")
    bad(lambda d: d["state"].update({5: {}}), ValueError, r"state for unknown groups \[5\]")
    # an SGD state dict into Adam: other hyper-parameter names
    sgd = O.SGD([{"params": params[:2]}, {"params": params[2:]}], momentum=0.9)
    with pytest.raises(ValueError, match=r"group 0: loaded hyper-parameters \[.*'momentum'.*\] do not match "
                                         r"Adam's"):
        opt.load_state_dict(sgd.state_dict())


# ------------------------------------------------------------------------------------------ convergence


# (hyper-parameters, lr decay per step, steps). Adaptive methods take steps of about lr whatever the
# gradient's size, so they hover within ~lr of the minimum: their lr decays (through param_groups, as a
# schedule would set it) to land them.
CONVERGE = {
    "SGD": (dict(lr=0.1, momentum=0.9), 1.0, 600), "Adagrad": (dict(lr=0.5), 1.0, 600),
    "RMSprop": (dict(lr=0.05), 0.995, 1000), "Adadelta": (dict(lr=1.0), 1.0, 4000),
    "Adam": (dict(lr=0.1), 0.995, 1000), "AdamW": (dict(lr=0.1, weight_decay=0.0), 0.995, 1000),
    "NAdam": (dict(lr=0.1), 0.995, 1000),
}


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_a_quadratic(rng, name):
    # f(x) = 1/2 sum a_i (x_i - c_i)^2, curvatures a in [0.5, 2]: minimum at c
    kw, decay, steps = CONVERGE[name]
    params = make_params(rng, np.float64)
    a = [rng.uniform(0.5, 2.0, p.shape) for p in params]
    c = [rng.standard_normal(p.shape) for p in params]
    opt = getattr(O, name)(params, **kw)

    def loss():
        return sum(float(0.5 * np.sum(ai * (p.data - ci) ** 2)) for p, ai, ci in zip(params, a, c))

    start = loss()
    for _ in range(steps):
        for p, ai, ci in zip(params, a, c):
            p.grad[...] = ai * (p.data - ci)
        opt.step()
        opt.param_groups[0]["lr"] *= decay
    assert loss() < 1e-8 * start, (name, start, loss())
    for p, ci in zip(params, c):
        assert_close(p.data, ci, 0.0, 1e-3, name=f"{name} minimiser")


# ------------------------------------------------------------------------------------------ zero_grad


@pytest.mark.parametrize("packed", [True, False], ids=["flat", "per-param"])
def test_zero_grad_zeroes_every_gradient_only(rng, packed):
    params = make_params(rng, np.float32, packed)
    values = [p.data.copy() for p in params]
    for p, g in zip(params, make_grads(rng, np.float32, steps=1)[0]):
        p.grad[...] = g
    opt = O.SGD(params, lr=0.1)
    assert opt.zero_grad() is None
    for p, v in zip(params, values):
        assert not p.grad.any()
        np.testing.assert_array_equal(p.data, v)
    opt.step()  # a zero gradient leaves plain SGD's parameters where they were
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.data, v)


# ------------------------------------------------------------------------------------------ clipping


@pytest.mark.parametrize("packed", [True, False], ids=["flat", "per-param"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("norm_type", [2.0, math.inf], ids=["l2", "inf"])
def test_clip_grad_norm_matches_numpy(rng, norm_type, dtype, packed):
    params = make_params(rng, dtype, packed)
    grads = make_grads(rng, dtype, steps=1)[0]
    flat = np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)
    total = float(np.linalg.norm(flat, ord=norm_type))
    rtol = TOLS[dtype][0]
    for max_norm in (0.5 * total, 2.0 * total):  # clipped, then not
        for p, g in zip(params, grads):
            p.grad[...] = g
        got = O.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        assert isinstance(got, float)
        assert got == pytest.approx(total, rel=rtol)
        scale = max_norm / (total + 1e-6) if total > max_norm else 1.0
        for j, (p, g) in enumerate(zip(params, grads)):
            if scale == 1.0:
                np.testing.assert_array_equal(p.grad, g)  # below the threshold: untouched
            else:
                assert_close(p.grad, g.astype(np.float64) * scale, rtol, TOLS[dtype][1], name=f"grad {j}")
        clipped = np.concatenate([p.grad.reshape(-1) for p in params]).astype(np.float64)
        assert np.linalg.norm(clipped, ord=norm_type) <= max_norm * (1 + rtol)


@pytest.mark.parametrize("norm_type", [2.0, "inf"])
def test_clip_grad_norm_matches_torch(rng, norm_type):
    torch = pytest.importorskip("torch")
    params = make_params(rng, np.float32)
    grads = make_grads(rng, np.float32, steps=1)[0]
    tps = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, tp, g in zip(params, tps, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    got = O.clip_grad_norm_(params, 1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type=float(norm_type))
    assert got == pytest.approx(float(expected), rel=1e-6)
    for j, (p, tp) in enumerate(zip(params, tps)):
        assert_close(p.grad, tp.grad.numpy(), 1e-6, 1e-7, name=f"grad {j}")


def test_clip_grad_norm_non_finite_and_overflow(rng):
    params = make_params(rng, np.float32)
    grads = make_grads(rng, np.float32, steps=1)[0]
    for p, g in zip(params, grads):
        p.grad[...] = g
    params[1].grad[0] = np.nan
    before = [p.grad.copy() for p in params]
    assert math.isnan(O.clip_grad_norm_(params, 1.0))
    for p, g in zip(params, before):  # a non-finite norm leaves the gradients alone
        np.testing.assert_array_equal(p.grad, g)
    params[1].grad[0] = -np.inf
    assert O.clip_grad_norm_(params, 1.0, norm_type="inf") == math.inf
    # |g| ~ 1e19 overflows a float32 sum of squares, not the norm: still clipped
    for p, g in zip(params, grads):
        p.grad[...] = g * np.float32(1e19)
    with np.errstate(over="ignore"):
        assert np.isinf(np.dot(params[0].grad.reshape(-1), params[0].grad.reshape(-1)))
    total = float(np.linalg.norm(np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64))) * 1e19
    assert O.clip_grad_norm_(params, 1.0) == pytest.approx(total, rel=1e-6)
    clipped = np.concatenate([p.grad.reshape(-1) for p in params]).astype(np.float64)
    assert np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-5)
    # a single Parameter is accepted as torch accepts a single tensor
    params[2].grad[...] = 3.0
    assert O.clip_grad_norm_(params[2], 1.0) == pytest.approx(3.0)
    assert params[2].grad[0] == pytest.approx(3.0 / (3.0 + 1e-6), rel=1e-6)


def test_clip_grad_norm_errors(rng):
    params = make_params(rng, np.float64)
    with pytest.raises(ValueError, match=re.escape("norm_type = 1 is not supported: use 2 or inf")):
        O.clip_grad_norm_(params, 1.0, norm_type=1)
    with pytest.raises(ValueError, match=re.escape("max_norm = -1.0 is out of range: must be >= 0")):
        O.clip_grad_norm_(params, -1.0)
    with pytest.raises(TypeError, match="max_norm must be a real number, got str"):
        O.clip_grad_norm_(params, "1")
    with pytest.raises(TypeError, match="clip_grad_norm_ expects Parameters, got ndarray"):
        O.clip_grad_norm_([np.zeros(3)], 1.0)


# ------------------------------------------------------------------------------------------ errors


BAD_HYPERS = [
    ("SGD", dict(lr=-1.0), "Invalid learning rate: -1.0"),
    ("SGD", dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    ("SGD", dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ("SGD", dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires"),
    ("Adagrad", dict(lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", dict(eps=-1e-10), "Invalid epsilon value: -1e-10"),
    ("RMSprop", dict(alpha=-0.1), "Invalid alpha value: -0.1"),
    ("RMSprop", dict(lr=float("nan")), "Invalid learning rate: nan"),
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("Adam", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    ("Adam", dict(betas=(0.9, -0.1)), re.escape("Invalid beta parameter at index 1: -0.1")),
    ("AdamW", dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
    ("NAdam", dict(momentum_decay=-1.0), "Invalid momentum_decay value: -1.0"),
]


@pytest.mark.parametrize("name, kw, match", BAD_HYPERS, ids=[f"{n}-{list(k)[-1]}" for n, k, _ in BAD_HYPERS])
def test_invalid_hyper_parameters(rng, name, kw, match):
    params = make_params(rng, np.float64)
    with pytest.raises(ValueError, match=match):
        getattr(O, name)(params, **kw)
    # the same value as a group override is checked as well
    with pytest.raises(ValueError, match=match):
        getattr(O, name)([{"params": params, **kw}])


def test_bad_hyper_parameter_types(rng):
    params = make_params(rng, np.float64)
    with pytest.raises(TypeError, match="lr must be a real number, got str"):
        O.SGD(params, lr="0.1")
    with pytest.raises(TypeError, match="amsgrad must be a bool, got int"):
        O.Adam(params, amsgrad=1)
    with pytest.raises(TypeError, match=re.escape("betas must be a pair (beta1, beta2), got 0.9")):
        O.Adam(params, betas=0.9)


def test_bad_parameter_lists(rng):
    params = make_params(rng, np.float64)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        O.SGD([])
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        O.SGD([{"params": []}])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        O.SGD([{"params": params[:2]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="a parameter group contains the same parameter twice"):
        O.SGD([params[0], params[0]])
    with pytest.raises(TypeError, match="optimizer can only optimize Parameters, but one of the params is ndarray"):
        O.SGD([params[0], np.zeros(3)])
    with pytest.raises(TypeError, match="should be an iterable of Parameters or dicts, but got Parameter"):
        O.SGD(params[0])
    with pytest.raises(TypeError, match="should be an iterable of Parameters or dicts, but got int"):
        O.SGD(3)
    with pytest.raises(TypeError, match="param_group must be a dict, but got Parameter"):
        O.SGD([{"params": params[:1]}, params[1]])
    with pytest.raises(TypeError, match="ordering of a set changes between runs"):
        O.SGD([{"params": set(params)}])
    with pytest.raises(ValueError, match="param_group must have a 'params' entry"):
        O.SGD([{"lr": 0.1}])
    mixed = [Parameter(np.ones(2, np.float32)), Parameter(np.ones(2))]
    with pytest.raises(TypeError, match="all parameters of a group must have one dtype"):
        O.SGD(mixed)


def test_step_refuses_a_closure(rng):
    params = make_params(rng, np.float64)
    opt = O.SGD(params)
    with pytest.raises(TypeError, match="do not support a closure"):
        opt.step(lambda: 0.0)
