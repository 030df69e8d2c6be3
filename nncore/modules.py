"""Layers and containers: Linear, activations, Dropout, BatchNorm1d, Sequential, MLP.

Every module has ``forward(x)`` (also ``module(x)``) and ``backward(dy)``: backward takes the gradient of
the loss with respect to the module's output, WRITES the gradients of its parameters into their ``.grad``
arrays and returns the gradient with respect to its input. Unlike torch, gradients are not accumulated
across backward calls: each backward overwrites them (so ``optimizer.zero_grad()`` is only needed for
torch-style loops). backward uses what the last forward saved, so call them in pairs.

Course notation, row vectors: a Linear layer computes ``y = act(x @ W + b)`` with ``W`` of shape
(in_features, out_features) (torch stores the transpose), and its backward

    dz = dy * act'(z)      dx = dz @ W.T      dW = x.T @ dz      db = sum over rows of dz

which is the chain rule written for a whole batch (kernels/linear.py does the arithmetic).

Parameters: each module with parameters keeps them in one flat buffer (and their gradients in a second),
and a container repacks all of its children's parameters into one pair of buffers for the whole model
(see nncore/parameter.py), so an optimizer step is one kernel call over the model.

Sequential fuses a Linear followed by an activation module (ReLU, LeakyReLU, Sigmoid, Tanh) into the
fused linear kernel: the bias and the activation are applied in the pass that follows the GEMM, and the
backward computes dz and the bias gradient in one pass.

Training and evaluation modes (``train()`` / ``eval()``) follow torch: Dropout is the identity in eval
mode, BatchNorm1d normalises with its running statistics in eval mode.
"""

from __future__ import annotations

import json

import numpy as np

import kernels as K

from ._threads import one_thread_for
from .device import check_device, device_of, to_device
from .parameter import Parameter, check_dtype, flat_span, move, pack

__all__ = [
    "BatchNorm1d", "Dropout", "Identity", "LeakyReLU", "Linear", "MLP", "Module", "ReLU", "Sequential",
    "Sigmoid", "Tanh", "from_config",
]


class Module:
    """Base class: parameters, buffers, modes, state dicts and configuration for checkpoints."""

    def __init__(self):
        self.training = True

    # -- computation ---------------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, *, need_input_grad=True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    # -- structure -----------------------------------------------------------------------------------
    def children(self):
        """(name, module) pairs of the direct sub-modules, in order."""
        return []

    def _own_parameters(self):
        return []

    def _own_buffers(self):
        """(name, array) pairs of non-trainable state (BatchNorm's running statistics, ...)."""
        return []

    def named_parameters(self, prefix=""):
        out = [(prefix + name, p) for name, p in self._own_parameters()]
        for cname, child in self.children():
            out += child.named_parameters(f"{prefix}{cname}.")
        return out

    def parameters(self):
        """The trainable parameters, in a fixed order (the order of the model's flat buffer)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        out = [(prefix + name, b) for name, b in self._own_buffers()]
        for cname, child in self.children():
            out += child.named_buffers(f"{prefix}{cname}.")
        return out

    def modules(self):
        """This module and every sub-module, depth first."""
        out = [self]
        for _, child in self.children():
            out += child.modules()
        return out

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else None

    # -- device --------------------------------------------------------------------------------------
    @property
    def device(self):
        """Where the parameters (else the buffers) live: "cpu" or "cuda"; "cpu" for a module without state."""
        for a in [p.data for p in self.parameters()] + [b for _, b in self.named_buffers()]:
            if device_of(a) == "cuda":
                return "cuda"
        return "cpu"

    def to(self, device):
        """Move every parameter, gradient and buffer to ``device`` ("cpu" or "cuda") in place; returns self.

        The Parameter objects stay the same ones, rebound to copies of the flat buffers on the device, so an
        optimizer built before the move follows them (its state moves at its next step). Activations saved
        by the last forward are dropped: run forward again before backward. Dropout's (seed, counter) stay
        on the host: they are the arguments of the mask, not data.
        """
        device = check_device(device)
        move(self.parameters(), device)
        for m in self.modules():
            m._to(device)
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def _to(self, device):
        """Hook: move this module's own buffers and drop what it saved or cached for the old device."""
        if hasattr(self, "_saved"):
            self._saved = None

    # -- modes ---------------------------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        params = self.parameters()
        span = flat_span(params)
        for g in ([span[1]] if span is not None else [p.grad for p in params]):
            g.fill(0)

    def manual_seed(self, seed):
        """Give every Dropout in the model its own stream derived from ``seed`` (and its position), counter
        reset: the dropout masks of a training run then depend on ``seed`` alone."""
        drops = [m for m in self.modules() if isinstance(m, Dropout)]
        states = np.random.SeedSequence(_check_seed(seed)).generate_state(max(1, len(drops)), np.uint64)
        for m, s in zip(drops, states):
            m.seed, m.counter = int(s), 0
        return self

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self):
        """name -> array copy, parameters then buffers (BatchNorm running statistics, dropout counters), each
        on the device it lives on (nncore.save writes them to the host)."""
        out = {name: p.data.copy() for name, p in self.named_parameters()}
        out.update((name, b.copy()) for name, b in self.named_buffers())
        return out

    def load_state_dict(self, state, strict=True):
        """Copy values in (never rebinds arrays), from host or device arrays onto wherever the model lives.
        ``strict``: the keys must match exactly."""
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"state dict does not match the model: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        for name, dst in targets.items():
            if name not in state:
                continue
            shape = tuple(getattr(state[name], "shape", np.shape(state[name])))
            if shape != dst.shape:
                raise ValueError(f"state dict entry {name!r} has shape {shape}, the model expects {dst.shape}")
        for name, dst in targets.items():
            if name in state:
                dst[...] = to_device(state[name], device_of(dst))
        for m in self.modules():
            m._buffers_loaded()
        return self

    def _buffers_loaded(self):
        """Hook: a module keeping a buffer as a Python scalar re-reads it after load_state_dict."""

    # -- configuration (checkpoints rebuild the model from it) -----------------------------------------
    def config(self):
        """A JSON-serialisable description from which ``from_config`` rebuilds the same architecture."""
        return {"type": type(self).__name__, **self._config()}

    def _config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64) or None, got {seed!r}")
    return int(seed)


