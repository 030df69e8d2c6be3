"""Stateless functions (torch.nn.functional style) over the kernels, plus entropy for the course's examples.

Losses here return the loss value only (use the classes in nncore.losses for the gradient too):

    entropy(p, base=math.e)            H(p) = -sum_i p_i log(p_i), with 0 log 0 = 0
    cross_entropy(logits, target)      softmax + cross-entropy from logits, in nats
    nll_loss(logp, target)             -logp[y] averaged
"""

from __future__ import annotations

import math

import numpy as np

import kernels as K

from .device import array_module

__all__ = [
    "binary_cross_entropy_with_logits", "cross_entropy", "entropy", "l1_loss", "leaky_relu", "log_softmax",
    "mse_loss", "nll_loss", "relu", "sigmoid", "softmax", "tanh",
]

softmax = K.softmax
log_softmax = K.log_softmax
relu = K.relu
leaky_relu = K.leaky_relu
sigmoid = K.sigmoid
tanh = K.tanh


def entropy(p, base=math.e, axis=-1):
    """Shannon entropy -sum p log_base(p) along ``axis`` of a probability vector (or batch of them).

    Terms with p = 0 contribute 0 (the limit of p log p). ``base`` 2 gives bits, e gives nats. Raises
    ValueError for negative probabilities or rows that do not sum to 1 (within 1e-6) and for base <= 0
    or base == 1. Computed in float64; returns a float for a single vector, else an array (on the device of
    ``p``: a CuPy input is computed with CuPy).
    """
    xp = array_module(p)
    p = xp.asarray(p, dtype=np.float64)
    if not (isinstance(base, (int, float, np.integer, np.floating)) and base > 0 and base != 1):
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    if p.ndim == 0:
        raise ValueError("entropy needs a probability vector, got a scalar")
    if bool(xp.any(p < 0)) or not bool(xp.all(xp.isfinite(p))):
        raise ValueError("probabilities must be finite and non-negative")
    total = p.sum(axis=axis)
    if not bool(xp.allclose(total, 1.0, rtol=0, atol=1e-6)):
        raise ValueError(f"probabilities must sum to 1 along axis {axis}, got sums {total}")
    terms = xp.where(p > 0, p * xp.log(xp.where(p > 0, p, 1.0)), 0.0)
    h = -terms.sum(axis=axis) / math.log(base)
    return float(h) if h.ndim == 0 else h


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """torch.nn.functional.cross_entropy from logits (natural log); divide by log(b) for base b."""
    loss, _ = K.softmax_cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                                      label_smoothing=label_smoothing, reduction=reduction)
    return loss


def nll_loss(logp, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """torch.nn.functional.nll_loss on log-probabilities."""
    return K.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)[0]


def binary_cross_entropy_with_logits(x, target, *, weight=None, pos_weight=None, reduction="mean"):
    return K.binary_cross_entropy_with_logits(x, target, weight=weight, pos_weight=pos_weight,
                                              reduction=reduction)[0]


def mse_loss(x, target, *, reduction="mean"):
    return K.mse_loss(x, target, reduction=reduction)[0]


def l1_loss(x, target, *, reduction="mean"):
    return K.l1_loss(x, target, reduction=reduction)[0]
