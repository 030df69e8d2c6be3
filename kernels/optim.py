"""Fused optimizer updates: one pass over flat parameter, gradient and state buffers per step.

Every update reads each element of each buffer once and writes each written buffer once, so a step costs
only the memory traffic the rule needs (Adam: param r/w, grad r, m r/w, v r/w = 7 x itemsize bytes per
element). The rules are torch.optim's single-tensor (``foreach=False``) implementations, operation for
operation, so a multi-step run agrees with PyTorch to float32 rounding. Notation, per element, with ``g``
the gradient, ``p`` the parameter, ``t >= 1`` the step count after incrementing and
``lerp(a, b, w) = a + w (b - a)``; every rule starts from ``g <- -g`` if ``maximize`` and, for L2
(coupled) weight decay ``lambda``, ``g <- g + lambda p``:

    SGD       b <- g (first step) or mu b + (1 - dampening) g;  d = g + mu b (Nesterov) or b;  p <- p - lr d
    Adagrad   s <- s + g^2;  p <- p - lr_t g / (sqrt(s) + eps),  lr_t = lr / (1 + (t - 1) lr_decay)
    RMSprop   v <- alpha v + (1 - alpha) g^2;  [centered: a <- lerp(a, g, 1 - alpha), v~ = v - a^2]
              q = sqrt(v~) + eps;  momentum: b <- mu b + g / q, p <- p - lr b;  else p <- p - lr g / q
    Adadelta  v <- rho v + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(v + eps) g;
              u <- rho u + (1 - rho) d^2;  p <- p - lr d
    Adam      m <- lerp(m, g, 1 - beta1);  v <- beta2 v + (1 - beta2) g^2;  [AMSGrad: v^ <- max(v^, v)]
              p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    AdamW     Adam with decoupled decay: p <- (1 - lr lambda) p first, g unchanged (Loshchilov & Hutter)
    NAdam     mu_t = beta1 (1 - 0.5 * 0.96^(t psi)),  P_t = mu_1 ... mu_t  (psi = momentum_decay);
              m, v as Adam;  q = sqrt(v / (1 - beta2^t)) + eps;
              p <- p - lr (1 - mu_t) / (1 - P_t) g / q - lr mu_{t+1} / (1 - P_t mu_{t+1}) m / q

This is Adam with the correct bias correction ``m / (1 - beta1^t)`` (Kingma & Ba, 2015), not the course
slides' ``m / (1 - beta1)``. NAdam follows Dozat (2016) with torch.optim.NAdam's momentum schedule.

Shapes: ``param`` may have any shape; ``grad`` and every state buffer must have exactly that shape, and
all are treated as one flat vector (a model keeps its parameters as views of one flat buffer so that a
single call updates them all). All floating arguments share one dtype, float32 or float64.

In place: the public functions update ``param`` and the state buffers in place -- that is their whole
purpose -- and return None (``nadam_update`` returns the new ``mu_product``, a host scalar). So every
written buffer must be C-contiguous, writeable and not overlap any other argument; ``grad`` is only read
(a non-contiguous ``grad`` is copied).

Scalars that depend only on the step (bias corrections, step sizes, lr_t) are computed once on the host in
float64 and handed to the kernel in the array dtype, as PyTorch's CPU kernels receive them; per-element
arithmetic keeps torch's order of operations (``lerp`` with torch's two-sided formula, ``v * beta2 +
((1 - beta2) g) g`` as ``mul_`` then ``addcmul_``, ``p + (-step) m / q`` as ``addcdiv_``). The one licence
taken is FMA contraction (FASTMATH's 'contract'): ``a * b + c`` may round once where torch rounds twice,
a difference of float32 rounding that leaves the result closer to the exact value.

Non-finite input is not an error: NaN/Inf in ``grad`` or the state propagate by IEEE arithmetic into the
parameter and the state of that element only, as in torch (AMSGrad's running maximum keeps a NaN, as
torch.maximum does; an infinite moment becomes NaN at the next lerp, inf + w (g - inf), as torch.lerp's).

Results are bitwise reproducible at any thread count: each element's update is independent and the
parallel split is into fixed chunks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._util import (
    FASTMATH,
    PARALLEL_MIN_ELEMENTS,
    as_float_array,
    backend_of,
    check_int,
    check_real,
    check_same_shape,
    common_float_dtype,
    is_device_array,
    may_share_memory,
    writable_float_array,
)

# Elements per parallel work item. A multiple of every vector width x unroll factor, so each element sits
# at the same offset within a vector in the chunked (parallel) loop as in the serial loop over [0, n):
# the two variants give bitwise the same result, and neither depends on the thread count.
_CHUNK = 1 << 14

# error_model="numpy": a float division by zero gives Inf/NaN as IEEE (and torch) say instead of raising,
# and without the per-element zero test the loops vectorise. The range loops count in uint64 for the same
# reason: a signed index could be negative, and the wraparound check Numba then emits blocks SIMD.
_JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy")


# --------------------------------------------------------------------------------------------------
# per-element scalar helpers (scalar-only code: a CUDA kernel can call them per thread later). ``h`` is the
# tuple of hyper-parameter scalars in the array dtype, built once per call by the public function.


@njit(**_JIT)
def _effective_grad(g, p, weight_decay, maximize):
    """torch's gradient pre-processing: negate to maximise, then add the L2 (coupled) decay term."""
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


