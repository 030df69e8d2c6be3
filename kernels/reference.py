"""Float64 NumPy oracles: forward and backward of every op in ``kernels``.

This module is the single source of truth the tests compare the compiled kernels against. It is written
for clarity, not speed: plain NumPy, everything promoted to float64, each formula in the most direct
form of its definition (torch semantics where the op has a PyTorch counterpart). Gradients here are
derived independently of the kernels' fused formulas (usually by the chain rule through log_softmax or
sigmoid), and are themselves checked against central finite differences in tests/test_reference.py.

Conventions: row vectors, ``y = x @ w + b`` with ``w`` of shape (in_features, out_features); backward
functions take ``(dy, *saved)``.
"""

from __future__ import annotations

import math

import numpy as np

_f64 = np.float64


def _as64(a):
    return None if a is None else np.asarray(a, dtype=_f64)


def _reduce(per_elem, reduction, denom):
    """Apply a torch-style reduction; ``denom`` is the divisor of "mean"."""
    if reduction == "none":
        return per_elem, 1.0
    if reduction == "sum":
        return per_elem.sum(), 1.0
    if reduction == "mean":
        # An empty (or fully ignored) batch reduces to 0 with a zero gradient, never 0/0 = NaN.
        scale = 0.0 if denom == 0 else 1.0 / denom
        return per_elem.sum() * scale, scale
    raise ValueError(reduction)


# --------------------------------------------------------------------------------------------------
# softmax family


def softmax(x, axis=-1):
    x = _as64(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    """Gradient of softmax given the upstream ``dy`` and the saved output ``y``."""
    dy, y = _as64(dy), _as64(y)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    x = _as64(x)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def log_softmax_backward(dy, y, axis=-1):
    """Gradient of log_softmax given ``dy`` and the saved output ``y`` (log-probabilities)."""
    dy, y = _as64(dy), _as64(y)
    return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)


def logsumexp(x, axis=-1):
    x = _as64(x)
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


# --------------------------------------------------------------------------------------------------
# losses


def nll_loss(logp, target, *, weight=None, ignore_index=-100, reduction="mean"):
    """torch.nn.functional.nll_loss on log-probabilities (N, C) with class indices (N,).

    Returns ``(loss, dlogp)``; for reduction "none" ``loss`` has shape (N,) and row i of ``dlogp`` is the
    gradient of ``loss[i]``.
    """
    logp = _as64(logp)
    n, c = logp.shape
    target = np.asarray(target, dtype=np.int64)
    w = np.ones(c) if weight is None else _as64(weight)
    valid = target != ignore_index
    safe_t = np.where(valid, target, 0)
    wt = np.where(valid, w[safe_t], 0.0)
    per = -wt * logp[np.arange(n), safe_t]
    loss, scale = _reduce(per, reduction, wt.sum())
    d = np.zeros_like(logp)
    d[np.arange(n), safe_t] = -wt * scale
    return loss, d


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """torch.nn.functional.cross_entropy for logits (N, C).

    ``target`` is either class indices (N,) of an integer dtype or class probabilities (N, C). Returns
    ``(loss, dlogits)`` with dlogits = d loss / d logits (for "none": row i is d loss[i] / d logits[i]).
    The gradient is formed as d loss / d logp pushed through log_softmax_backward.
    """
    x = _as64(logits)
    n, c = x.shape
    eps = float(label_smoothing)
    logp = log_softmax(x)
    w = np.ones(c) if weight is None else _as64(weight)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.integer):
        target = target.astype(np.int64)
        valid = target != ignore_index
        safe_t = np.where(valid, target, 0)
        wt = np.where(valid, w[safe_t], 0.0)
        rows = np.arange(n)
        # per-row loss = (1 - eps) * nll_i + (eps / C) * smooth_i, both zero on ignored rows
        nll = -wt * logp[rows, safe_t]
        per = (1.0 - eps) * nll
        if eps > 0:
            # only with smoothing: a masked (-inf) logit would otherwise give 0 * inf = NaN, as torch does not
            per = per + (eps / c) * np.where(valid, -(logp * w).sum(axis=1), 0.0)
        # torch normalises both terms of "mean" by the summed weight of the non-ignored targets
        loss, scale = _reduce(per, reduction, wt.sum())
        dlogp = np.zeros_like(logp)
        dlogp[rows, safe_t] = -(1.0 - eps) * wt
        dlogp -= (eps / c) * np.where(valid, 1.0, 0.0)[:, None] * w[None, :]
    else:
        t = _as64(target)
        if eps > 0:
            t = t * (1.0 - eps) + eps / c
        per = -(logp * t * w).sum(axis=1)
        # probability targets: "mean" divides by N whatever the weights (torch semantics)
        loss, scale = _reduce(per, reduction, n)
        dlogp = -(t * w)
    return loss, log_softmax_backward(dlogp * scale, logp)


