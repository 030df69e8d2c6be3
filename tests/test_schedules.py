"""nncore.schedules against torch.optim.lr_scheduler over many ticks, composed warmups, state dicts, errors."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from nncore import optim as O
from nncore import schedules as S
from nncore.parameter import Parameter, pack

TICKS = 60
BASE_LRS = (0.1, 0.03)


def make_optimizer(rng, lrs=BASE_LRS, cls=O.SGD):
    """An nncore optimizer with one parameter group per lr (fresh random parameters, one flat buffer)."""
    params = [Parameter(rng.standard_normal(s)) for s in [(3, 2), (4,)]]
    pack(params)
    return cls([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)])


def torch_optimizer(torch, lrs=BASE_LRS):
    return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs])


def lrs_of(opt):
    return [g["lr"] for g in opt.param_groups]


def assert_lrs(ours, expected, what):
    # closed forms vs torch's recursions: equal to rounding; atol for values that cancel to ~0 (cosine at T_max)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15 * max(BASE_LRS), err_msg=what)


def run_against_torch(torch, ours, opt, theirs, topt, ticks=TICKS, metrics=None):
    """Step both schedules ``ticks`` times, comparing the lrs at tick 0 and after every step."""
    assert_lrs(ours.get_last_lr(), theirs.get_last_lr(), "tick 0")
    assert_lrs(lrs_of(opt), lrs_of(topt), "tick 0: optimizer lr")
    for t in range(1, ticks + 1):
        topt.step()  # torch warns when a scheduler steps before its optimizer
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[t - 1])
            theirs.step(metrics[t - 1])
        assert_lrs(ours.get_last_lr(), theirs.get_last_lr(), f"tick {t}")
        assert_lrs(lrs_of(opt), ours.get_last_lr(), f"tick {t}: optimizer lr")
        assert ours.last_epoch == t


# ------------------------------------------------------------------------------------------ vs torch


CLOSED_FORM = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=20)),  # past T_max the cosine climbs back, as torch's does
    ("CosineAnnealingLR", dict(T_max=13, eta_min=0.002)),
    ("CosineAnnealingLR", dict(T_max=1)),
]


@pytest.mark.parametrize("interval", S.INTERVALS)
@pytest.mark.parametrize("name, kw", CLOSED_FORM, ids=[f"{n}-{kw}" for n, kw in CLOSED_FORM])
def test_closed_form_schedules_match_torch(rng, name, kw, interval):
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(rng), torch_optimizer(torch)
    ours = getattr(S, name)(opt, **kw, interval=interval)
    assert ours.interval == interval and not ours.needs_metric
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    run_against_torch(torch, ours, opt, theirs, topt)


@pytest.mark.parametrize("warmup, start_factor", [(5, 1.0 / 3), (1, 0.5), (10, 0.01), (4, 1.0)])
def test_linear_warmup_alone_matches_torch_linear_lr(rng, warmup, start_factor):
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(rng), torch_optimizer(torch)
    ours = S.LinearWarmup(opt, warmup, start_factor)
    theirs = torch.optim.lr_scheduler.LinearLR(topt, start_factor, total_iters=warmup)
    assert_lrs(lrs_of(opt), [lr * start_factor for lr in BASE_LRS], "tick 0 starts at start_factor")
    run_against_torch(torch, ours, opt, theirs, topt)
    assert_lrs(ours.get_last_lr(), BASE_LRS, "after warmup the base lr stays")


AFTER = [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=30, eta_min=0.001)),
]


@pytest.mark.parametrize("interval", S.INTERVALS)
@pytest.mark.parametrize("name, kw", AFTER, ids=[n for n, _ in AFTER])
def test_warmup_then_schedule_matches_torch_sequential_lr(rng, name, kw, interval):
    torch = pytest.importorskip("torch")
    warmup, start_factor = 6, 0.25
    opt, topt = make_optimizer(rng), torch_optimizer(torch)
    after = getattr(S, name)(opt, **kw, interval=interval)
    ours = S.LinearWarmup(opt, warmup, start_factor, after=after)
    assert ours.interval == interval
    t_lin = torch.optim.lr_scheduler.LinearLR(topt, start_factor, total_iters=warmup)
    t_after = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    theirs = torch.optim.lr_scheduler.SequentialLR(topt, [t_lin, t_after], milestones=[warmup])
    run_against_torch(torch, ours, opt, theirs, topt)
    assert after.last_epoch == TICKS - warmup  # after counts its own ticks from the end of warmup


def plateau_metrics(rng, n=TICKS, mode="min"):
    """Improving stretches alternating with flat noisy stretches (plateaus), of random lengths."""
    out, level, improving = [], 1.0, True
    while len(out) < n:
        length = int(rng.integers(3, 12))
        if improving:
            out += list(level * np.exp(-0.1 * np.arange(1, length + 1)))
            level = out[-1]
        else:
            out += list(level * (1.0 + rng.uniform(-1e-5, 2e-3, length)))
        improving = not improving
    out = np.array(out[:n])
    return list(out if mode == "min" else -out)


PLATEAU = [
    dict(),
    dict(patience=2),
    dict(mode="max", factor=0.5, patience=3, cooldown=2),
    dict(patience=1, threshold=1e-2, threshold_mode="abs", min_lr=[0.01, 0.005]),
    dict(mode="max", patience=0, threshold_mode="abs", threshold=0.0, factor=0.3, min_lr=0.004, eps=1e-3),
]


@pytest.mark.parametrize("kw", PLATEAU, ids=[str(kw) for kw in PLATEAU])
def test_reduce_lr_on_plateau_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    metrics = plateau_metrics(rng, mode=kw.get("mode", "min"))
    opt, topt = make_optimizer(rng), torch_optimizer(torch)
    ours = S.ReduceLROnPlateau(opt, **kw)
    assert ours.interval == "epoch" and ours.needs_metric
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    run_against_torch(torch, ours, opt, theirs, topt, metrics=metrics)
    assert ours.best == theirs.best and ours.num_bad_epochs == theirs.num_bad_epochs


def test_reduce_lr_on_plateau_by_hand(rng):
    # patience 2: the third epoch without improvement reduces; cooldown 1 skips counting one epoch after
    opt = make_optimizer(rng, lrs=(1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, threshold=0.1, min_lr=0.2)
    metrics = [1.0, 0.95, 0.95, 0.95, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    # 0.95 is not 10% better than 1.0: bad epochs 1, 2, 3 -> lr 0.5 at epoch 4; 0.5 improves; then 0.6 x 9:
    # bad 1, 2, 3 -> 0.25 (epoch 8); cooldown eats epoch 9; bad 1, 2, 3 -> max(0.125, 0.2) = 0.2 (epoch 12)
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2]
    got = []
    for m in metrics:
        sched.step(m)
        got.append(sched.get_last_lr()[0])
    assert got == expected


@pytest.mark.parametrize("warmup", [1, 4])
def test_warmup_then_plateau(rng, warmup):
    # torch's SequentialLR refuses ReduceLROnPlateau; expected: LinearLR's warmup values, then at tick
    # `warmup` the base lr, then a fresh torch ReduceLROnPlateau fed the metrics of ticks warmup+1, ...
    torch = pytest.importorskip("torch")
    kw = dict(factor=0.5, patience=2)
    start_factor = 0.2
    metrics = plateau_metrics(rng)
    opt = make_optimizer(rng)
    ours = S.LinearWarmup(opt, warmup, start_factor, after=S.ReduceLROnPlateau(opt, **kw))
    assert ours.needs_metric and ours.interval == "epoch"
    topt = torch_optimizer(torch)
    t_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    for t in range(1, TICKS + 1):
        ours.step(metrics[t - 1])
        if t < warmup:
            expected = [lr * (start_factor + (1 - start_factor) * t / warmup) for lr in BASE_LRS]
        elif t == warmup:
            expected = list(BASE_LRS)
        else:
            t_plateau.step(metrics[t - 1])
            expected = t_plateau.get_last_lr()
        assert_lrs(ours.get_last_lr(), expected, f"tick {t}")
        assert_lrs(lrs_of(opt), expected, f"tick {t}: optimizer lr")
    assert ours.get_last_lr()[0] < BASE_LRS[0]  # the plateau schedule did reduce


def test_plateau_after_warmup_starts_fresh(rng):
    # a plateau schedule stepped before it was handed to the warmup: its record (best = 0.0) is dropped when
    # warmup ends, so the worse metrics after warmup start a new record instead of counting as bad epochs
    opt = make_optimizer(rng)
    plateau = S.ReduceLROnPlateau(opt, patience=0)
    plateau.step(0.0)
    warm = S.LinearWarmup(opt, 2, after=plateau)
    for m in [5.0, 5.0, 1.0, 0.9, 0.8]:
        warm.step(m)
    assert warm.get_last_lr() == list(BASE_LRS)
    assert plateau.best == 0.8 and plateau.last_epoch == 3


def test_schedule_drives_the_optimizer_like_torch(rng):
    # SGD + StepLR per step on real parameters: the optimizer reads the scheduled lr at every step
    torch = pytest.importorskip("torch")
    opt = make_optimizer(rng)
    params = [p for g in opt.param_groups for p in g["params"]]
    tps = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    topt = torch.optim.SGD([{"params": [tp], "lr": lr} for tp, lr in zip(tps, BASE_LRS)])
    sched = S.StepLR(opt, 3, gamma=0.5, interval="step")
    tsched = torch.optim.lr_scheduler.StepLR(topt, 3, gamma=0.5)
    for _ in range(12):
        for p, tp in zip(params, tps):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    for p, tp in zip(params, tps):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------ factor functions


def test_factor_functions_by_hand():
    assert [S.step_decay(t, step_size=3, gamma=0.5) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert S.exponential_decay(3, gamma=0.5) == 0.125
    assert S.cosine_decay(0, t_max=10) == 1.0
    assert S.cosine_decay(5, t_max=10) == pytest.approx(0.5, abs=1e-15)
    assert S.cosine_decay(10, t_max=10, eta_min_ratio=0.1) == pytest.approx(0.1, abs=1e-15)
    assert S.cosine_decay(20, t_max=10, eta_min_ratio=0.1) == pytest.approx(1.0, abs=1e-15)
    warm = [S.linear_warmup(t, warmup=4, start_factor=0.2) for t in (0, 2, 4, 9)]
    assert warm == pytest.approx([0.2, 0.6, 1.0, 1.0], rel=1e-15)


# ------------------------------------------------------------------------------------------ state dict


def build(opt, kind):
    if kind == "step":
        return S.StepLR(opt, 4, gamma=0.5)
    if kind == "cosine":
        return S.CosineAnnealingLR(opt, 15, eta_min=0.001, interval="step")
    if kind == "plateau":
        return S.ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1)
    if kind == "warmup":
        return S.LinearWarmup(opt, 5, 0.1)
    if kind == "warmup+exp":
        return S.LinearWarmup(opt, 5, 0.1, after=S.ExponentialLR(opt, 0.9))
    return S.LinearWarmup(opt, 5, 0.1, after=S.ReduceLROnPlateau(opt, patience=1, factor=0.5))


KINDS = ["step", "cosine", "plateau", "warmup", "warmup+exp", "warmup+plateau"]


@pytest.mark.parametrize("split", [3, 5, 17])
@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_mid_way(rng, kind, split):
    metrics = plateau_metrics(rng, n=40)
    opt = make_optimizer(rng)
    sched = build(opt, kind)
    uninterrupted = []
    for t, m in enumerate(metrics):
        if t == split:
            sd = json.loads(json.dumps(sched.state_dict()))  # plain Python values
        sched.step(m)
        uninterrupted.append(sched.get_last_lr())
    # a fresh optimizer and schedule (at tick 0), then the checkpoint
    fresh_opt = make_optimizer(rng)
    fresh = build(fresh_opt, kind)
    fresh.load_state_dict(sd)
    assert fresh.last_epoch == split
    assert lrs_of(fresh_opt) == fresh.get_last_lr()  # the checkpoint's lrs are in the optimizer
    for t in range(split, len(metrics)):
        fresh.step(metrics[t])
        assert fresh.get_last_lr() == uninterrupted[t], (kind, t)
        assert lrs_of(fresh_opt) == uninterrupted[t]
    if kind in ("plateau", "warmup+plateau"):
        assert uninterrupted[-1][0] < BASE_LRS[0]


def test_load_state_dict_errors(rng):
    opt = make_optimizer(rng)
    sched = S.StepLR(opt, 3)
    sd = sched.state_dict()
    with pytest.raises(ValueError, match="state_dict is for a ExponentialLR, not a StepLR"):
        sched.load_state_dict(S.ExponentialLR(make_optimizer(rng), 0.9).state_dict())
    with pytest.raises(ValueError, match="state_dict must have the keys"):
        sched.load_state_dict({k: v for k, v in sd.items() if k != "last_lr"})
    with pytest.raises(ValueError, match=re.escape("state_dict['base_lrs'] has 1 entries, the optimizer has 2")):
        sched.load_state_dict({**sd, "base_lrs": [0.1]})
    with pytest.raises(ValueError, match=re.escape("last_epoch = -1 is out of range: must be >= 0")):
        sched.load_state_dict({**sd, "last_epoch": -1})
    warm = S.LinearWarmup(opt, 3)
    with pytest.raises(ValueError, match="disagree on whether there is an 'after' schedule"):
        warm.load_state_dict(S.LinearWarmup(opt, 3, after=S.StepLR(opt, 2)).state_dict())
    assert sched.last_epoch == 0 and sched.get_last_lr() == list(BASE_LRS)


# ------------------------------------------------------------------------------------------ errors


def test_interval_validation(rng):
    opt = make_optimizer(rng)
    with pytest.raises(ValueError, match=re.escape("interval = 'batch' is not one of ('epoch', 'step')")):
        S.StepLR(opt, 3, interval="batch")
    with pytest.raises(ValueError, match=re.escape("interval = 'step' differs from the interval of after ('epoch')")):
        S.LinearWarmup(opt, 3, after=S.ReduceLROnPlateau(opt), interval="step")
    assert S.LinearWarmup(opt, 3).interval == "epoch"
    assert S.LinearWarmup(opt, 3, interval="step").interval == "step"
    assert S.LinearWarmup(opt, 3, after=S.ExponentialLR(opt, 0.9, interval="step")).interval == "step"
    with pytest.raises(TypeError, match="unexpected keyword argument 'interval'"):
        S.ReduceLROnPlateau(opt, interval="step")


BAD_ARGS = [
    ("StepLR", (0,), {}, ValueError, "step_size = 0 is out of range: must be >= 1"),
    ("StepLR", (1.5,), {}, TypeError, "step_size must be an integer, got float"),
    ("StepLR", (3,), dict(gamma=0.0), ValueError, "gamma = 0.0 is out of range: must be > 0.0"),
    ("ExponentialLR", (-0.5,), {}, ValueError, "gamma = -0.5 is out of range: must be > 0.0"),
    ("CosineAnnealingLR", (0,), {}, ValueError, "T_max = 0 is out of range: must be >= 1"),
    ("CosineAnnealingLR", (10,), dict(eta_min=-1.0), ValueError, "eta_min = -1.0 is out of range: must be >= 0.0"),
    ("LinearWarmup", (0,), {}, ValueError, "warmup = 0 is out of range: must be >= 1"),
    ("LinearWarmup", (3, 0.0), {}, ValueError, "start_factor = 0.0 is out of range: must be > 0.0"),
    ("LinearWarmup", (3, 1.5), {}, ValueError, "start_factor = 1.5 is out of range: must be <= 1.0"),
    ("LinearWarmup", (3,), dict(after=0.5), TypeError, "after must be a Schedule or None, got float"),
    ("ReduceLROnPlateau", (), dict(factor=1.0), ValueError, "factor = 1.0 is out of range: must be < 1.0"),
    ("ReduceLROnPlateau", (), dict(mode="mean"), ValueError, "mode = 'mean' is unknown"),
    ("ReduceLROnPlateau", (), dict(threshold_mode="x"), ValueError, "threshold_mode = 'x' is unknown"),
    ("ReduceLROnPlateau", (), dict(patience=-1), ValueError, "patience = -1 is out of range: must be >= 0"),
    ("ReduceLROnPlateau", (), dict(cooldown=0.5), TypeError, "cooldown must be an integer, got float"),
    ("ReduceLROnPlateau", (), dict(min_lr=[0.1]), ValueError, re.escape("expected 2 min_lrs (one per parameter "
                                                                        "group), got 1")),
    ("ReduceLROnPlateau", (), dict(min_lr=-0.1), ValueError, "min_lr = -0.1 is out of range: must be >= 0.0"),
]


@pytest.mark.parametrize("name, args, kw, exc, match", BAD_ARGS,
                         ids=[f"{n}-{i}" for i, (n, *_) in enumerate(BAD_ARGS)])
def test_bad_arguments(rng, name, args, kw, exc, match):
    opt = make_optimizer(rng)
    with pytest.raises(exc, match=match):
        getattr(S, name)(opt, *args, **kw)
    assert lrs_of(opt) == list(BASE_LRS)  # a refused schedule leaves the optimizer alone


def test_other_errors(rng):
    opt = make_optimizer(rng)
    for name, args in [("StepLR", (3,)), ("ReduceLROnPlateau", ()), ("LinearWarmup", (3,))]:
        with pytest.raises(TypeError, match="optimizer must be an nncore.optim.Optimizer, got list"):
            getattr(S, name)([], *args)
    with pytest.raises(ValueError, match="after must be a schedule of the same optimizer"):
        S.LinearWarmup(opt, 3, after=S.StepLR(make_optimizer(rng), 2))
    plateau = S.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match=re.escape("ReduceLROnPlateau.step() requires the metric")):
        plateau.step()
    warm = S.LinearWarmup(opt, 3, after=plateau)
    with pytest.raises(TypeError, match=re.escape("LinearWarmup.step() requires the metric: the schedule after "
                                                  "warmup is ReduceLROnPlateau")):
        warm.step()
    assert warm.last_epoch == 0
    assert math.isinf(plateau.best)
