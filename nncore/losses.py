"""Loss functions: call one to get the loss, then ``backward()`` for the gradient with respect to its input.

    loss = loss_fn(output, target)        # a Python float ("mean"/"sum") or an array ("none")
    dy = loss_fn.backward()               # d loss / d output, to pass to model.backward

The kernels compute the loss and its gradient in one fused pass, so the call already holds the gradient
and ``backward()`` only hands it over. Semantics and argument names follow torch.nn:

* CrossEntropyLoss: softmax + cross-entropy from logits, L_i = logsumexp(x_i) - x_i[y_i] (or
  -sum_c t_ic log softmax(x_i)_c for probability targets), with class weights, ignore_index and
  label_smoothing; an all-ignored batch gives 0 and a zero gradient (torch: NaN).
* NLLLoss: L_i = -w[y_i] logp_i[y_i] on log-probabilities.
* BCEWithLogitsLoss: L = -w [pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], from logits.
* MSELoss: (x - t)^2.   L1Loss: |x - t|.
"""

from __future__ import annotations

import numpy as np

import kernels as K

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "Loss", "MSELoss", "NLLLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class Loss:
    """Base class: ``__call__(input, target)`` computes the loss and keeps the gradient for backward()."""

    def __init__(self, reduction="mean"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction = {reduction!r} is not one of {_REDUCTIONS}")
        self.reduction = reduction
        self._grad = None

    def __call__(self, input, target):
        loss, self._grad = self._compute(input, target)
        self._loss_shape = np.shape(loss)
        return loss if self.reduction == "none" else float(loss)

    forward = __call__

    def backward(self, grad_output=None):
        """d loss / d input of the last call. With reduction="none" the loss is a vector: ``grad_output``
        (one weight per element, default all ones) says how its elements combine."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before the loss was computed")
        if grad_output is None:
            return self._grad
        if self.reduction != "none":
            raise ValueError("grad_output is only meaningful with reduction='none'")
        g = np.asarray(grad_output, dtype=self._grad.dtype)
        if g.shape != self._loss_shape:
            raise ValueError(f"grad_output has shape {g.shape}; the loss (reduction='none') has shape "
                             f"{self._loss_shape}")
        return self._grad * (g.reshape(g.shape + (1,) * (self._grad.ndim - g.ndim)))

    def _compute(self, input, target):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _weight(weight):
    return None if weight is None else np.ascontiguousarray(weight)


class CrossEntropyLoss(Loss):
    """torch.nn.CrossEntropyLoss on logits (N, C) with class indices (N,) or probabilities (N, C)."""

    def __init__(self, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index, self.label_smoothing = _weight(weight), ignore_index, label_smoothing

    def _compute(self, logits, target):
        w = self.weight
        if w is not None and hasattr(logits, "dtype") and w.dtype != logits.dtype:
            w = w.astype(logits.dtype)
        return K.softmax_cross_entropy(logits, target, weight=w, ignore_index=self.ignore_index,
                                       label_smoothing=self.label_smoothing, reduction=self.reduction)


class NLLLoss(Loss):
    """torch.nn.NLLLoss on log-probabilities (N, C) with class indices (N,)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = _weight(weight), ignore_index

    def _compute(self, logp, target):
        w = self.weight
        if w is not None and hasattr(logp, "dtype") and w.dtype != logp.dtype:
            w = w.astype(logp.dtype)
        return K.nll_loss(logp, target, weight=w, ignore_index=self.ignore_index, reduction=self.reduction)


class BCEWithLogitsLoss(Loss):
    """torch.nn.BCEWithLogitsLoss: sigmoid + binary cross-entropy from logits, targets in [0, 1]."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.weight, self.pos_weight = _weight(weight), _weight(pos_weight)

    def _compute(self, x, target):
        return K.binary_cross_entropy_with_logits(x, _match(target, x), weight=_match(self.weight, x),
                                                  pos_weight=_match(self.pos_weight, x), reduction=self.reduction)


class MSELoss(Loss):
    """torch.nn.MSELoss: mean (or sum) of (input - target)^2; the course's quadratic loss."""

    def _compute(self, x, target):
        return K.mse_loss(x, _match(target, x), reduction=self.reduction)


class L1Loss(Loss):
    """torch.nn.L1Loss: mean (or sum) of |input - target| (mean absolute error)."""

    def _compute(self, x, target):
        return K.l1_loss(x, _match(target, x), reduction=self.reduction)


def _match(a, x):
    """Targets and weights given as integers or in the other float dtype follow the input's dtype (as torch
    does for float targets of an integer-labelled data set); arrays of the input dtype pass untouched."""
    if a is None or not hasattr(x, "dtype"):
        return a
    a = np.asarray(a) if not hasattr(a, "dtype") else a
    if a.dtype != x.dtype and (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)
                               or np.issubdtype(a.dtype, np.floating)):
        return a.astype(x.dtype)
    return a