@njit(**_JIT)
def _lerp(a, b, w, one_minus_w):
    """torch.lerp(a, b, w), with the side of the formula torch picks (exact at w = 0 and at w = 1).

    ``one_minus_w`` is 1 - w computed in the array dtype from the rounded w (``_lerp_weights``), as torch
    computes it inside its kernel.
    """
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * one_minus_w


@njit(**_JIT)
def _ema_sq(v, g, beta, one_minus_beta):
    """v * beta + (1 - beta) g^2 in torch's order: ``v.mul_(beta).addcmul_(g, g, value=1 - beta)``."""
    return v * beta + one_minus_beta * g * g


@njit(**_JIT)
def _sgd_elem(p, g, buf, h, maximize, nesterov, first_step, use_momentum):
    neg_lr, momentum, one_minus_dampening, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    if use_momentum:
        buf = g if first_step else buf * momentum + one_minus_dampening * g
        g = g + momentum * buf if nesterov else buf
    return p + neg_lr * g, buf


@njit(**_JIT)
def _adagrad_elem(p, g, s, h, maximize):
    neg_clr, eps, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    s = s + g * g
    return p + neg_clr * g / (math.sqrt(s) + eps), s


@njit(**_JIT)
def _rmsprop_elem(p, g, sq, ga, buf, h, maximize, centered, use_momentum):
    neg_lr, alpha, one_minus_alpha, lerp_one_minus_w, eps, momentum, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    sq = _ema_sq(sq, g, alpha, one_minus_alpha)
    if centered:
        ga = _lerp(ga, g, one_minus_alpha, lerp_one_minus_w)
        avg = math.sqrt(sq - ga * ga) + eps
    else:
        avg = math.sqrt(sq) + eps
    if use_momentum:
        buf = buf * momentum + g / avg
        return p + neg_lr * buf, sq, ga, buf
    return p + neg_lr * g / avg, sq, ga, buf


@njit(cache=True, fastmath=FASTMATH - {"arcp"}, error_model="numpy")
def _ieee_div(a, b):
    """a / b correctly rounded. With 'arcp', LLVM turns x / sqrt(y) into x * rsqrt(y) using the approximate
    vrsqrt instruction plus one Newton step, which is not correctly rounded and drifts from torch."""
    return a / b


@njit(**_JIT)
def _adadelta_elem(p, g, sq, acc, h, maximize):
    neg_lr, rho, one_minus_rho, eps, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    sq = _ema_sq(sq, g, rho, one_minus_rho)
    delta = _ieee_div(math.sqrt(acc + eps), math.sqrt(sq + eps)) * g
    acc = _ema_sq(acc, delta, rho, one_minus_rho)
    return p + neg_lr * delta, sq, acc


@njit(**_JIT)
def _adam_elem(p, g, m, v, vmax, h, maximize, amsgrad):
    """One Adam/AdamW element; ``decay`` = 1 - lr*wd (AdamW) or exactly 1 (``weight_decay`` is then L2)."""
    neg_step_size, w1, one_minus_w1, beta2, one_minus_beta2, bc2_sqrt, eps, decay, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    p = p * decay
    m = _lerp(m, g, w1, one_minus_w1)
    v = _ema_sq(v, g, beta2, one_minus_beta2)
    if amsgrad:
        # torch.maximum semantics: a NaN on either side wins
        if v > vmax or v != v:
            vmax = v
        denom = math.sqrt(vmax) / bc2_sqrt + eps
    else:
        denom = math.sqrt(v) / bc2_sqrt + eps
    return p + neg_step_size * m / denom, m, v, vmax