def _check_int(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_input(module, x, features, ref):
    """Cheap checks with messages in the module's terms (the kernels check the rest). ``ref``: an array of
    the module's (None if it has none), whose device the input must share."""
    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        raise TypeError(f"{module!r} expects an array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{module!r} expects input of shape (N, {features}), got {tuple(x.shape)}")
    if x.dtype != module.dtype:
        raise TypeError(f"{module!r} has {module.dtype} parameters but got a {x.dtype} input; convert one "
                        f"of them (model dtype=... or x.astype(...))")
    if ref is not None and device_of(x) != device_of(ref):
        here, there = device_of(ref), device_of(x)
        raise TypeError(f"{module!r} is on {here!r} but got an input on {there!r}; move one of them "
                        f"(model.to({there!r}) or nncore.to_device(x, {here!r}))")


def _saved(module):
    if module._saved is None:
        raise RuntimeError(f"{module!r}: backward called without a forward first")
    return module._saved


# ------------------------------------------------------------------------------------------------------
# Linear


_INITS = ("he", "xavier")


class Linear(Module):
    """y = act(x @ weight + bias); weight (in_features, out_features), bias (out_features,).

    ``init``: "he" (normal, std sqrt(2 / in_features), for ReLU-like activations; LeakyReLU's slope
    included in the gain) or "xavier" (normal, std sqrt(2 / (in + out))); None picks "he" for relu and
    leaky_relu, "xavier" otherwise. The bias starts at zero. ``seed`` fixes the initial weights (None:
    fresh OS entropy). ``activation``: None, "relu", "leaky_relu", "sigmoid" or "tanh", fused into the
    kernel pass after the GEMM.
    """

    def __init__(self, in_features, out_features, bias=True, activation=None, *, init=None, seed=None,
                 negative_slope=0.01, dtype=np.float32):
        super().__init__()
        self.in_features = _check_int("in_features", in_features, 1)
        self.out_features = _check_int("out_features", out_features, 1)
        K.activations.activation_code(activation)  # validates the name, with the kernels' message
        self.activation = activation
        self.negative_slope = float(K.activations.check_negative_slope(negative_slope, np.float64))
        if init is None:
            init = "he" if activation in ("relu", "leaky_relu") else "xavier"
        if init not in _INITS:
            raise ValueError(f"init = {init!r} is not one of {_INITS}")
        self.init = init
        dtype = check_dtype(dtype)
        rng = np.random.default_rng(_check_seed(seed))
        if init == "he":
            slope = self.negative_slope if activation == "leaky_relu" else 0.0
            std = np.sqrt(2.0 / ((1.0 + slope * slope) * in_features))
        else:
            std = np.sqrt(2.0 / (in_features + out_features))
        self.weight = Parameter((rng.standard_normal((in_features, out_features)) * std).astype(dtype))
        self.bias = Parameter(np.zeros(out_features, dtype)) if bias else None
        pack(self.parameters())
        self._saved = None
        self._workspaces = {}

    def _own_parameters(self):
        return [("weight", self.weight)] + ([("bias", self.bias)] if self.bias is not None else [])

    def _to(self, device):
        super()._to(device)
        self._workspaces.clear()

    def _config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "activation": self.activation, "init": self.init, "negative_slope": self.negative_slope,
                "dtype": str(self.dtype)}

    def forward(self, x):
        return self._forward(x, self.activation, self.negative_slope)

    def backward(self, dy, *, need_input_grad=True):
        return self._backward(dy, need_input_grad)

    def _forward(self, x, activation, slope):
        _check_input(self, x, self.in_features, self.weight.data)
        b = None if self.bias is None else self.bias.data
        y = K.linear_forward(x, self.weight.data, b, activation, negative_slope=slope)
        self._saved = (x, y, activation, slope)
        return y

    def _backward(self, dy, need_input_grad):
        x, y, activation, slope = _saved(self)
        n = x.shape[0]
        ws = self._workspaces.get(n)
        if ws is None:
            if len(self._workspaces) > 4:  # batch sizes come and go (last partial batch, evaluation)
                self._workspaces.clear()
            ws = self._workspaces[n] = K.LinearWorkspace(n, self.out_features, self.dtype, device=device_of(x))
        dx, _, _ = K.linear_backward(
            dy, x, self.weight.data, y, activation, negative_slope=slope, has_bias=self.bias is not None,
            need_dx=need_input_grad, out_dw=self.weight.grad,
            out_db=None if self.bias is None else self.bias.grad, workspace=ws)
        return dx


