"""Softmax, log-softmax and the fused softmax cross-entropy (forward and backward in one call).

Maths (course notation: row vectors; one row x of C logits at a time):

    softmax:      p_c = exp(x_c) / sum_k exp(x_k) = exp(x_c - lse),   lse = log sum_k exp(x_k)
    log_softmax:  y_c = x_c - lse
    backward:     softmax:     dx = y * (dy - sum_c dy_c y_c)
                  log_softmax: dx = dy - exp(y) * sum_c dy_c

Cross-entropy follows torch.nn.functional.cross_entropy. With class weights w (C,), label smoothing eps and
a target that is a class index y or a probability row t, every case is one formula in the effective
weighted target q (C,) and its total Q = sum_c q_c:

    hard:  q_c = (1 - eps) w_y [c == y] + (eps / C) w_c      Q = (1 - eps) w_y + (eps / C) sum_c w_c
    soft:  q_c = w_c ((1 - eps) t_c + eps / C)
    loss_i = -sum_c q_c log p_c = sum_c q_c (lse - x_c) = Q lse - sum_c q_c x_c
    d loss_i / d x_c = Q p_c - q_c

times the reduction scale s: "none" and "sum" s = 1; "mean" s = 1 / sum_i w_{y_i} over the rows whose
target is not ignore_index (hard targets; both the NLL and the smoothing term use this denominator, as
torch does), and s = 1 / N for probability targets whatever the weights. A row whose target is
ignore_index contributes loss 0 and a zero gradient row.

Deliberate differences from torch: an all-ignored batch (or N == 0, or target weights summing to 0) with
reduction "mean" gives loss 0 and a zero gradient instead of NaN (0 / 0). Probability targets are not
checked to be non-negative or to sum to 1 (torch does not check either).

Shapes: softmax family: x of any ndim >= 1, normalised along ``axis`` (the kernels work on contiguous rows;
another axis is moved last and copied). Losses: logits (N, C); target (N,) integer class indices or
(N, C) probabilities of the logits dtype; weight (C,); returns (loss, dlogits) with dlogits (N, C) and
loss a scalar of the logits dtype, or (N,) for reduction "none".

Non-finite input: a row holding a NaN (or +inf) gives a NaN loss and a NaN gradient row; other rows are
unaffected ("none"), though a "mean"/"sum" loss is then NaN. -inf logits are masked classes
(probability 0); a row of all -inf is NaN, as in torch.

Backends: NumPy arrays run the CPU kernels of ``kernels/softmax_xent/cpu.py`` (the fused row algorithm is
described there). Device arrays (CuPy, anything with ``__cuda_array_interface__``) run the row kernels of
``kernels/cuda/softmax_xent.py`` on the current stream, with the same validation and errors; another axis
is moved last on the device (the device module's moveaxis / ascontiguousarray). There a "mean"/"sum" loss
is summed on the device from the float64 per-row losses and returned as a 0-d device array of the logits
dtype (as torch returns a 0-d tensor); "none" returns the (N,) device array. The hard-target "mean" scale,
which depends on the labels, is computed on the device by a one-block kernel before the row kernel reads
it (see kernels/cuda/softmax_xent.py), so the only read-back is the label range check's one boolean.
"""

from __future__ import annotations

import numpy as np

from .._util import (
    PARALLEL_MIN_ELEMENTS,
    _type_error,
    array_module,
    as_float_array,
    as_index_array,
    backend_of,
    check_int,
    check_labels,
    check_real,
    check_reduction,
    common_float_dtype,
    device_module,
    is_array,
    out_array,
)
from .cpu import (
    _BLOCK,
    _log_softmax_backward_parallel,
    _log_softmax_backward_serial,
    _log_softmax_parallel,
    _log_softmax_serial,
    _nll_parallel,
    _nll_serial,
    _softmax_backward_parallel,
    _softmax_backward_serial,
    _softmax_parallel,
    _softmax_serial,
    _xent_hard_parallel,
    _xent_hard_serial,
    _xent_soft_parallel,
    _xent_soft_serial,
)

__all__ = [
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "softmax_cross_entropy",
    "nll_loss",
]