@njit(**_JIT)
def _nadam_elem(p, g, m, v, h, maximize):
    coef_g, coef_m, w1, one_minus_w1, beta2, one_minus_beta2, bc2, eps, decay, weight_decay = h
    g = _effective_grad(g, p, weight_decay, maximize)
    p = p * decay
    m = _lerp(m, g, w1, one_minus_w1)
    v = _ema_sq(v, g, beta2, one_minus_beta2)
    denom = math.sqrt(v / bc2) + eps
    p = p + coef_g * g / denom
    return p + coef_m * m / denom, m, v


# --------------------------------------------------------------------------------------------------
# CPU kernels. ``*_range`` updates elements [lo, hi) and is the serial variant (called with lo=0, hi=n);
# ``*_parallel`` runs it over fixed chunks in prange. Chunks are disjoint, so the parallel loop is race-free.
# An absent state buffer is passed as None: Numba prunes the ``is None`` branches at compile time, so each
# combination of buffers gets its own loop that touches only the memory it needs (an absent buffer's
# argument to the element helper is a dummy the helper ignores).


@njit(**_JIT)
def _sgd_range(p, g, buf, lo, hi, h, maximize, nesterov, first_step):
    if buf is None:
        for i in range(np.uint64(lo), np.uint64(hi)):
            p[i], _ = _sgd_elem(p[i], g[i], p[i], h, maximize, False, False, False)
    else:
        for i in range(np.uint64(lo), np.uint64(hi)):
            p[i], buf[i] = _sgd_elem(p[i], g[i], buf[i], h, maximize, nesterov, first_step, True)


@njit(**_JIT, parallel=True)
def _sgd_parallel(p, g, buf, h, maximize, nesterov, first_step):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _sgd_range(p, g, buf, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize, nesterov, first_step)


@njit(**_JIT)
def _adagrad_range(p, g, s, lo, hi, h, maximize):
    for i in range(np.uint64(lo), np.uint64(hi)):
        p[i], s[i] = _adagrad_elem(p[i], g[i], s[i], h, maximize)


@njit(**_JIT, parallel=True)
def _adagrad_parallel(p, g, s, h, maximize):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _adagrad_range(p, g, s, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize)


@njit(**_JIT)
def _rmsprop_range(p, g, sq, ga, buf, lo, hi, h, maximize):
    if ga is None:
        if buf is None:
            for i in range(np.uint64(lo), np.uint64(hi)):
                p[i], sq[i], _, _ = _rmsprop_elem(p[i], g[i], sq[i], sq[i], sq[i], h, maximize, False, False)
        else:
            for i in range(np.uint64(lo), np.uint64(hi)):
                p[i], sq[i], _, buf[i] = _rmsprop_elem(p[i], g[i], sq[i], sq[i], buf[i], h, maximize, False, True)
    else:
        if buf is None:
            for i in range(np.uint64(lo), np.uint64(hi)):
                p[i], sq[i], ga[i], _ = _rmsprop_elem(p[i], g[i], sq[i], ga[i], sq[i], h, maximize, True, False)
        else:
            for i in range(np.uint64(lo), np.uint64(hi)):
                p[i], sq[i], ga[i], buf[i] = _rmsprop_elem(p[i], g[i], sq[i], ga[i], buf[i], h, maximize, True,
                                                           True)


@njit(**_JIT, parallel=True)
def _rmsprop_parallel(p, g, sq, ga, buf, h, maximize):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _rmsprop_range(p, g, sq, ga, buf, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize)


@njit(**_JIT)
def _adadelta_range(p, g, sq, acc, lo, hi, h, maximize):
    for i in range(np.uint64(lo), np.uint64(hi)):
        p[i], sq[i], acc[i] = _adadelta_elem(p[i], g[i], sq[i], acc[i], h, maximize)


@njit(**_JIT, parallel=True)
def _adadelta_parallel(p, g, sq, acc, h, maximize):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _adadelta_range(p, g, sq, acc, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize)


@njit(**_JIT)
def _adam_range(p, g, m, v, vmax, lo, hi, h, maximize):
    if vmax is None:
        for i in range(np.uint64(lo), np.uint64(hi)):
            p[i], m[i], v[i], _ = _adam_elem(p[i], g[i], m[i], v[i], v[i], h, maximize, False)
    else:
        for i in range(np.uint64(lo), np.uint64(hi)):
            p[i], m[i], v[i], vmax[i] = _adam_elem(p[i], g[i], m[i], v[i], vmax[i], h, maximize, True)


