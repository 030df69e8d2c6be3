"""nncore.losses and the loss functions of nncore.functional, against torch.nn and the float64 oracle.

Every loss class (CrossEntropyLoss with class weights, ignore_index, label smoothing and probability
targets; NLLLoss; BCEWithLogitsLoss with weight and pos_weight; MSELoss; L1Loss) under every reduction:
the value and the gradient of ``backward()`` (``backward(grad_output)`` for "none") against torch's value
and autograd gradient in float64, and against kernels.reference in float32. Then the value types, the
errors, and the functional wrappers.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from kernels import reference as R
from nncore import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from nncore import functional as F
from tests.helpers import TOLS, assert_close

REDUCTIONS = ["mean", "sum", "none"]


# Each case: (loss class, functional name, builder). builder(rng, n, c) -> (kwargs, x, target), all float64
# (class indices int64); kwargs are the loss's own arguments besides the reduction.


def _logits(rng, n, c):
    return rng.standard_normal((n, c)) * 2.0


def _classes(rng, n, c):
    return rng.integers(0, c, n)


def _probabilities(rng, n, c):
    t = rng.uniform(0.0, 1.0, (n, c))
    return t / t.sum(axis=1, keepdims=True)


def _ce_ignore(rng, n, c):
    t = _classes(rng, n, c)
    t[1::3] = 1
    t[0] = 0  # at least one target is kept (torch's "mean" of an all-ignored batch is NaN)
    return {"ignore_index": 1}, _logits(rng, n, c), t


def _ce_default_ignore(rng, n, c):
    t = _classes(rng, n, c)
    t[::3] = -100
    return {"weight": rng.uniform(0.2, 2.0, c)}, _logits(rng, n, c), t


def _ce_smoothing_ignore(rng, n, c):
    kwargs, x, t = _ce_ignore(rng, n, c)
    return {"label_smoothing": 0.1, **kwargs}, x, t


def _nll_inputs(rng, n, c):
    return R.log_softmax(_logits(rng, n, c)), _classes(rng, n, c)


CASES = {
    "ce": (CrossEntropyLoss, "cross_entropy", lambda rng, n, c: ({}, _logits(rng, n, c), _classes(rng, n, c))),
    "ce_weight": (CrossEntropyLoss, "cross_entropy",
                  lambda rng, n, c: ({"weight": rng.uniform(0.2, 2.0, c)}, _logits(rng, n, c), _classes(rng, n, c))),
    "ce_ignore_index": (CrossEntropyLoss, "cross_entropy", _ce_ignore),
    "ce_weight_default_ignore": (CrossEntropyLoss, "cross_entropy", _ce_default_ignore),
    "ce_smoothing_weight": (CrossEntropyLoss, "cross_entropy",
                            lambda rng, n, c: ({"label_smoothing": 0.15, "weight": rng.uniform(0.2, 2.0, c)},
                                               _logits(rng, n, c), _classes(rng, n, c))),
    "ce_smoothing_ignore": (CrossEntropyLoss, "cross_entropy", _ce_smoothing_ignore),
    "ce_soft": (CrossEntropyLoss, "cross_entropy",
                lambda rng, n, c: ({}, _logits(rng, n, c), _probabilities(rng, n, c))),
    "ce_soft_weight_smoothing": (CrossEntropyLoss, "cross_entropy",
                                 lambda rng, n, c: ({"weight": rng.uniform(0.2, 2.0, c), "label_smoothing": 0.2},
                                                    _logits(rng, n, c), _probabilities(rng, n, c))),
    "nll": (NLLLoss, "nll_loss", lambda rng, n, c: ({}, *_nll_inputs(rng, n, c))),
    "nll_weight_ignore": (NLLLoss, "nll_loss",
                          lambda rng, n, c: ({"weight": rng.uniform(0.2, 2.0, c)}, *_ce_default_ignore(rng, n, c)[1:])),
    "bce": (BCEWithLogitsLoss, "binary_cross_entropy_with_logits",
            lambda rng, n, c: ({}, _logits(rng, n, c), rng.uniform(0.0, 1.0, (n, c)))),
    "bce_weight_pos_weight": (BCEWithLogitsLoss, "binary_cross_entropy_with_logits",
                              lambda rng, n, c: ({"weight": rng.uniform(0.2, 2.0, c),
                                                  "pos_weight": rng.uniform(0.5, 3.0, c)},
                                                 _logits(rng, n, c), (rng.uniform(size=(n, c)) < 0.4) * 1.0)),
    "bce_full_weight": (BCEWithLogitsLoss, "binary_cross_entropy_with_logits",
                        lambda rng, n, c: ({"weight": rng.uniform(0.2, 2.0, (n, c))}, _logits(rng, n, c),
                                           rng.uniform(0.0, 1.0, (n, c)))),
    "mse": (MSELoss, "mse_loss", lambda rng, n, c: ({}, _logits(rng, n, c), rng.standard_normal((n, c)))),
    "l1": (L1Loss, "l1_loss", lambda rng, n, c: ({}, _logits(rng, n, c), rng.standard_normal((n, c)))),
}
# the oracle of each functional name (kernels.reference: same argument names, returns (loss, gradient))
ORACLE = {"cross_entropy": R.cross_entropy, "nll_loss": R.nll_loss,
          "binary_cross_entropy_with_logits": R.binary_cross_entropy_with_logits, "mse_loss": R.mse_loss,
          "l1_loss": R.l1_loss}
TORCH_CLASS = {CrossEntropyLoss: "CrossEntropyLoss", NLLLoss: "NLLLoss", BCEWithLogitsLoss: "BCEWithLogitsLoss",
               MSELoss: "MSELoss", L1Loss: "L1Loss"}


def _chain(grad, g):
    """backward(grad_output) of a "none" loss: each element's gradient times its grad_output entry (a row
    of a per-row loss, an element of an elementwise one)."""
    return grad * g.reshape(g.shape + (1,) * (grad.ndim - g.ndim))


def _torch_loss(torch, cls, kwargs, x, target, reduction, grad_output):
    """torch's value and d/dx (through autograd) for float64 inputs."""
    tkw = {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tx = torch.from_numpy(x).requires_grad_(True)
    loss = getattr(torch.nn, TORCH_CLASS[cls])(**tkw, reduction=reduction)(tx, torch.from_numpy(target))
    loss.backward(None if reduction != "none" else torch.from_numpy(grad_output))
    return loss.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_loss_classes_match_torch_in_float64(rng, case, reduction):
    torch = pytest.importorskip("torch")
    cls, _, build = CASES[case]
    kwargs, x, target = build(rng, 9, 6)
    loss_fn = cls(**kwargs, reduction=reduction)
    value = loss_fn(x, target)
    g = rng.standard_normal(value.shape) if reduction == "none" else None
    tvalue, tgrad = _torch_loss(torch, cls, kwargs, x, target, reduction, g)
    grad = loss_fn.backward(g)
    if reduction == "none":
        assert isinstance(value, np.ndarray) and value.dtype == np.float64
        assert value.shape == (x.shape[0],) if cls in (CrossEntropyLoss, NLLLoss) else x.shape
    else:
        assert type(value) is float
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert_close(value, tvalue, *TOLS[np.float64], "loss")
    assert_close(grad, tgrad, *TOLS[np.float64], "gradient")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(1, 5), (7, 1), (13, 37)], ids=["1x5", "7x1", "13x37"])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_classes_match_oracle_in_float32(rng, case, shape, reduction):
    cls, fname, build = CASES[case]
    kwargs, x, target = build(rng, *shape)
    x32 = x.astype(np.float32)
    # float targets in the input dtype; weights stay float64 (the loss converts them to the input dtype)
    t32 = target.astype(np.float32) if target.dtype.kind == "f" else target
    loss_fn = cls(**kwargs, reduction=reduction)
    value = loss_fn(x32, t32)
    rvalue, rgrad = ORACLE[fname](x32, t32, **kwargs, reduction=reduction)
    rtol, atol = TOLS[np.float32]
    if reduction == "none":
        assert value.dtype == np.float32
        assert_close(loss_fn.backward(), rgrad, rtol, atol, "backward() of 'none': grad_output of ones")
        g = rng.standard_normal(value.shape)
        grad = loss_fn.backward(g)
        rgrad = _chain(rgrad, g)
    else:
        assert type(value) is float
        grad = loss_fn.backward()
    assert grad.shape == x.shape and grad.dtype == np.float32
    assert_close(value, rvalue, rtol, atol, "loss")
    assert_close(grad, rgrad, rtol, atol, "gradient")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_functional_losses_match_torch(rng, case, reduction):
    torch = pytest.importorskip("torch")
    _, fname, build = CASES[case]
    kwargs, x, target = build(rng, 8, 5)
    value = getattr(F, fname)(x, target, **kwargs, reduction=reduction)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tvalue = getattr(torch.nn.functional, fname)(torch.from_numpy(x), torch.from_numpy(target), **tkw,
                                                 reduction=reduction).numpy()
    assert_close(value, tvalue, *TOLS[np.float64], fname)
    # float32: the functions take every array in the input dtype (no conversion, unlike the classes)
    x32 = x.astype(np.float32)
    t32 = target.astype(np.float32) if target.dtype.kind == "f" else target
    kw32 = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    rvalue, _ = ORACLE[fname](x32, t32, **kw32, reduction=reduction)
    assert_close(getattr(F, fname)(x32, t32, **kw32, reduction=reduction), rvalue, *TOLS[np.float32], fname)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "relu", "sigmoid", "tanh"])