# ------------------------------------------------------------------------------------------------------
# Activations


class _Activation(Module):
    kind = None

    def __init__(self):
        super().__init__()
        self.negative_slope = 0.01
        self._saved = None

    def forward(self, x):
        y = K.activation_forward(x, self.kind, negative_slope=self.negative_slope)
        self._saved = y
        return y

    def backward(self, dy, *, need_input_grad=True):
        return K.activation_backward(dy, _saved(self), self.kind, negative_slope=self.negative_slope)


class ReLU(_Activation):
    """max(x, 0)."""

    kind = "relu"


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    kind = "sigmoid"


class Tanh(_Activation):
    """tanh(x)."""

    kind = "tanh"


class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise (negative_slope >= 0)."""

    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(K.activations.check_negative_slope(negative_slope, np.float64))

    def _config(self):
        return {"negative_slope": self.negative_slope}


class Identity(Module):
    """y = x (returns its input; backward returns dy)."""

    def forward(self, x):
        return x

    def backward(self, dy, *, need_input_grad=True):
        return dy


# ------------------------------------------------------------------------------------------------------
# Dropout


class Dropout(Module):
    """Inverted dropout: in training mode each element is zeroed with probability ``p`` and the survivors
    are scaled by 1 / (1 - p); in eval mode the identity.

    The mask comes from the counter-based Philox generator keyed by ``seed`` and addressed by (element,
    call counter): backward regenerates it instead of storing it, and the same (seed, counter) gives the
    same mask on every machine. The counter advances once per training forward and is part of the state
    dict, so a resumed run draws the masks an uninterrupted one would. ``seed`` None draws one from OS
    entropy; ``model.manual_seed(s)`` (which ``nncore.fit`` calls) reseeds every Dropout of a model.
    """

    def __init__(self, p=0.5, *, seed=None):
        super().__init__()
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) \
                or not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability has to be in [0, 1), got p = {p!r}")
        self.p = float(p)
        seed = _check_seed(seed)
        self.seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]) if seed is None else seed
        self.counter = 0
        self._rng_bufs = np.zeros(2, np.uint64)  # (seed, counter), the dropout stream's state
        self._saved = None

    def _config(self):
        return {"p": self.p, "seed": self.seed}

    def _own_buffers(self):
        # the seed is state too: model.manual_seed (called by fit) replaces the one the config was built with
        self._rng_bufs[:] = (self.seed, self.counter)
        return [("rng_seed", self._rng_bufs[0:1].reshape(())), ("rng_counter", self._rng_bufs[1:2].reshape(()))]

    def _buffers_loaded(self):
        self.seed, self.counter = int(self._rng_bufs[0]), int(self._rng_bufs[1])

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._saved = 0  # counter 0 is never used for a mask: marks "identity"
            return x
        self.counter += 1
        self._saved = self.counter
        return K.dropout_forward(x, self.p, self.seed, self.counter)

    def backward(self, dy, *, need_input_grad=True):
        counter = _saved(self)
        if counter == 0:
            return dy
        return K.dropout_backward(dy, self.p, self.seed, counter)


# ------------------------------------------------------------------------------------------------------
# BatchNorm1d


class BatchNorm1d(Module):
    """Batch normalisation over the rows of (N, num_features) inputs, torch.nn.BatchNorm1d semantics.

    Training mode: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and biased
    variance; running_mean / running_var move by ``momentum`` towards the batch mean and the unbiased
    batch variance (``momentum=None``: cumulative average, as torch). Eval mode normalises with the
    running statistics. weight (gamma) starts at 1, bias (beta) at 0.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 dtype=np.float32):
        super().__init__()
        self.num_features = _check_int("num_features", num_features, 1)
        if not (isinstance(eps, (int, float, np.floating)) and eps > 0):
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if momentum is not None and not (isinstance(momentum, (int, float, np.floating)) and 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = check_dtype(dtype)
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        pack(self.parameters())
        self._dtype = dtype
        if track_running_stats:
            self.running_mean = np.zeros(num_features, dtype)
            self.running_var = np.ones(num_features, dtype)
            self.num_batches_tracked = np.zeros((), np.int64)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._saved = None

    @property
    def dtype(self):
        return self._dtype

    def _own_parameters(self):
        return [("weight", self.weight), ("bias", self.bias)] if self.affine else []

    def _own_buffers(self):
        if not self.track_running_stats:
            return []
        return [("running_mean", self.running_mean), ("running_var", self.running_var),
                ("num_batches_tracked", self.num_batches_tracked)]

    def _to(self, device):
        super()._to(device)
        if self.track_running_stats:  # the batch counter stays on the host: only Python reads it
            self.running_mean = to_device(self.running_mean, device)
            self.running_var = to_device(self.running_var, device)

    def _config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats, "dtype": str(self.dtype)}

    def forward(self, x):
        _check_input(self, x, self.num_features, self.weight.data if self.affine else self.running_mean)
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked + 1)  # cumulative average over the batches so far
        y, mean, invstd = K.batchnorm_forward(
            x, gamma, beta, self.running_mean, self.running_var, training=self.training, momentum=momentum,
            eps=self.eps)
        if counting:  # after the kernel accepted the batch: a rejected one leaves the module as it was
            self.num_batches_tracked += 1
        self._saved = (x, mean, invstd, self.training or not self.track_running_stats)
        return y

    def backward(self, dy, *, need_input_grad=True):
        x, mean, invstd, batch_stats = _saved(self)
        gamma = self.weight.data if self.affine else None
        if batch_stats:
            dx, dgamma, dbeta = K.batchnorm_backward(dy, x, gamma, mean, invstd)
        else:
            # eval mode: a fixed per-column affine map, y = (x - mean) * invstd * gamma + beta
            scale = invstd if gamma is None else invstd * gamma
            dx = dy * scale
            dgamma = (dy * ((x - mean) * invstd)).sum(axis=0, dtype=np.float64).astype(x.dtype)
            dbeta = dy.sum(axis=0, dtype=np.float64).astype(x.dtype)
        if self.affine:
            self.weight.grad[...] = dgamma
            self.bias.grad[...] = dbeta
        return dx