@njit(**_JIT, parallel=True)
def _adam_parallel(p, g, m, v, vmax, h, maximize):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _adam_range(p, g, m, v, vmax, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize)


@njit(**_JIT)
def _nadam_range(p, g, m, v, lo, hi, h, maximize):
    for i in range(np.uint64(lo), np.uint64(hi)):
        p[i], m[i], v[i] = _nadam_elem(p[i], g[i], m[i], v[i], h, maximize)


@njit(**_JIT, parallel=True)
def _nadam_parallel(p, g, m, v, h, maximize):
    n = p.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        _nadam_range(p, g, m, v, c * _CHUNK, min(n, (c + 1) * _CHUNK), h, maximize)


# --------------------------------------------------------------------------------------------------
# validation


def _hyper(name, value, what, **bounds):
    """check_real with torch's wording in front ("Invalid learning rate: lr = -1 is out of range ...")."""
    try:
        return check_real(name, value, **bounds)
    except ValueError as e:
        raise ValueError(f"Invalid {what}: {e}") from None


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _require(name, buf, needed, reason):
    """A state buffer must be given exactly when the options use it (an ignored buffer hides a bug)."""
    if needed and buf is None:
        raise ValueError(f"{name} is required when {reason}")
    if not needed and buf is not None:
        raise ValueError(f"{name} was given but is not used unless {reason}; pass None")


def _prepare(param, grad, **state):
    """Validate the buffers of one update and return (dtype, flat param, flat grad, flat state...).

    ``param`` and the state buffers are written, so they must be C-contiguous and writeable (their flat
    views then alias the caller's memory); ``grad`` is read only. No two arguments may overlap: the
    kernel would read values it has already overwritten.
    """
    backend_of(param=param, grad=grad, **state)
    dtype = common_float_dtype(param=param, grad=grad, **state)
    param = writable_float_array("param", param, dtype=dtype)
    arrays = {"param": param, "grad": grad}
    for name, buf in state.items():
        if buf is not None:
            arrays[name] = writable_float_array(name, buf, shape=param.shape, dtype=dtype)
    check_same_shape("param", param, "grad", grad)
    names = list(arrays)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if may_share_memory(arrays[a], arrays[b]):
                raise ValueError(f"{b} overlaps {a}; every optimizer buffer must be a separate array")
    flat_grad = as_float_array("grad", grad, dtype=dtype).reshape(-1)
    flats = [None if state[k] is None else arrays[k].reshape(-1) for k in state]
    return (dtype, param.reshape(-1), flat_grad, *flats)


def _beta(name, value):
    return _hyper(name, value, f"beta parameter {name}", low=0.0, high=1.0, high_open=True)


def _lerp_weights(t, w):
    """(w, 1 - w) for ``_lerp`` in the array dtype: torch rounds w first, then forms 1 - w from it."""
    w = t(w)
    return w, t(1) - w


def _run(rule, serial, parallel, arrays, h, flags):
    """Device arrays: one launch of the CUDA kernel of ``rule`` (kernels/cuda/optim.py). NumPy arrays: the
    serial range kernel for small inputs (no OpenMP fork/join), the chunked parallel one otherwise."""
    n = arrays[0].size
    if is_device_array(arrays[0]):
        from kernels.cuda import optim as cuda_optim

        cuda_optim.run(rule, arrays, h, flags)
    elif n < PARALLEL_MIN_ELEMENTS:
        serial(*arrays, 0, n, h, *flags)
    else:
        parallel(*arrays, h, *flags)


# --------------------------------------------------------------------------------------------------
# public functions