def _log_sigmoid(x):
    # log(sigmoid(x)) = -log(1 + exp(-x)), stable for both signs
    return -np.logaddexp(0.0, -x)


def sigmoid(x):
    x = _as64(x)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def binary_cross_entropy_with_logits(x, target, *, weight=None, pos_weight=None, reduction="mean"):
    """torch.nn.functional.binary_cross_entropy_with_logits; returns (loss, dx).

    loss = -w * (pos_weight * t * log sigmoid(x) + (1 - t) * log sigmoid(-x)); ``weight`` broadcasts
    against x, ``pos_weight`` against the last axis.
    """
    x, t = _as64(x), _as64(target)
    w = 1.0 if weight is None else _as64(weight)
    pw = 1.0 if pos_weight is None else _as64(pos_weight)
    per = -w * (pw * t * _log_sigmoid(x) + (1.0 - t) * _log_sigmoid(-x))
    per = np.broadcast_to(per, x.shape)
    loss, scale = _reduce(per, reduction, x.size)
    # d/dx log sigmoid(x) = sigmoid(-x), d/dx log sigmoid(-x) = -sigmoid(x)
    dx = -w * (pw * t * sigmoid(-x) - (1.0 - t) * sigmoid(x)) * scale
    return loss, np.broadcast_to(dx, x.shape).copy()


def mse_loss(x, target, *, reduction="mean"):
    x, t = _as64(x), _as64(target)
    d = x - t
    loss, scale = _reduce(d * d, reduction, x.size)
    return loss, 2.0 * d * scale


def l1_loss(x, target, *, reduction="mean"):
    """Mean absolute error; the gradient at x == target is 0 (torch's sign convention)."""
    x, t = _as64(x), _as64(target)
    d = x - t
    loss, scale = _reduce(np.abs(d), reduction, x.size)
    return loss, np.sign(d) * scale


def entropy(p, base=math.e, axis=-1):
    """Shannon entropy -sum p log p (0 log 0 = 0), in the given logarithm base."""
    p = _as64(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / math.log(base)


# --------------------------------------------------------------------------------------------------
# activations (backward from the saved *output* y, as the fused linear layer saves it)

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")


def activation(x, kind, negative_slope=0.01):
    x = _as64(x)
    if kind in (None, "identity"):
        return x.copy()
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, negative_slope * x)
    if kind == "sigmoid":
        return sigmoid(x)
    if kind == "tanh":
        return np.tanh(x)
    raise ValueError(kind)


def activation_backward(dy, y, kind, negative_slope=0.01):
    """d activation given upstream dy and the saved output y (relu'(0) = 0, as torch)."""
    dy, y = _as64(dy), _as64(y)
    if kind in (None, "identity"):
        return dy.copy()
    if kind == "relu":
        return np.where(y > 0, dy, 0.0)
    if kind == "leaky_relu":
        return np.where(y > 0, dy, negative_slope * dy)
    if kind == "sigmoid":
        return dy * y * (1.0 - y)
    if kind == "tanh":
        return dy * (1.0 - y * y)
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------------
# linear layer


def linear_forward(x, w, b=None, activation_kind=None, negative_slope=0.01):
    """y = act(x @ w + b), x (N, in), w (in, out), b (out,)."""
    z = _as64(x) @ _as64(w)
    if b is not None:
        z = z + _as64(b)
    return activation(z, activation_kind, negative_slope)