# ------------------------------------------------------------------------------------------------------
# Containers


_ACTIVATION_MODULES = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}


class _FusedLinearActivation:
    """A Linear (without its own activation) and the activation module after it, run as one kernel."""

    __slots__ = ("linear", "kind", "slope")

    def __init__(self, linear, act):
        self.linear, self.kind, self.slope = linear, act.kind, act.negative_slope

    def forward(self, x):
        return self.linear._forward(x, self.kind, self.slope)

    def backward(self, dy, *, need_input_grad=True):
        return self.linear._backward(dy, need_input_grad)


def _plan(layers):
    """The sequence of steps forward runs: each layer, or a fused Linear + activation pair."""
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is Linear and layer.activation is None and type(nxt) in _ACTIVATION_MODULES.values():
            steps.append(_FusedLinearActivation(layer, nxt))
            i += 2
        else:
            steps.append(layer)
            i += 1
    return steps


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse. All parameters of all layers are packed
    into one flat buffer (and one for the gradients) when the Sequential is built."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules; argument {i} is a {type(layer).__name__}")
        self.layers = list(layers)
        self._steps = _plan(self.layers)
        self._widest = max([getattr(m, a, 0) for m in self.modules()
                            for a in ("in_features", "out_features", "num_features")] + [0])
        self._rows = 0
        pack(self.parameters())  # the children's own buffers are dropped: the model's pair replaces them

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    @property
    def dtype(self):
        for m in self.modules():
            if m is not self and m.dtype is not None:
                return m.dtype
        return None

    # The layers' kernels run on one Numba thread: they sit between BLAS GEMMs (see nncore/_threads.py).
    # The widest activation of a batch bounds the size of every elementwise kernel call.
    def forward(self, x):
        self._rows = x.shape[0] if hasattr(x, "shape") and len(x.shape) else 0
        with one_thread_for(self._rows * max(self._widest, x.shape[-1] if self._rows else 0)):
            for step in self._steps:
                x = step.forward(x)
        return x

    def backward(self, dy, *, need_input_grad=True):
        steps = self._steps
        if not steps:
            return dy
        with one_thread_for(self._rows * max(self._widest, dy.shape[-1])):
            for step in reversed(steps[1:]):
                dy = step.backward(dy)
            return steps[0].backward(dy, need_input_grad=need_input_grad)

    def _config(self):
        return {"layers": [layer.config() for layer in self.layers]}

    def __repr__(self):
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class MLP(Sequential):
    """A multi-layer perceptron: for each hidden size, Linear -> [BatchNorm1d] -> activation -> [Dropout];
    then a Linear output layer (no activation: the loss takes logits).

    ``sizes`` = (inputs, hidden..., outputs), e.g. (64, 128, 10). Hidden Linear layers use He
    initialisation for relu/leaky_relu and Xavier otherwise; the output layer uses Xavier. ``seed`` fixes
    the initial weights and the dropout streams.
    """

    def __init__(self, sizes, activation="relu", dropout=0.0, batchnorm=False, *, bias=True, seed=None,
                 dtype=np.float32):
        sizes = list(sizes) if isinstance(sizes, (list, tuple)) else sizes
        if not isinstance(sizes, list) or len(sizes) < 2:
            raise ValueError(f"sizes must be a list of at least 2 layer widths (inputs, ..., outputs), got {sizes!r}")
        sizes = [_check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes)]
        if activation not in _ACTIVATION_MODULES:
            raise ValueError(f"activation = {activation!r} is not one of {tuple(_ACTIVATION_MODULES)}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout probability has to be a number in [0, 1), got dropout = {dropout!r}")
        seed = _check_seed(seed)
        seeds = np.random.SeedSequence(seed).generate_state(2 * len(sizes), np.uint64)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
            init = "he" if activation in ("relu", "leaky_relu") else "xavier"
            layers.append(Linear(n_in, n_out, bias, init=init, seed=int(seeds[2 * i]), dtype=dtype))
            if batchnorm:
                layers.append(BatchNorm1d(n_out, dtype=dtype))
            layers.append(_ACTIVATION_MODULES[activation]())
            if dropout:
                layers.append(Dropout(dropout, seed=int(seeds[2 * i + 1])))
        layers.append(Linear(sizes[-2], sizes[-1], bias, init="xavier", seed=int(seeds[-1]), dtype=dtype))
        super().__init__(*layers)
        self.sizes, self.activation, self.dropout, self.batchnorm = sizes, activation, float(dropout), bool(batchnorm)
        self.bias, self.seed = bool(bias), seed

    def _config(self):
        return {"sizes": self.sizes, "activation": self.activation, "dropout": self.dropout,
                "batchnorm": self.batchnorm, "bias": self.bias, "seed": self.seed, "dtype": str(self.dtype)}

    def __repr__(self):
        return Module.__repr__(self)


# ------------------------------------------------------------------------------------------------------
# Rebuilding from a configuration


_REGISTRY = {cls.__name__: cls for cls in (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Identity, Dropout,
                                           BatchNorm1d, Sequential, MLP)}


def from_config(config):
    """Build the module that ``module.config()`` described (a dict, or its JSON text)."""
    if isinstance(config, str):
        config = json.loads(config)
    if not isinstance(config, dict) or config.get("type") not in _REGISTRY:
        kind = config.get("type") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"unknown module type {kind!r} in configuration; known: {sorted(_REGISTRY)}")
    args = {k: v for k, v in config.items() if k != "type"}
    cls = _REGISTRY[config["type"]]
    if cls is Sequential:
        return Sequential(*(from_config(c) for c in args["layers"]))
    return cls(**args)
