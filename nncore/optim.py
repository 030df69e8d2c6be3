"""Optimizers with torch.optim's names, arguments and update rules, over nncore's flat parameter buffers.

Each optimizer is a thin driver around one fused update of ``kernels/optim.py`` (per element ``g`` the
gradient, ``p`` the parameter, ``t`` the step count of the parameter group; see that module for every rule):

    SGD       b <- g (t = 1) or mu b + (1 - dampening) g;  p <- p - lr (g + mu b if Nesterov else b)
    Adagrad   s <- s + g^2;  p <- p - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)
    RMSprop   v <- alpha v + (1 - alpha) g^2;  p <- p - lr g / (sqrt(v) + eps)  (+ centered, momentum)
    Adadelta  v <- rho v + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(v + eps) g;  u <- rho u + (1 - rho) d^2
    Adam      m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
              p <- p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)   (Kingma & Ba)
    AdamW     Adam with decoupled decay p <- (1 - lr lambda) p (Loshchilov & Hutter);  NAdam: Dozat (2016)

Why it is fast: a model keeps every parameter as a view of one flat buffer (``nncore.parameter``). At
construction each parameter group finds the span of that buffer its parameters cover (``flat_span``); the
group's state buffers are then flat arrays of the span's length and ``step()`` is ONE kernel call over the
span. Groups whose parameters are not one consecutive span (parameters of separately built layers, or a
subset in another order) fall back to one call per parameter with per-parameter state: same numbers, more
calls. Build the optimizer after the model is assembled (a container repacks its children's parameters
into new buffers; an optimizer built before that would update the old ones).

State is allocated lazily on the first ``step()`` in the array module of the parameters (NumPy or CuPy).
Hyper-parameters are read from ``param_groups`` at every step, so a schedule may change ``group["lr"]``
between steps; they are validated at construction (torch's messages) and again by the kernel. The options
that decide which state buffers exist (SGD/RMSprop momentum on or off, ``centered``, ``amsgrad``) are fixed
by the first step.

Gradients: nncore's ``backward`` WRITES gradients, it does not accumulate into them as torch does, so
``zero_grad()`` is not needed in nncore's own loop; it exists for torch-style loops (and to accumulate
gradients by hand) and costs one memset per flat span.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from kernels.optim import (
    adadelta_update,
    adagrad_update,
    adam_update,
    adamw_update,
    nadam_update,
    rmsprop_update,
    sgd_update,
)

from ._threads import one_thread_for
from .device import array_module, device_of, is_device_array, to_device, to_numpy
from .parameter import Parameter, flat_span

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam", "clip_grad_norm_"]


# --------------------------------------------------------------------------------------------------
# validation with torch.optim's wording ("Invalid learning rate: -1.0")


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return value


def _check(value, what, name, low=0.0, high=None, high_open=False):
    """Raise ValueError(f"Invalid {what}: {value}") unless low <= value (<= or <) high; NaN is invalid."""
    v = float(_real(name, value))
    ok = v >= low and (high is None or (v < high if high_open else v <= high))
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _check(b, f"beta parameter at index {i}", f"betas[{i}]", high=1.0, high_open=True)


# --------------------------------------------------------------------------------------------------
# base class


class _GroupState:
    """Per-group state: the flat span (or None), the step count, and the update units (data, grad,
    {buffer name: array}) -- one unit over the span, or one per parameter in the fallback."""

    __slots__ = ("span", "owner", "step", "units", "mu_product")

    def __init__(self, params):
        self.span = flat_span(params)
        self.owner = params[0]._flat  # the flat buffer the span is a view of: Module.to replaces it
        self.reset()

    def reset(self):
        self.step = 0
        self.units = None
        self.mu_product = 1.0


class Optimizer:
    """Base class: parameter groups, lazy state, ``step``, ``zero_grad`` and the state dict.

    ``params``: an iterable of ``Parameter``, or of dicts ``{"params": [...], **overrides}`` (parameter
    groups, as torch.optim). ``param_groups`` is a list of dicts holding "params" and every hyper-parameter.

    nncore's ``backward`` WRITES gradients (it does not accumulate like torch's), so ``zero_grad()`` is only
    needed for torch-style loops or hand-made accumulation; it costs one memset per flat span.

    State dict format (differs from torch's per-parameter state, because state is per flat span)::

        {"state": {group_index: {"step": int, <buffer name>: numpy array, ..., ["mu_product": float]}},
         "param_groups": [{<hyper-parameters>, "params": [global parameter indices]}]}

    Each buffer is one flat host (NumPy) array per group covering the group's parameters in order, whatever
    the memory layout (flat span or per-parameter), ready for an .npz checkpoint; the rest is plain Python
    values. A group that has not stepped yet has no entry in "state".
    """

    _has_mu_product = False  # NAdam's product of momentum coefficients, a host scalar per group

    def __init__(self, params, defaults):
        if isinstance(params, (Parameter, dict)):
            raise TypeError("params argument given to the optimizer should be an iterable of Parameters or dicts, "
                            f"but got {type(params).__name__}")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError("params argument given to the optimizer should be an iterable of Parameters or dicts, "
                            f"but got {type(params).__name__}") from None
        self._validate(defaults)
        self.defaults = defaults
        self.param_groups = []
        self._states = []
        self._numel = 0  # the largest group: bounds the size of one kernel call of step()
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group ``{"params": [...], **overrides}``; missing hyper-parameters come from the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of a set changes between runs; use a list instead")
        params = [params] if isinstance(params, Parameter) else list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer can only optimize Parameters, but one of the params is "
                                f"{type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        if len({p.dtype for p in params}) > 1:
            raise TypeError(f"all parameters of a group must have one dtype, got "
                            f"{sorted({str(p.dtype) for p in params})}")
        group = {**self.defaults, **param_group, "params": params}
        self._validate(group)
        self.param_groups.append(group)
        self._states.append(_GroupState(params))
        self._numel = max(self._numel, sum(p.size for p in params))

    # ---- per-optimizer hooks

    def _validate(self, group):
        """Check the hyper-parameters of a group (or the defaults) with torch's messages."""
        raise NotImplementedError

    def _buffer_names(self, group):
        """The state buffers these options use, named as torch.optim names them."""
        raise NotImplementedError

    def _initial_value(self, group, name):
        return 0.0

    def _update(self, group, st, data, grad, bufs):
        """One kernel call on (data, grad) with the buffers ``bufs``; ``st.step`` is already incremented."""
        raise NotImplementedError

    # ---- stepping

    def _allocate(self, group, st):
        params = group["params"]
        xp = array_module(params[0].data)
        dtype = params[0].dtype
        names = self._buffer_names(group)

        def buffers(shape):
            return {k: xp.full(shape, self._initial_value(group, k), dtype=dtype) for k in names}

        if st.span is not None:
            st.units = [(st.span[0], st.span[1], buffers(st.span[0].shape))]
        else:
            st.units = [(p.data, p.grad, buffers(p.shape)) for p in params]

    def _follow(self, group, st):
        """The group's parameters were moved (Module.to rebinds them to a copy of their flat buffer on the
        other device): take the new span, and move the state buffers to where the parameters now are."""
        params = group["params"]
        span = flat_span(params)
        views = [span] if span is not None else [(p.data, p.grad) for p in params]
        if st.units is not None:
            if len(views) != len(st.units) or any(v[0].shape != u[0].shape for v, u in zip(views, st.units)):
                raise RuntimeError("the optimizer's parameters were repacked into another layout after its first "
                                   "step; build the optimizer after the model")
            device = device_of(params[0].data)
            st.units = [(d, g, {k: to_device(b, device) for k, b in u[2].items()})
                        for (d, g), u in zip(views, st.units)]
        st.span, st.owner = span, params[0]._flat

    def _step_group(self, group, st):
        for data, grad, bufs in st.units:
            self._update(group, st, data, grad, bufs)

    def step(self, closure=None):
        """One update of every parameter from its current gradient; returns None."""
        if closure is not None:
            raise TypeError("nncore optimizers do not support a closure: compute the loss and gradients first, "
                            "then call step()")
        with one_thread_for(self._numel):  # the update sits between GEMMs of a training loop: nncore/_threads.py
            for group, st in zip(self.param_groups, self._states):
                if group["params"][0]._flat is not st.owner:
                    self._follow(group, st)
                if st.units is None:
                    self._allocate(group, st)
                st.step += 1
                self._step_group(group, st)

    def zero_grad(self):
        """Set every gradient to zero (one fill per flat span). Not needed with nncore's backward, which
        overwrites gradients; see the class docstring."""
        for group, st in zip(self.param_groups, self._states):
            if group["params"][0]._flat is not st.owner:
                self._follow(group, st)
            if st.span is not None:
                st.span[1].fill(0)
            else:
                for p in group["params"]:
                    p.grad.fill(0)

    # ---- state dict

    def state_dict(self):
        """The optimizer state as host arrays and plain Python values (format in the class docstring)."""
        state, groups, index = {}, [], 0
        for i, (group, st) in enumerate(zip(self.param_groups, self._states)):
            params = group["params"]
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = list(range(index, index + len(params)))
            index += len(params)
            groups.append(entry)
            if st.units is None:
                continue
            s = {"step": st.step}
            for name in st.units[0][2]:
                parts = [to_numpy(bufs[name]).reshape(-1) for _, _, bufs in st.units]
                s[name] = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
            if self._has_mu_product:
                s["mu_product"] = st.mu_product
            state[i] = s
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters (lr included), step counts and buffers from ``state_dict()`` output.

        Everything is checked before anything is copied: the number of groups, each group's parameter
        count and hyper-parameter names, and each buffer's name, dtype and shape (the group's total size).
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with keys 'state' and 'param_groups' (from state_dict())")
        saved_groups, saved_state = list(state_dict["param_groups"]), dict(state_dict["state"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        unknown = set(saved_state) - set(range(len(saved_groups)))
        if unknown:
            raise ValueError(f"loaded state dict has state for unknown groups {sorted(unknown, key=str)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            n = len(group["params"])
            if len(saved.get("params", ())) != n:
                raise ValueError(f"group {i}: loaded state dict has {len(saved.get('params', ()))} parameters, "
                                 f"this optimizer has {n}")
            keys = set(saved) - {"params"}
            mine = set(group) - {"params"}
            if keys != mine:
                raise ValueError(f"group {i}: loaded hyper-parameters {sorted(keys)} do not match "
                                 f"{type(self).__name__}'s {sorted(mine)}")
            hypers = {k: saved[k] for k in keys}
            self._validate(hypers)
            if i in saved_state:
                self._check_saved_state(i, saved_state[i], hypers, group, sum(p.size for p in group["params"]))
        for i, (saved, group, st) in enumerate(zip(saved_groups, self.param_groups, self._states)):
            # a JSON round trip turns betas into a list: keep the tuple the constructor makes
            group.update({k: tuple(v) if isinstance(group[k], tuple) else v for k, v in saved.items() if k != "params"})
            st.reset()
            if i in saved_state:
                self._load_group_state(group, st, saved_state[i])

    def _check_saved_state(self, i, s, hypers, group, total):
        names = set(self._buffer_names(hypers))
        expected = {"step"} | names | ({"mu_product"} if self._has_mu_product else set())
        if set(s) != expected:
            raise ValueError(f"group {i}: loaded state has entries {sorted(s)}, expected {sorted(expected)}")
        step = s["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
            raise ValueError(f"group {i}: loaded step = {step!r} must be an integer >= 1")
        dtype = group["params"][0].dtype
        for name in names:
            buf = np.asarray(s[name])
            if buf.shape != (total,):
                raise ValueError(f"group {i}: loaded buffer {name!r} has shape {buf.shape}, expected ({total},)")
            if buf.dtype != dtype:
                raise ValueError(f"group {i}: loaded buffer {name!r} has dtype {buf.dtype}, expected {dtype}")

    def _load_group_state(self, group, st, s):
        if group["params"][0]._flat is not st.owner:
            self._follow(group, st)
        self._allocate(group, st)
        st.step = int(s["step"])
        st.mu_product = float(s.get("mu_product", 1.0))
        offset = 0
        for data, _, bufs in st.units:
            xp = array_module(data)
            for name, buf in bufs.items():
                buf[...] = xp.asarray(np.asarray(s[name])[offset:offset + data.size].reshape(data.shape))
            offset += data.size

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


# --------------------------------------------------------------------------------------------------
# optimizers


class SGD(Optimizer):
    """torch.optim.SGD: plain, momentum (heavy ball, or Nesterov), L2 weight decay, maximize."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["momentum"], "momentum value", "momentum")
        _real("dampening", g["dampening"])
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check_flag("nesterov", g["nesterov"])
        _check_flag("maximize", g["maximize"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _buffer_names(self, g):
        return ("momentum_buffer",) if g["momentum"] != 0 else ()

    def _update(self, g, st, data, grad, bufs):
        sgd_update(data, grad, bufs.get("momentum_buffer"), lr=g["lr"], momentum=g["momentum"],
                   dampening=g["dampening"], nesterov=g["nesterov"], weight_decay=g["weight_decay"],
                   maximize=g["maximize"], first_step=st.step == 1)


class Adagrad(Optimizer):
    """torch.optim.Adagrad (Duchi et al., 2011) with torch's lr_decay and initial_accumulator_value."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["lr_decay"], "lr_decay value", "lr_decay")
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check(g["initial_accumulator_value"], "initial_accumulator_value value", "initial_accumulator_value")
        _check(g["eps"], "epsilon value", "eps")
        _check_flag("maximize", g["maximize"])

    def _buffer_names(self, g):
        return ("sum",)

    def _initial_value(self, g, name):
        return g["initial_accumulator_value"]

    def _update(self, g, st, data, grad, bufs):
        adagrad_update(data, grad, bufs["sum"], step=st.step, lr=g["lr"], lr_decay=g["lr_decay"],
                       weight_decay=g["weight_decay"], eps=g["eps"], maximize=g["maximize"])


class RMSprop(Optimizer):
    """torch.optim.RMSprop (Hinton's lecture 6e), optionally centered (Graves, 2013) and with momentum."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["eps"], "epsilon value", "eps")
        _check(g["momentum"], "momentum value", "momentum")
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check(g["alpha"], "alpha value", "alpha")
        _check_flag("centered", g["centered"])
        _check_flag("maximize", g["maximize"])

    def _buffer_names(self, g):
        return (("square_avg",) + (("grad_avg",) if g["centered"] else ())
                + (("momentum_buffer",) if g["momentum"] > 0 else ()))

    def _update(self, g, st, data, grad, bufs):
        rmsprop_update(data, grad, bufs["square_avg"], grad_avg=bufs.get("grad_avg"),
                       momentum_buffer=bufs.get("momentum_buffer"), lr=g["lr"], alpha=g["alpha"], eps=g["eps"],
                       weight_decay=g["weight_decay"], momentum=g["momentum"], centered=g["centered"],
                       maximize=g["maximize"])


class Adadelta(Optimizer):
    """torch.optim.Adadelta (Zeiler, 2012)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["rho"], "rho value", "rho", high=1.0)
        _check(g["eps"], "epsilon value", "eps")
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check_flag("maximize", g["maximize"])

    def _buffer_names(self, g):
        return ("square_avg", "acc_delta")

    def _update(self, g, st, data, grad, bufs):
        adadelta_update(data, grad, bufs["square_avg"], bufs["acc_delta"], lr=g["lr"], rho=g["rho"], eps=g["eps"],
                        weight_decay=g["weight_decay"], maximize=g["maximize"])


class Adam(Optimizer):
    """torch.optim.Adam (Kingma & Ba, 2015, bias correction 1 - beta^t), L2 weight decay, AMSGrad."""

    _kernel = staticmethod(adam_update)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["eps"], "epsilon value", "eps")
        _check_betas(g["betas"])
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check_flag("amsgrad", g["amsgrad"])
        _check_flag("maximize", g["maximize"])

    def _buffer_names(self, g):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if g["amsgrad"] else ())

    def _update(self, g, st, data, grad, bufs):
        beta1, beta2 = g["betas"]
        self._kernel(data, grad, bufs["exp_avg"], bufs["exp_avg_sq"], max_exp_avg_sq=bufs.get("max_exp_avg_sq"),
                     step=st.step, lr=g["lr"], beta1=beta1, beta2=beta2, eps=g["eps"],
                     weight_decay=g["weight_decay"], amsgrad=g["amsgrad"], maximize=g["maximize"])


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay p <- (1 - lr lambda) p (Loshchilov & Hutter)."""

    _kernel = staticmethod(adamw_update)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)


class NAdam(Optimizer):
    """torch.optim.NAdam (Dozat, 2016) with torch's momentum schedule; ``mu_product`` is kept per group as a
    float64 host scalar (torch keeps a float32 tensor per parameter: a difference of float32 rounding)."""

    _has_mu_product = True

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3, *,
                 decoupled_weight_decay=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _validate(self, g):
        _check(g["lr"], "learning rate", "lr")
        _check(g["eps"], "epsilon value", "eps")
        _check_betas(g["betas"])
        _check(g["weight_decay"], "weight_decay value", "weight_decay")
        _check(g["momentum_decay"], "momentum_decay value", "momentum_decay")
        _check_flag("decoupled_weight_decay", g["decoupled_weight_decay"])
        _check_flag("maximize", g["maximize"])

    def _buffer_names(self, g):
        return ("exp_avg", "exp_avg_sq")

    def _step_group(self, g, st):
        # every unit starts from the same mu_1 ... mu_{t-1} and returns the same new product
        beta1, beta2 = g["betas"]
        product = st.mu_product
        for data, grad, bufs in st.units:
            product = nadam_update(data, grad, bufs["exp_avg"], bufs["exp_avg_sq"], step=st.step,
                                   mu_product=st.mu_product, lr=g["lr"], beta1=beta1, beta2=beta2, eps=g["eps"],
                                   weight_decay=g["weight_decay"], momentum_decay=g["momentum_decay"],
                                   decoupled_weight_decay=g["decoupled_weight_decay"], maximize=g["maximize"])
        st.mu_product = product


# --------------------------------------------------------------------------------------------------
# gradient clipping


def clip_grad_norm_(params, max_norm, norm_type=2.0):
    """Scale the gradients of ``params`` in place so that their joint norm is at most ``max_norm``, as
    torch.nn.utils.clip_grad_norm_; return the total norm (before clipping) as a Python float.

    total = ||concat(grads)||_p for p = 2 or inf; when total > max_norm every
    gradient is multiplied by max_norm / (total + 1e-6). A non-finite total (NaN/Inf in a gradient) is
    returned as is and the gradients are left untouched (torch would scale them by 0 or NaN): the caller
    decides whether to skip the step.

    The 2-norm is one BLAS dot per flat span (the usual case: one for the whole model) in the gradient's
    dtype, with the spans' sums added in float64; a float32 dot that overflows is redone in float64.
    """
    params = [params] if isinstance(params, Parameter) else list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm_ expects Parameters, got {type(p).__name__}")
    max_norm = float(_real("max_norm", max_norm))
    if not max_norm >= 0:
        raise ValueError(f"max_norm = {max_norm} is out of range: must be >= 0")
    if norm_type in ("inf", math.inf):
        norm_type = math.inf
    elif isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or norm_type != 2:
        raise ValueError(f"norm_type = {norm_type!r} is not supported: use 2 or inf")
    if not params:
        return 0.0
    span = flat_span(params)
    grads = [span[1]] if span is not None else [p.grad.reshape(-1) for p in params]
    if is_device_array(grads[0]):
        return _clip_on_device(grads, max_norm, norm_type)
    if norm_type == 2:
        total = 0.0
        for g in grads:
            with np.errstate(over="ignore"):
                squares = float(g @ g)
            if not math.isfinite(squares) and g.dtype != np.float64:
                # a float32 sum of squares overflows from |g| ~ 1e19 on: redo it in float64, so an exploding
                # but finite gradient is still clipped
                g64 = g.astype(np.float64)
                squares = float(g64 @ g64)
            total += squares
        total = math.sqrt(total)
    else:
        total = max(float(abs(g).max()) if g.size else 0.0 for g in grads)
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total


def _clip_on_device(grads, max_norm, norm_type):
    """clip_grad_norm_ on device gradients without a read-back: the norm (in float64, so a float32 sum of
    squares cannot overflow) and the scale stay on the device, and the norm is returned as a 0-d float64
    device array (float() of it waits for the GPU)."""
    xp = array_module(grads[0])
    if norm_type == 2:
        total = xp.sqrt(sum(xp.vdot(g64, g64) for g64 in (g.astype(xp.float64) for g in grads)))
    else:
        total = xp.max(xp.stack([abs(g).max().astype(xp.float64) for g in grads if g.size] or [xp.zeros(())]))
    # torch's rule, as on the host: scale only when the norm is finite and above max_norm
    scale = xp.where(xp.isfinite(total) & (total > max_norm), max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= scale.astype(g.dtype)
    return total