def test_functional_activations_match_torch(rng, name):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 11)) * 3
    expected = getattr(torch, name)(torch.from_numpy(x), dim=-1) if "softmax" in name else \
        getattr(torch, name)(torch.from_numpy(x))
    assert_close(getattr(F, name)(x), expected.numpy(), *TOLS[np.float64], name)
    assert_close(F.leaky_relu(x, 0.3), torch.nn.functional.leaky_relu(torch.from_numpy(x), 0.3).numpy(), 0, 0)


# ------------------------------------------------------------------------------------------------------
# values, gradients and errors of the classes


def test_backward_of_none_defaults_to_ones_and_scales_rows(rng):
    x = rng.standard_normal((5, 4))
    t = rng.integers(0, 4, 5)
    ce = CrossEntropyLoss(reduction="none")
    per_row = ce(x, t)
    assert_close(ce.backward(np.ones(5)), ce.backward(), 0, 0)
    # sum of the per-row losses: the gradient of "sum"
    total = CrossEntropyLoss(reduction="sum")
    assert_close(per_row.sum(), total(x, t), 1e-12, 0)
    assert_close(ce.backward(np.ones(5)), total.backward(), 1e-12, 1e-15)
    # grad_output of a mean: 1/N each
    mean = CrossEntropyLoss()
    mean(x, t)
    assert_close(ce.backward(np.full(5, 0.2)), mean.backward(), 1e-12, 1e-15)