def sgd_update(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, maximize=False, first_step=False):
    """One torch.optim.SGD step, IN PLACE on ``param`` (and ``momentum_buffer``); returns None.

    ``momentum_buffer`` is required iff ``momentum != 0``. torch starts the buffer as a copy of the first
    (decayed) gradient, without dampening: pass ``first_step=True`` on the first step to do that (the
    buffer's previous contents are then ignored, so ``np.empty`` is fine; without momentum the flag has no
    effect). Nesterov needs momentum > 0 and zero dampening, as in torch.
    """
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    momentum = _hyper("momentum", momentum, "momentum value", low=0.0)
    dampening = check_real("dampening", dampening)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    nesterov, maximize = _flag("nesterov", nesterov), _flag("maximize", maximize)
    first_step = _flag("first_step", first_step)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"Nesterov momentum requires a momentum and zero dampening (nesterov=True, "
                         f"momentum = {momentum}, dampening = {dampening})")
    _require("momentum_buffer", momentum_buffer, momentum != 0, "momentum != 0")
    dtype, p, g, buf = _prepare(param, grad, momentum_buffer=momentum_buffer)
    t = dtype.type
    h = (t(-lr), t(momentum), t(1.0 - dampening), t(weight_decay))
    _run("sgd", _sgd_range, _sgd_parallel, (p, g, buf), h, (maximize, nesterov, first_step))


def adagrad_update(param, grad, state_sum, *, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                   maximize=False):
    """One torch.optim.Adagrad step, IN PLACE on ``param`` and ``state_sum``; returns None.

    ``step`` is this step's 1-based count t (after incrementing). ``state_sum`` starts at torch's
    ``initial_accumulator_value`` (0 by default): the caller allocates and fills it.
    """
    step = check_int("step", step, low=1)
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    lr_decay = _hyper("lr_decay", lr_decay, "lr_decay value", low=0.0)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    eps = _hyper("eps", eps, "epsilon value", low=0.0)
    maximize = _flag("maximize", maximize)
    _require("state_sum", state_sum, True, "using Adagrad")
    dtype, p, g, s = _prepare(param, grad, state_sum=state_sum)
    t = dtype.type
    clr = lr / (1.0 + (step - 1) * lr_decay)
    h = (t(-clr), t(eps), t(weight_decay))
    _run("adagrad", _adagrad_range, _adagrad_parallel, (p, g, s), h, (maximize,))


def rmsprop_update(param, grad, square_avg, *, grad_avg=None, momentum_buffer=None, lr=1e-2, alpha=0.99,
                   eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    """One torch.optim.RMSprop step, IN PLACE on ``param`` and the state buffers; returns None.

    ``grad_avg`` is required iff ``centered``, ``momentum_buffer`` iff ``momentum > 0``; all state starts at
    zero (torch's initial state).
    """
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    alpha = _hyper("alpha", alpha, "alpha value", low=0.0)
    eps = _hyper("eps", eps, "epsilon value", low=0.0)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    momentum = _hyper("momentum", momentum, "momentum value", low=0.0)
    centered, maximize = _flag("centered", centered), _flag("maximize", maximize)
    _require("square_avg", square_avg, True, "using RMSprop")
    _require("grad_avg", grad_avg, centered, "centered=True")
    _require("momentum_buffer", momentum_buffer, momentum > 0, "momentum > 0")
    dtype, p, g, sq, ga, buf = _prepare(param, grad, square_avg=square_avg, grad_avg=grad_avg,
                                        momentum_buffer=momentum_buffer)
    t = dtype.type
    # grad_avg.lerp_(grad, 1 - alpha) rounds its weight to the dtype; square_avg.mul_(alpha) uses alpha itself
    w, one_minus_w = _lerp_weights(t, 1.0 - alpha)
    h = (t(-lr), t(alpha), w, one_minus_w, t(eps), t(momentum), t(weight_decay))
    _run("rmsprop", _rmsprop_range, _rmsprop_parallel, (p, g, sq, ga, buf), h, (maximize,))


def adadelta_update(param, grad, square_avg, acc_delta, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                    maximize=False):
    """One torch.optim.Adadelta step, IN PLACE on ``param``, ``square_avg`` and ``acc_delta``; returns None.

    Both state buffers start at zero (torch's initial state).
    """
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    rho = _hyper("rho", rho, "rho value", low=0.0, high=1.0)
    eps = _hyper("eps", eps, "epsilon value", low=0.0)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    maximize = _flag("maximize", maximize)
    _require("square_avg", square_avg, True, "using Adadelta")
    _require("acc_delta", acc_delta, True, "using Adadelta")
    dtype, p, g, sq, acc = _prepare(param, grad, square_avg=square_avg, acc_delta=acc_delta)
    t = dtype.type
    h = (t(-lr), t(rho), t(1.0 - rho), t(eps), t(weight_decay))
    _run("adadelta", _adadelta_range, _adadelta_parallel, (p, g, sq, acc), h, (maximize,))


def _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, amsgrad, max_exp_avg_sq,
          maximize, decoupled):
    step = check_int("step", step, low=1)
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    eps = _hyper("eps", eps, "epsilon value", low=0.0)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    amsgrad, maximize = _flag("amsgrad", amsgrad), _flag("maximize", maximize)
    _require("exp_avg", exp_avg, True, "using Adam")
    _require("exp_avg_sq", exp_avg_sq, True, "using Adam")
    _require("max_exp_avg_sq", max_exp_avg_sq, amsgrad, "amsgrad=True")
    dtype, p, g, m, v, vmax = _prepare(param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                                       max_exp_avg_sq=max_exp_avg_sq)
    t = dtype.type
    step_size = lr / (1.0 - beta1**step)
    bc2_sqrt = (1.0 - beta2**step) ** 0.5
    # decay = 1 exactly leaves p untouched, so one kernel serves both coupled (Adam) and decoupled (AdamW)
    decay, l2 = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    h = (t(-step_size), *_lerp_weights(t, 1.0 - beta1), t(beta2), t(1.0 - beta2), t(bc2_sqrt), t(eps), t(decay),
         t(l2))
    _run("adam", _adam_range, _adam_parallel, (p, g, m, v, vmax), h, (maximize,))


