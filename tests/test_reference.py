"""The float64 oracle checked on its own: gradients by central finite differences, semantics against
PyTorch in float64 when torch is installed, and Philox against the published known-answer vectors.

Everything else in tests/ trusts kernels/reference.py, so this file is what keeps that trust honest.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels import reference as R
from tests.helpers import assert_close, numeric_grad


def check_fd(f, x, analytic, name):
    assert_close(analytic, numeric_grad(f, x), rtol=1e-5, atol=1e-7, name=name)


# ------------------------------------------------------------------------------------------ softmax


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_gradients(rng, axis):
    x = rng.standard_normal((4, 5))
    r = rng.standard_normal((4, 5))
    y = R.softmax(x, axis)
    check_fd(lambda: (r * R.softmax(x, axis)).sum(), x, R.softmax_backward(r, y, axis), "softmax dx")
    ly = R.log_softmax(x, axis)
    check_fd(lambda: (r * R.log_softmax(x, axis)).sum(), x, R.log_softmax_backward(r, ly, axis),
             "log_softmax dx")
    assert_close(np.exp(ly), y, 1e-14, 1e-15, "exp(log_softmax) == softmax")


CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, ignore=True),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.3, weight=True, ignore=True, reduction="mean"),
    dict(label_smoothing=0.1, weight=True, reduction="none"),
    dict(soft=True),
    dict(soft=True, weight=True, label_smoothing=0.15),
    dict(soft=True, reduction="none"),
]


def _ce_args(rng, n, c, case):
    kw = dict(reduction=case.get("reduction", "mean"), label_smoothing=case.get("label_smoothing", 0.0))
    if case.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, c)
    if case.get("soft"):
        t = rng.uniform(0.0, 1.0, (n, c))
        target = t / t.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, n)
        if case.get("ignore"):
            target[::3] = -100
    return target, kw


@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_cross_entropy_gradient(rng, case):
    n, c = 6, 5
    x = rng.standard_normal((n, c)) * 3
    target, kw = _ce_args(rng, n, c, case)
    _, d = R.cross_entropy(x, target, **kw)
    if kw["reduction"] == "none":
        r = rng.standard_normal(n)
        check_fd(lambda: (r * R.cross_entropy(x, target, **kw)[0]).sum(), x, d * r[:, None], "dlogits")
    else:
        check_fd(lambda: R.cross_entropy(x, target, **kw)[0], x, d, "dlogits")


def test_cross_entropy_all_ignored_is_zero_not_nan():
    loss, d = R.cross_entropy(np.ones((3, 4)), np.full(3, -100))
    assert loss == 0.0 and not d.any()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_gradient(rng, reduction):
    logp = R.log_softmax(rng.standard_normal((5, 4)))
    target = np.array([0, 3, -100, 2, 1])
    w = rng.uniform(0.5, 2, 4)
    _, d = R.nll_loss(logp, target, weight=w, reduction=reduction)
    r = rng.standard_normal(5) if reduction == "none" else 1.0
    check_fd(lambda: np.sum(r * R.nll_loss(logp, target, weight=w, reduction=reduction)[0]), logp,
             d * (r[:, None] if reduction == "none" else 1.0), "dlogp")


# ------------------------------------------------------------------------------------------ losses


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_mse_l1_gradients(rng, reduction):
    x = rng.standard_normal((3, 4)) * 4
    t = rng.uniform(0, 1, (3, 4))
    w = rng.uniform(0.5, 2.0, (3, 4))
    pw = rng.uniform(0.5, 3.0, 4)
    r = rng.standard_normal((3, 4)) if reduction == "none" else 1.0
    for name, fn, kw in [
        ("bce", R.binary_cross_entropy_with_logits, dict(weight=w, pos_weight=pw)),
        ("mse", R.mse_loss, {}),
        ("l1", R.l1_loss, {}),  # random x and t: |x - t| > H almost surely, away from the kink (1e-6 steps)
    ]:
        _, d = fn(x, t, reduction=reduction, **kw)
        check_fd(lambda: np.sum(r * fn(x, t, reduction=reduction, **kw)[0]), x, d * r, f"{name} dx")


def test_bce_stable_for_huge_logits():
    loss, d = R.binary_cross_entropy_with_logits(np.array([1e4, -1e4, 800.0]), np.array([0.0, 1.0, 1.0]),
                                                 reduction="none")
    assert_close(loss, [1e4, 1e4, 0.0], 1e-12, 1e-300, "bce loss")
    assert_close(d, [1.0, -1.0, 0.0], 1e-12, 1e-300, "bce dx")


def test_entropy_of_the_course_containers():
    # DESIGN.md section 5: entropy in bits of three containers of 30 balls
    h = R.entropy(np.array([[26, 4], [14, 16], [1, 29]]) / 30, base=2)
    assert_close(h, [0.5665, 0.9968, 0.2108], 0, 5e-5, "entropy (bits)")


# ------------------------------------------------------------------------------------------ activations, linear


@pytest.mark.parametrize("kind", R.ACTIVATIONS)
def test_activation_gradients(rng, kind):
    x = rng.standard_normal((3, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the relu kink
    r = rng.standard_normal((3, 5))
    y = R.activation(x, kind, 0.1)
    check_fd(lambda: (r * R.activation(x, kind, 0.1)).sum(), x, R.activation_backward(r, y, kind, 0.1), kind)


def test_sigmoid_stable_for_large_magnitudes():
    s = R.sigmoid(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    assert np.isfinite(s).all() and s[2] == 0.5 and s[-1] == 1.0 and s[0] == 0.0


@pytest.mark.parametrize("kind", ["identity", "relu", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(rng, kind, bias):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    b = rng.standard_normal(2) if bias else None
    r = rng.standard_normal((4, 2))
    y = R.linear_forward(x, w, b, kind)
    dx, dw, db = R.linear_backward(r, x, w, y, kind, has_bias=bias)
    f = lambda: (r * R.linear_forward(x, w, b, kind)).sum()  # noqa: E731
    check_fd(f, x, dx, "dx")
    check_fd(f, w, dw, "dw")
    if bias:
        check_fd(f, b, db, "db")
    else:
        assert db is None


# ------------------------------------------------------------------------------------------ batchnorm


def test_batchnorm_gradients(rng):
    x = rng.standard_normal((6, 3)) * 2 + 1
    g, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    r = rng.standard_normal((6, 3))
    _, _, _, mean, invstd = R.batchnorm_forward_train(x, g, b, None, None)
    dx, dg, db = R.batchnorm_backward(r, x, g, mean, invstd)
    f = lambda: (r * R.batchnorm_forward_train(x, g, b, None, None)[0]).sum()  # noqa: E731
    check_fd(f, x, dx, "dx")
    check_fd(f, g, dg, "dgamma")
    check_fd(f, b, db, "dbeta")


def test_batchnorm_running_stats_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    _, rm, rv, mean, invstd = R.batchnorm_forward_train(x, None, None, np.zeros(2), np.ones(2), momentum=0.1)
    assert_close(mean, [3.0, 6.0], 0, 1e-15, "mean")
    assert_close(invstd, 1 / np.sqrt(np.array([8 / 3, 32 / 3]) + 1e-5), 1e-14, 0, "invstd (biased var)")
    assert_close(rm, [0.3, 0.6], 1e-14, 0, "running mean")
    assert_close(rv, [0.9 + 0.1 * 4.0, 0.9 + 0.1 * 16.0], 1e-14, 0, "running var (unbiased)")


# ------------------------------------------------------------------------------------------ dropout / philox


@pytest.mark.parametrize("ctr,key,expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(ctr, key, expected):
    assert R.philox4x32_10(ctr, key) == expected


def test_dropout_oracle_is_linear_with_the_same_mask(rng):
    x, r = rng.standard_normal(50), rng.standard_normal(50)
    check_fd(lambda: (r * R.dropout_forward(x, 0.3, 7, 2)).sum(), x, R.dropout_backward(r, 0.3, 7, 2), "dx")
    mask = R.dropout_mask((50,), 0.3, 7, 2)
    assert_close(R.dropout_forward(x, 0.3, 7, 2), np.where(mask, x / 0.7, 0), 1e-15, 0, "y")
    assert R.dropout_threshold(0.0) == 0 and R.dropout_threshold(0.5) == 2**31


# ------------------------------------------------------------------------------------------ optimizers


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps): about lr * sign(g).
    p, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, -4.0, 1e-3])
    new, s = R.adam_step(p, g, {}, lr=0.1, eps=1e-12)
    assert_close(new, p - 0.1 * np.sign(g), 1e-8, 0, "adam step 1")
    assert s["step"] == 1


def test_sgd_momentum_two_steps_by_hand():
    p, s = np.array([1.0]), {}
    p, s = R.sgd_step(p, np.array([2.0]), s, lr=0.1, momentum=0.9, dampening=0.5)
    assert_close(p, [0.8], 1e-15, 0, "step 1: buf = g, no dampening on the first step")
    p, s = R.sgd_step(p, np.array([1.0]), s, lr=0.1, momentum=0.9, dampening=0.5)
    assert_close(s["momentum_buffer"], [0.9 * 2 + 0.5 * 1], 1e-15, 0, "buf")
    assert_close(p, [0.8 - 0.1 * 2.3], 1e-15, 0, "step 2")


# ------------------------------------------------------------------------------------------ PyTorch parity (float64)

OPTIMIZERS = [
    ("SGD", R.sgd_step, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", R.sgd_step, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adagrad", R.adagrad_step, dict(lr=0.1, lr_decay=0.01, weight_decay=0.02)),
    ("RMSprop", R.rmsprop_step, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    ("Adadelta", R.adadelta_step, dict(lr=1.0, rho=0.85, weight_decay=0.01)),
    ("Adam", R.adam_step, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01, amsgrad=True)),
    ("AdamW", R.adamw_step, dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", R.nadam_step, dict(lr=0.01, weight_decay=0.01, momentum_decay=0.004)),
    ("NAdam", R.nadam_step, dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
]


@pytest.mark.parametrize("name,step,kw", OPTIMIZERS, ids=[f"{o[0]}-{i}" for i, o in enumerate(OPTIMIZERS)])
def test_optimizer_oracles_match_torch(rng, name, step, kw):
    torch = pytest.importorskip("torch")
    p0 = rng.standard_normal(11)
    grads = [rng.standard_normal(11) for _ in range(25)]
    # torch keeps scalar state (NAdam's mu_product, the step) in the default dtype: make that float64 too
    old_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tp = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        opt = getattr(torch.optim, name)([tp], **kw, foreach=False)
        p, s = p0.copy(), {}
        for g in grads:
            tp.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
            p, s = step(p, g, s, **kw)
    finally:
        torch.set_default_dtype(old_default)
    assert_close(p, tp.detach().numpy(), 1e-12, 1e-14, f"{name} after 25 steps")


@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_cross_entropy_oracle_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    n, c = 7, 6
    x = rng.standard_normal((n, c)) * 3
    target, kw = _ce_args(rng, n, c, case)
    loss, d = R.cross_entropy(x, target, **kw)
    tx = torch.tensor(x, requires_grad=True)
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"])
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(target), **tkw)
    (tl if kw["reduction"] != "none" else tl.sum()).backward()
    assert_close(loss, tl.detach().numpy(), 1e-12, 1e-14, "loss")
    assert_close(d, tx.grad.numpy(), 1e-12, 1e-14, "dlogits")


def test_bce_and_batchnorm_oracles_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, t = rng.standard_normal((5, 4)) * 3, rng.uniform(0, 1, (5, 4))
    w, pw = rng.uniform(0.5, 2, (5, 4)), rng.uniform(0.5, 3, 4)
    tx = torch.tensor(x, requires_grad=True)
    tl = F.binary_cross_entropy_with_logits(tx, torch.tensor(t), weight=torch.tensor(w), pos_weight=torch.tensor(pw))
    tl.backward()
    loss, d = R.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw)
    assert_close(loss, tl.item(), 1e-12, 0, "bce")
    assert_close(d, tx.grad.numpy(), 1e-12, 1e-15, "bce dx")

    x = rng.standard_normal((8, 3)) * 2 + 5
    g, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    r = rng.standard_normal((8, 3))
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    ty = F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5)
    ty.backward(torch.tensor(r))
    y, nrm, nrv, mean, invstd = R.batchnorm_forward_train(x, g, b, rm, rv)
    dx, dg, db = R.batchnorm_backward(r, x, g, mean, invstd)
    for name, ours, theirs in [("y", y, ty), ("running_mean", nrm, trm), ("running_var", nrv, trv),
                               ("dx", dx, tx.grad), ("dgamma", dg, tg.grad), ("dbeta", db, tb.grad)]:
        assert_close(ours, theirs.detach().numpy(), 1e-11, 1e-13, name)
    y_eval = R.batchnorm_forward_eval(x, g, b, nrm, nrv)
    assert_close(y_eval, F.batch_norm(torch.tensor(x), trm, trv, torch.tensor(g), torch.tensor(b),
                                      training=False).numpy(), 1e-12, 1e-13, "eval y")


def test_course_toy_network_gradients():
    # DESIGN.md section 5: z = w2^2 (2 x w1 + w0) at w = (w0, w1, w2) = (1, 3, 2), x = 1, y = 38, L = y - z;
    # the chain rule by hand gives dL/dw = (-w2^2, -2 x w2^2, -2 w2 (2 x w1 + w0)) = (-4, -8, -28).
    w = np.array([1.0, 3.0, 2.0])
    loss = lambda: 38.0 - w[2] ** 2 * (2 * 1.0 * w[1] + w[0])  # noqa: E731
    assert loss() == 10.0
    assert_close(numeric_grad(loss, w), [-4.0, -8.0, -28.0], 1e-7, 1e-7, "dL/dw")