def test_all_ignored_batch_gives_zero_loss_and_gradient(rng):
    x = rng.standard_normal((4, 3))
    ce = CrossEntropyLoss(ignore_index=2)
    assert ce(x, np.full(4, 2)) == 0.0
    assert not ce.backward().any()


def test_bce_accepts_integer_targets(rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    t = rng.integers(0, 2, (6, 3))
    bce = BCEWithLogitsLoss()
    value, grad = R.binary_cross_entropy_with_logits(x, t)
    assert_close(bce(x, t), value, *TOLS[np.float32])
    assert_close(bce.backward(), grad, *TOLS[np.float32])


@pytest.mark.parametrize("cls", [CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, MSELoss, L1Loss])
def test_loss_errors(rng, cls):
    with pytest.raises(ValueError, match=re.escape("reduction = 'avg' is not one of ('mean', 'sum', 'none')")):
        cls(reduction="avg")
    loss_fn = cls()
    with pytest.raises(RuntimeError, match=re.escape(f"{cls.__name__}.backward() called before the loss was computed")):
        loss_fn.backward()
    x = rng.standard_normal((3, 2))
    loss_fn(x, np.array([0, 1, 1]) if cls in (CrossEntropyLoss, NLLLoss) else rng.uniform(size=(3, 2)))
    with pytest.raises(ValueError, match=re.escape("grad_output is only meaningful with reduction='none'")):
        loss_fn.backward(np.ones(3))
    assert repr(loss_fn) == f"{cls.__name__}(reduction='mean')"


def test_errors_from_the_kernels_reach_the_caller(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=re.escape("weight has shape (3,), expected (4,)")):
        CrossEntropyLoss(weight=np.ones(3))(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        CrossEntropyLoss()(x, np.array([0, 1, 4]))
    with pytest.raises(TypeError, match="nll_loss takes integer class indices"):
        NLLLoss()(x, rng.uniform(size=(3, 4)))
    with pytest.raises(ValueError, match="shape"):
        MSELoss()(x, rng.standard_normal((3, 5)))


def test_backward_grad_output_must_match_the_loss_shape(rng):
    loss = CrossEntropyLoss(reduction="none")
    loss(rng.standard_normal((3, 4)), rng.integers(0, 4, 3))
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 3\); the loss .* has shape \(3,\)"):
        loss.backward(np.ones((3, 3)))