def linear_backward(dy, x, w, y, activation_kind=None, negative_slope=0.01, has_bias=True):
    """Returns (dx, dw, db) for y = act(x @ w + b), given the saved x, w and output y."""
    dz = activation_backward(dy, y, activation_kind, negative_slope)
    dx = dz @ _as64(w).T
    dw = _as64(x).T @ dz
    db = dz.sum(axis=0) if has_bias else None
    return dx, dw, db


# --------------------------------------------------------------------------------------------------
# dropout: Philox4x32-10 keyed by the seed, addressed by (element index, call counter)

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    """Philox4x32-10 (Salmon et al. 2011) in plain Python integers: 4 counter words, 2 key words."""
    c0, c1, c2, c3 = (int(v) & _MASK32 for v in ctr)
    k0, k1 = (int(v) & _MASK32 for v in key)
    for r in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            ((p1 >> 32) ^ c1 ^ k0) & _MASK32,
            p1 & _MASK32,
            ((p0 >> 32) ^ c3 ^ k1) & _MASK32,
            p0 & _MASK32,
        )
        if r < 9:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def philox_words(n, seed, counter):
    """The first ``n`` 32-bit words of the dropout stream for (seed, counter), as uint64 values.

    Element i uses word ``i % 4`` of Philox4x32-10 at counter (lo(i // 4), hi(i // 4), lo(counter),
    hi(counter)) with key (lo(seed), hi(seed)).
    """
    seed, counter = int(seed), int(counter)
    key = (seed & _MASK32, (seed >> 32) & _MASK32)
    out = np.empty(n, dtype=np.uint64)
    for block in range((n + 3) // 4):
        words = philox4x32_10((block & _MASK32, block >> 32, counter & _MASK32, (counter >> 32) & _MASK32), key)
        for lane in range(4):
            i = 4 * block + lane
            if i < n:
                out[i] = words[lane]
    return out


def dropout_threshold(p):
    """Element i is kept iff its 32-bit word >= floor(p * 2**32): keep probability 1 - p."""
    return int(math.floor(float(p) * 2.0**32))


def dropout_mask(shape, p, seed, counter):
    n = int(np.prod(shape))
    return (philox_words(n, seed, counter) >= dropout_threshold(p)).reshape(shape)


def dropout_forward(x, p, seed, counter):
    """Inverted dropout: y = x * mask / (1 - p)."""
    x = _as64(x)
    return np.where(dropout_mask(x.shape, p, seed, counter), x / (1.0 - p), 0.0)


def dropout_backward(dy, p, seed, counter):
    return dropout_forward(dy, p, seed, counter)


# --------------------------------------------------------------------------------------------------
# batch normalisation over (N, C), torch.nn.BatchNorm1d semantics


def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, *, momentum=0.1, eps=1e-5):
    """Returns (y, new_running_mean, new_running_var, mean, invstd).

    Normalises with the biased batch variance; the running variance is updated with the unbiased one:
    running = (1 - momentum) * running + momentum * batch.
    """
    x = _as64(x)
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    y = xhat * (1.0 if gamma is None else _as64(gamma)) + (0.0 if beta is None else _as64(beta))
    new_rm = new_rv = None
    if running_mean is not None:
        new_rm = (1.0 - momentum) * _as64(running_mean) + momentum * mean
    if running_var is not None:
        new_rv = (1.0 - momentum) * _as64(running_var) + momentum * var * n / (n - 1)
    return y, new_rm, new_rv, mean, invstd


def batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, *, eps=1e-5):
    x = _as64(x)
    xhat = (x - _as64(running_mean)) / np.sqrt(_as64(running_var) + eps)
    return xhat * (1.0 if gamma is None else _as64(gamma)) + (0.0 if beta is None else _as64(beta))


def batchnorm_backward(dy, x, gamma, mean, invstd):
    """Training-mode backward: returns (dx, dgamma, dbeta) through the batch statistics."""
    dy, x = _as64(dy), _as64(x)
    mean, invstd = _as64(mean), _as64(invstd)
    g = 1.0 if gamma is None else _as64(gamma)
    n = x.shape[0]
    xhat = (x - mean) * invstd
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * g
    dx = invstd / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------------------------------
