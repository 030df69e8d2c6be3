"""Loss functions: call one to get the loss, then ``backward()`` for the gradient with respect to its input.

    loss = loss_fn(output, target)        # a Python float ("mean"/"sum") or an array ("none")
    dy = loss_fn.backward()               # d loss / d output, to pass to model.backward

On the GPU, a Python float means waiting for the device: ``loss_fn.forward(output, target)`` returns the
loss as the kernel gives it instead (a 0-d device array for "mean"/"sum", a NumPy scalar on the CPU), so a
training loop can keep it on the device and read it when it wants to (nncore.fit does, once per epoch).
Weights given as NumPy arrays follow the input to the GPU (copied once per device and kept).

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

from .device import array_module, device_of, is_device_array, to_device

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
        loss = self.forward(input, target)
        return loss if self.reduction == "none" else float(loss)

    def forward(self, input, target):
        """The loss without converting it to a Python float: a NumPy scalar on the CPU, a 0-d device array
        on the GPU ("mean"/"sum"), so nothing waits for the device; the per-element array for "none"."""
        loss, self._grad = self._compute(input, target)
        self._loss_shape = tuple(loss.shape)
        return loss

    def backward(self, grad_output=None):
        """d loss / d input of the last call. With reduction="none" the loss is a vector: ``grad_output``
        (one weight per element, default all ones) says how its elements combine."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before the loss was computed")
        if grad_output is None:
            return self._grad
        if self.reduction != "none":
            raise ValueError("grad_output is only meaningful with reduction='none'")
        g = array_module(self._grad).asarray(grad_output, dtype=self._grad.dtype)
        if g.shape != self._loss_shape:
            raise ValueError(f"grad_output has shape {g.shape}; the loss (reduction='none') has shape "
                             f"{self._loss_shape}")
        return self._grad * (g.reshape(g.shape + (1,) * (self._grad.ndim - g.ndim)))

    def _compute(self, input, target):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _weight(weight):
    return None if weight is None else np.ascontiguousarray(weight) if not is_device_array(weight) else weight


class _PerDevice:
    """A weight vector given once, handed to the kernels on the input's device and dtype (copied once per
    (device, dtype) and kept, so a training loop does not copy it every step)."""

    __slots__ = ("value", "copies")

    def __init__(self, value):
        self.value, self.copies = _weight(value), {}

    def like(self, x):
        if self.value is None or not hasattr(x, "dtype"):
            return self.value
        key = (device_of(x), x.dtype)
        got = self.copies.get(key)
        if got is None:
            got = self.value if device_of(self.value) == key[0] else to_device(self.value, key[0])
            got = self.copies[key] = _match(got, x)
        return got


class CrossEntropyLoss(Loss):
    """torch.nn.CrossEntropyLoss on logits (N, C) with class indices (N,) or probabilities (N, C)."""

    def __init__(self, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        super().__init__(reduction)
        self._w = _PerDevice(weight)
        self.weight, self.ignore_index, self.label_smoothing = self._w.value, ignore_index, label_smoothing

    def _compute(self, logits, target):
        return K.softmax_cross_entropy(logits, target, weight=self._w.like(logits), ignore_index=self.ignore_index,
                                       label_smoothing=self.label_smoothing, reduction=self.reduction)


class NLLLoss(Loss):
    """torch.nn.NLLLoss on log-probabilities (N, C) with class indices (N,)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self._w = _PerDevice(weight)
        self.weight, self.ignore_index = self._w.value, ignore_index

    def _compute(self, logp, target):
        return K.nll_loss(logp, target, weight=self._w.like(logp), ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCEWithLogitsLoss(Loss):
    """torch.nn.BCEWithLogitsLoss: sigmoid + binary cross-entropy from logits, targets in [0, 1]."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self._w, self._pw = _PerDevice(weight), _PerDevice(pos_weight)
        self.weight, self.pos_weight = self._w.value, self._pw.value

    def _compute(self, x, target):
        return K.binary_cross_entropy_with_logits(x, _match(target, x), weight=self._w.like(x),
                                                  pos_weight=self._pw.like(x), reduction=self.reduction)


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