def adam_update(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, amsgrad=False, max_exp_avg_sq=None, maximize=False):
    """One torch.optim.Adam step, IN PLACE on ``param``, ``exp_avg``, ``exp_avg_sq`` (and
    ``max_exp_avg_sq``); returns None.

    ``step`` is this step's 1-based count t (after incrementing) used in the bias corrections 1 - beta^t.
    ``weight_decay`` is L2 (added to the gradient). ``max_exp_avg_sq`` is required iff ``amsgrad``. All state
    starts at zero.
    """
    _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, amsgrad, max_exp_avg_sq,
          maximize, decoupled=False)


def adamw_update(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=1e-2, amsgrad=False, max_exp_avg_sq=None, maximize=False):
    """One torch.optim.AdamW step, IN PLACE on ``param`` and the state buffers; returns None.

    As ``adam_update`` but with decoupled weight decay: ``param *= 1 - lr * weight_decay`` before the Adam
    update, and the gradient is left alone.
    """
    _adam(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, amsgrad, max_exp_avg_sq,
          maximize, decoupled=True)


def nadam_update(param, grad, exp_avg, exp_avg_sq, *, step, mu_product, lr=2e-3, beta1=0.9, beta2=0.999,
                 eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    """One torch.optim.NAdam step, IN PLACE on ``param``, ``exp_avg`` and ``exp_avg_sq``; returns the new
    ``mu_product``.

    ``mu_product`` is the product mu_1 ... mu_{t-1} of the previous steps' momentum coefficients (1.0
    before the first step); the return value, mu_1 ... mu_t, goes into the next call. It stays a float64
    host scalar (torch keeps it in a float32 tensor, a difference of float32 rounding).
    """
    step = check_int("step", step, low=1)
    mu_product = check_real("mu_product", mu_product, low=0.0, high=1.0)
    lr = _hyper("lr", lr, "learning rate", low=0.0)
    beta1, beta2 = _beta("beta1", beta1), _beta("beta2", beta2)
    eps = _hyper("eps", eps, "epsilon value", low=0.0)
    weight_decay = _hyper("weight_decay", weight_decay, "weight_decay value", low=0.0)
    momentum_decay = _hyper("momentum_decay", momentum_decay, "momentum_decay value", low=0.0)
    decoupled = _flag("decoupled_weight_decay", decoupled_weight_decay)
    maximize = _flag("maximize", maximize)
    _require("exp_avg", exp_avg, True, "using NAdam")
    _require("exp_avg_sq", exp_avg_sq, True, "using NAdam")
    dtype, p, g, m, v = _prepare(param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    t = dtype.type
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product *= mu
    coef_g = -lr * (1.0 - mu) / (1.0 - mu_product)
    coef_m = (-lr * mu_next) / (1.0 - mu_product * mu_next)
    decay, l2 = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    h = (t(coef_g), t(coef_m), *_lerp_weights(t, 1.0 - beta1), t(beta2), t(1.0 - beta2), t(1.0 - beta2**step),
         t(eps), t(decay), t(l2))
    _run("nadam", _nadam_range, _nadam_parallel, (p, g, m, v), h, (maximize,))
    return mu_product