# optimizers: torch.optim update rules, one step, pure functions on float64 copies.
# ``state`` is a dict of arrays (and "step", an int); each function returns (new_param, new_state).


def _copy_state(state):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def sgd_step(param, grad, state, *, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
             maximize=False):
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    if maximize:
        g = -g
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        if s.get("momentum_buffer") is None:
            buf = g.copy()
        else:
            buf = momentum * s["momentum_buffer"] + (1.0 - dampening) * g
        s["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, s


def adagrad_step(param, grad, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 initial_accumulator_value=0.0, maximize=False):
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    if maximize:
        g = -g
    s.setdefault("sum", np.full_like(p, initial_accumulator_value))
    s["step"] = s.get("step", 0) + 1
    if weight_decay:
        g = g + weight_decay * p
    clr = lr / (1.0 + (s["step"] - 1) * lr_decay)
    s["sum"] = s["sum"] + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + eps), s


def rmsprop_step(param, grad, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    if maximize:
        g = -g
    s["step"] = s.get("step", 0) + 1
    if weight_decay:
        g = g + weight_decay * p
    sq = alpha * s.get("square_avg", np.zeros_like(p)) + (1.0 - alpha) * g * g
    s["square_avg"] = sq
    if centered:
        ga = alpha * s.get("grad_avg", np.zeros_like(p)) + (1.0 - alpha) * g
        s["grad_avg"] = ga
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum * s.get("momentum_buffer", np.zeros_like(p)) + g / avg
        s["momentum_buffer"] = buf
        return p - lr * buf, s
    return p - lr * g / avg, s


def adadelta_step(param, grad, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    if maximize:
        g = -g
    s["step"] = s.get("step", 0) + 1
    if weight_decay:
        g = g + weight_decay * p
    sq = rho * s.get("square_avg", np.zeros_like(p)) + (1.0 - rho) * g * g
    acc = s.get("acc_delta", np.zeros_like(p))
    delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
    s["square_avg"] = sq
    s["acc_delta"] = rho * acc + (1.0 - rho) * delta * delta
    return p - lr * delta, s


def adam_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              maximize=False, decoupled=False):
    """Adam (Kingma & Ba, with the bias correction 1 - beta^t); ``decoupled=True`` is AdamW."""
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    b1, b2 = betas
    if maximize:
        g = -g
    s["step"] = t = s.get("step", 0) + 1
    if weight_decay:
        if decoupled:
            p = p * (1.0 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = b1 * s.get("exp_avg", np.zeros_like(p)) + (1.0 - b1) * g
    v = b2 * s.get("exp_avg_sq", np.zeros_like(p)) + (1.0 - b2) * g * g
    s["exp_avg"], s["exp_avg_sq"] = m, v
    if amsgrad:
        v = np.maximum(s.get("max_exp_avg_sq", np.zeros_like(p)), v)
        s["max_exp_avg_sq"] = v
    m_hat = m / (1.0 - b1**t)
    v_hat = v / (1.0 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), s


def adamw_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
               maximize=False):
    return adam_step(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                     amsgrad=amsgrad, maximize=maximize, decoupled=True)


def nadam_step(param, grad, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
    """NAdam (Dozat 2016) with torch.optim.NAdam's momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))."""
    p, g, s = _as64(param).copy(), _as64(grad).copy(), _copy_state(state)
    b1, b2 = betas
    if maximize:
        g = -g
    s["step"] = t = s.get("step", 0) + 1
    if weight_decay:
        if decoupled_weight_decay:
            p = p * (1.0 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    mu = b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    mu_product = s.get("mu_product", 1.0) * mu
    s["mu_product"] = mu_product
    m = b1 * s.get("exp_avg", np.zeros_like(p)) + (1.0 - b1) * g
    v = b2 * s.get("exp_avg_sq", np.zeros_like(p)) + (1.0 - b2) * g * g
    s["exp_avg"], s["exp_avg_sq"] = m, v
    denom = np.sqrt(v / (1.0 - b2**t)) + eps
    p = p - lr * (1.0 - mu) / (1.0 - mu_product) * g / denom
    p = p - lr * mu_next / (1.0 - mu_product * mu_next) * m / denom
    return p, s