# --------------------------------------------------------------------------------------------------
# public functions


def _is_big(a) -> bool:
    return a.size >= PARALLEL_MIN_ELEMENTS


def _refs_for(rows, cols, dtype):
    """Per-row, per-block references of pass 1 (a few bytes per _BLOCK logits)."""
    return np.empty((rows, max(1, -(-cols // _BLOCK))), dtype=dtype)


def _check_axis(axis, ndim):
    axis = check_int("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis = {axis} is out of range for an array of ndim {ndim}")
    return axis % ndim


def _rowwise(name_out, out, shape, dtype, inputs, axis, run, backend):
    """Run a row kernel along ``axis``: move it last, make rows contiguous, run, and move it back.

    ``inputs`` are already-validated contiguous arrays of ``shape``; ``run(rows_in..., rows_out)``. The
    moves and the temporary stay on the inputs' device (``backend``).
    """
    out = out_array(name_out, out, shape, dtype, inputs=inputs)
    ndim = len(shape)
    if out.size == 0:
        return out
    if axis == ndim - 1:
        c = shape[-1]
        run(*(a.reshape(-1, c) for a in inputs), out.reshape(-1, c))
        return out
    xp = device_module() if backend == "cuda" else np
    moved = [xp.ascontiguousarray(xp.moveaxis(a, axis, -1)) for a in inputs]
    c = shape[axis]
    res = xp.empty(moved[0].shape, dtype=dtype)
    run(*(a.reshape(-1, c) for a in moved), res.reshape(-1, c))
    xp.copyto(out, xp.moveaxis(res, -1, axis))
    return out


def _run_softmax(x2, y2):
    refs = _refs_for(*x2.shape, x2.dtype)
    (_softmax_parallel if _is_big(x2) else _softmax_serial)(x2, y2, refs)


def _run_log_softmax(x2, y2):
    refs = _refs_for(*x2.shape, x2.dtype)
    (_log_softmax_parallel if _is_big(x2) else _log_softmax_serial)(x2, y2, refs)


def _run_softmax_backward(dy2, y2, dx2):
    (_softmax_backward_parallel if _is_big(dy2) else _softmax_backward_serial)(dy2, y2, dx2)


def _run_log_softmax_backward(dy2, y2, dx2):
    (_log_softmax_backward_parallel if _is_big(dy2) else _log_softmax_backward_serial)(dy2, y2, dx2)


def _cuda_module():
    # imported on first device call only: ``import kernels`` must not import numba.cuda
    from kernels.cuda import softmax_xent as cuda_sx

    return cuda_sx


def softmax(x, axis=-1, *, out=None):
    """Softmax of ``x`` along ``axis`` (any ndim >= 1); ``out`` (x's shape and dtype) receives it."""
    backend = backend_of(x=x, out=out)
    x = as_float_array("x", x, min_ndim=1)
    axis = _check_axis(axis, x.ndim)
    run = _cuda_module().softmax if backend == "cuda" else _run_softmax
    return _rowwise("out", out, x.shape, x.dtype, (x,), axis, run, backend)


def log_softmax(x, axis=-1, *, out=None):
    """log(softmax(x)) along ``axis``, computed as x - lse (never the log of a rounded probability)."""
    backend = backend_of(x=x, out=out)
    x = as_float_array("x", x, min_ndim=1)
    axis = _check_axis(axis, x.ndim)
    run = _cuda_module().log_softmax if backend == "cuda" else _run_log_softmax
    return _rowwise("out", out, x.shape, x.dtype, (x,), axis, run, backend)


def _backward_inputs(dy, y, axis):
    dtype = common_float_dtype(dy=dy, y=y)
    dy = as_float_array("dy", dy, min_ndim=1, dtype=dtype)
    y = as_float_array("y", y, min_ndim=1, dtype=dtype)
    if dy.shape != y.shape:
        raise ValueError(f"dy has shape {dy.shape} but y has shape {y.shape}; they must match")
    return dy, y, _check_axis(axis, y.ndim)


def softmax_backward(dy, y, axis=-1, *, out=None):
    """Gradient through softmax: dx = y * (dy - sum(dy * y, axis)), from the saved output ``y``."""
    backend = backend_of(dy=dy, y=y, out=out)
    dy, y, axis = _backward_inputs(dy, y, axis)
    run = _cuda_module().softmax_backward if backend == "cuda" else _run_softmax_backward
    return _rowwise("out", out, y.shape, y.dtype, (dy, y), axis, run, backend)


def log_softmax_backward(dy, y, axis=-1, *, out=None):
    """Gradient through log_softmax: dx = dy - exp(y) * sum(dy, axis), from the saved output ``y``."""
    backend = backend_of(dy=dy, y=y, out=out)
    dy, y, axis = _backward_inputs(dy, y, axis)
    run = _cuda_module().log_softmax_backward if backend == "cuda" else _run_log_softmax_backward
    return _rowwise("out", out, y.shape, y.dtype, (dy, y), axis, run, backend)


def _loss_inputs(name, x, target, weight, ignore_index, reduction):
    """Validate the arguments shared by the two losses; returns (x, target, w, ignore_index, hard)."""
    if not is_array(x):
        raise _type_error(name, x)
    if not is_array(target):
        raise _type_error("target", target)
    hard = target.dtype.kind in "iu"
    if hard:
        dtype = common_float_dtype(**{name: x, "weight": weight})
    elif target.dtype.kind == "f":
        dtype = common_float_dtype(**{name: x, "target": target, "weight": weight})
    else:
        raise TypeError(
            f"target has dtype {target.dtype}; expected integer class indices (N,) or class "
            f"probabilities (N, C) of the {name} dtype"
        )
    x = as_float_array(name, x, ndim=2, dtype=dtype)
    n, c = x.shape
    if c == 0:
        raise ValueError(f"{name} has shape {x.shape}: there must be at least one class (C >= 1)")
    ignore_index = check_int("ignore_index", ignore_index)
    check_reduction(reduction)
    if hard:
        target = as_index_array("target", target, length=n)
        check_labels("target", target, c, ignore_index)
    else:
        target = as_float_array("target", target, dtype=dtype)
        if target.shape != x.shape:
            raise ValueError(
                f"target has shape {target.shape}; probability targets must have the shape of "
                f"{name} {x.shape} (or pass integer class indices of shape ({n},))"
            )
    if weight is None:
        w = array_module(x).empty(0, dtype=dtype)
    else:
        w = as_float_array("weight", weight, dtype=dtype)
        if w.shape != (c,):
            raise ValueError(f"weight has shape {w.shape}, expected ({c},) (one weight per class)")
    return x, target, w, ignore_index, hard


def _hard_mean_denominator(target, w, ignore_index):
    """sum of w[y_i] over the rows whose target is not ignore_index (torch's "mean" divisor)."""
    valid = target != ignore_index
    if w.size == 0:
        return float(np.count_nonzero(valid))
    return float(w.astype(np.float64)[target[valid]].sum())


def _finish(total, loss_rows, scale, reduction, dtype):
    if reduction == "none":
        return loss_rows.astype(dtype)
    return dtype.type(total * scale)


def _device_scale(cuda_sx, target, w, ignore_index, reduction):
    """The loss and gradient scale of hard targets for the device kernels: 1.0 unless "mean", whose
    1 / denominator depends on the labels and is computed on the device into a 1-element float64 array (no
    read-back; 0 when the denominator is 0, as on the CPU)."""
    if reduction != "mean":
        return 1.0
    scale = device_module().empty(1, dtype=np.float64)
    cuda_sx.hard_mean_scale(target, w, ignore_index, scale)
    return scale


def _device_loss(cuda_sx, loss_rows, scale, reduction, dtype):
    """The device counterpart of _finish: the loss rows for "none", else sum(loss_rows) * scale reduced on
    the device into a 0-d device array of ``dtype``."""
    if reduction == "none":
        return loss_rows.astype(dtype)
    loss = device_module().empty(1, dtype=dtype)
    cuda_sx.total_loss(loss_rows, scale, loss)
    return loss.reshape(())


def softmax_cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                          reduction="mean", out=None):
    """Fused softmax + cross-entropy forward and backward: returns ``(loss, dlogits)``.

    torch.nn.functional.cross_entropy semantics (see the module docstring for the formulas and the
    documented differences). ``target``: integer class indices (N,) or probabilities (N, C) of the
    logits dtype; ``ignore_index`` applies to class indices only. ``out`` (N, C), logits dtype, receives
    dlogits and must not overlap ``logits``.
    """
    backend = backend_of(logits=logits, target=target, weight=weight, out=out)
    x, target, w, ignore_index, hard = _loss_inputs("logits", logits, target, weight, ignore_index, reduction)
    eps = check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)
    n, c = x.shape
    dtype = x.dtype
    g = out_array("out", out, (n, c), dtype, inputs=(x, target, w))
    if backend == "cuda":
        cuda_sx = _cuda_module()
        loss_rows = device_module().empty(n, dtype=np.float64)
        # the loss scale is also the gradient scale: 1 for "none"
        if hard:
            scale = _device_scale(cuda_sx, target, w, ignore_index, reduction)
            cuda_sx.xent_hard(x, target, w, eps, ignore_index, scale, g, loss_rows)
        else:
            scale = (1.0 / n if n else 0.0) if reduction == "mean" else 1.0
            cuda_sx.xent_soft(x, target, w, eps, scale, g, loss_rows)
        return _device_loss(cuda_sx, loss_rows, scale, reduction, dtype), g
    if hard:
        denom = _hard_mean_denominator(target, w, ignore_index) if reduction == "mean" else 1.0
    else:
        denom = float(n) if reduction == "mean" else 1.0
    scale = 0.0 if denom == 0.0 else 1.0 / denom
    grad_scale = 1.0 if reduction == "none" else scale
    loss_rows = np.empty(n, dtype=np.float64)
    refs = _refs_for(n, c, dtype)
    if hard:
        wsum = float(c) if w.size == 0 else float(w.astype(np.float64).sum())
        kernel = _xent_hard_parallel if _is_big(x) else _xent_hard_serial
        total = kernel(x, target, w, wsum, eps, ignore_index, grad_scale, g, refs, loss_rows)
    else:
        kernel = _xent_soft_parallel if _is_big(x) else _xent_soft_serial
        total = kernel(x, target, w, eps, grad_scale, g, refs, loss_rows)
    return _finish(total, loss_rows, scale, reduction, dtype), g


def nll_loss(logp, target, *, weight=None, ignore_index=-100, reduction="mean", out=None):
    """Negative log-likelihood of log-probabilities (N, C) for class indices (N,): ``(loss, dlogp)``.

    torch.nn.functional.nll_loss semantics: loss_i = -w_{y_i} logp[i, y_i], d loss_i / d logp[i, y_i] =
    -w_{y_i}, zero elsewhere; "mean" divides by the summed weight of the non-ignored targets (0 if none).
    """
    backend = backend_of(logp=logp, target=target, weight=weight, out=out)
    if is_array(target) and not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"target has dtype {target.dtype}; nll_loss takes integer class indices (N,)")
    x, target, w, ignore_index, _ = _loss_inputs("logp", logp, target, weight, ignore_index, reduction)
    n, c = x.shape
    g = out_array("out", out, (n, c), x.dtype, inputs=(x, target, w))
    if backend == "cuda":
        cuda_sx = _cuda_module()
        loss_rows = device_module().empty(n, dtype=np.float64)
        scale = _device_scale(cuda_sx, target, w, ignore_index, reduction)
        cuda_sx.nll(x, target, w, ignore_index, scale, g, loss_rows)
        return _device_loss(cuda_sx, loss_rows, scale, reduction, x.dtype), g
    denom = _hard_mean_denominator(target, w, ignore_index) if reduction == "mean" else 1.0
    scale = 0.0 if denom == 0.0 else 1.0 / denom
    grad_scale = 1.0 if reduction == "none" else scale
    loss_rows = np.empty(n, dtype=np.float64)
    kernel = _nll_parallel if _is_big(x) else _nll_serial
    total = kernel(x, target, w, ignore_index, grad_scale, g, loss_rows)
    return _finish(total, loss_rows, scale, reduction, x.dtype), g
