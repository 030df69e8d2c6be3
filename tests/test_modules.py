"""nncore.modules: whole models against finite differences, every module against the float64 oracle, and
a training step against torch.

* Gradients of whole float64 models (Linear, BatchNorm1d, each activation, Dropout, MLP) against central
  finite differences of a scalar loss, in training mode (the dropout mask is a function of (seed, counter),
  so resetting ``counter`` before each forward keeps it fixed) and in eval mode.
* Each module's forward and backward against kernels.reference in float32 and float64 on awkward shapes;
  Sequential's fused Linear + activation step against an unfused oracle.
* Flat parameter buffers, modes, BatchNorm running statistics against torch.nn.BatchNorm1d, state dicts,
  configurations, initialisation statistics and seeds, argument errors.
* A full training step (forward, CrossEntropyLoss, backward, SGD update) of an MLP against torch.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import nncore
from kernels import reference as R
from nncore import (
    MLP,
    BatchNorm1d,
    CrossEntropyLoss,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    from_config,
)
from nncore.parameter import Parameter, flat_span
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, assert_close, numeric_grad, random_array

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
# (class, kwargs, oracle kind, slope); LeakyReLU with a large slope so its negative side shows in gradients
ACTIVATIONS = [(ReLU, {}, "relu", 0.0), (LeakyReLU, {"negative_slope": 0.2}, "leaky_relu", 0.2),
               (Sigmoid, {}, "sigmoid", 0.0), (Tanh, {}, "tanh", 0.0)]
ACT_IDS = ["relu", "leaky_relu", "sigmoid", "tanh"]
dtypes = pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)


def _seed(rng):
    return int(rng.integers(2**63))


def _randomize(model, rng):
    """Move every parameter and BatchNorm buffer away from its initial value (gamma 1, beta 0, bias 0,
    running stats 0 / 1), so a gradient or a statistic that ignores one of them shows."""
    for m in model.modules():
        if isinstance(m, BatchNorm1d):
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.standard_normal(m.num_features) * 0.5
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.3
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
        elif isinstance(m, Linear) and m.bias is not None:
            m.bias.data[...] = rng.standard_normal(m.out_features) * 0.3
    return model


# ------------------------------------------------------------------------------------------------------
# finite differences (float64)

FD_RTOL, FD_ATOL = 1e-6, 1e-8


def _kink_margin(model, x):
    """The smallest |input| of a ReLU / LeakyReLU in the model, running its layers one by one."""
    margin = np.inf
    for layer in model.layers:
        if isinstance(layer, (ReLU, LeakyReLU)):
            margin = min(margin, float(np.abs(x).min()))
        x = layer(x)
    return margin


def _check_model_gradients(model, x, loss_of, need_input_grad):
    """loss_of(out) -> (value, dout). Checks backward's parameter (and input) gradients against central
    differences; the dropout counters are reset before every forward, so the masks stay fixed."""
    drops = [m for m in model.modules() if isinstance(m, Dropout)]
    start = [d.counter for d in drops]

    def forward():
        for d, c in zip(drops, start):
            d.counter = c
        return model(x)

    def backward():
        return model.backward(loss_of(forward())[1], need_input_grad=need_input_grad)

    dx = backward()
    if model.training:
        assert [d.counter for d in drops] == [c + 1 for c in start]  # each training forward draws a new mask
    data, grad = flat_span(model.parameters())
    analytic = grad.copy()
    backward()  # backward overwrites the gradients, it does not accumulate them
    assert_close(grad, analytic, 0, 0, "gradients after a second backward")

    def loss():
        return loss_of(forward())[0]

    assert_close(analytic, numeric_grad(loss, data), FD_RTOL, FD_ATOL, "parameter gradients")
    if need_input_grad:
        assert dx.shape == x.shape and dx.dtype == x.dtype
        assert_close(dx, numeric_grad(loss, x), FD_RTOL, FD_ATOL, "input gradient")
    else:
        assert dx is None


def _weighted_sum(rng, shape):
    r = rng.standard_normal(shape)
    return lambda out: (float(np.sum(out * r)), r)


def _input_away_from_kinks(rng, model, shape):
    """Fresh input whose ReLU inputs all lie at least 1e-3 from 0 (an FD step must not cross the kink)."""
    while True:
        x = rng.standard_normal(shape)
        # the margin pass runs training forwards, which advance the dropout counters: restore them
        counters = [(d, d.counter) for d in model.modules() if isinstance(d, Dropout)]
        margin = _kink_margin(model, x)
        for d, c in counters:
            d.counter = c
        if margin > 1e-3:
            return x


def _small_model(arch, act, rng):
    cls, kw, _, _ = act
    if arch == "batchnorm":
        layers = [Linear(4, 6, seed=_seed(rng), dtype=np.float64), BatchNorm1d(6, dtype=np.float64), cls(**kw),
                  Dropout(0.3, seed=_seed(rng)), Linear(6, 3, seed=_seed(rng), dtype=np.float64)]
    else:  # Linear + activation pairs: Sequential runs them as fused steps
        layers = [Linear(4, 6, seed=_seed(rng), dtype=np.float64), cls(**kw), Dropout(0.3, seed=_seed(rng)),
                  Linear(6, 3, bias=False, seed=_seed(rng), dtype=np.float64), cls(**kw)]
    return _randomize(Sequential(*layers), rng)


@pytest.mark.parametrize("need_input_grad", [True, False], ids=["dx", "no_dx"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("arch", ["batchnorm", "fused"])
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACT_IDS)
def test_sequential_gradients_match_finite_differences(rng, act, arch, mode, need_input_grad):
    model = _small_model(arch, act, rng).train(mode == "train")
    x = _input_away_from_kinks(rng, model, (5, 4))
    _check_model_gradients(model, x, _weighted_sum(rng, (5, 3)), need_input_grad)


@pytest.mark.parametrize("need_input_grad", [True, False], ids=["dx", "no_dx"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_with_batchnorm_and_dropout_gradients_match_finite_differences(rng, activation, mode,
                                                                          need_input_grad):
    model = _randomize(MLP([4, 6, 5, 3], activation, dropout=0.25, batchnorm=True, seed=_seed(rng),
                           dtype=np.float64), rng).train(mode == "train")
    x = _input_away_from_kinks(rng, model, (5, 4))
    y = rng.integers(0, 3, 5)
    ce = CrossEntropyLoss()
    _check_model_gradients(model, x, lambda out: (ce(out, y), ce.backward()), need_input_grad)


# ------------------------------------------------------------------------------------------------------
# each module against the float64 oracle

LINEAR_SHAPES = [(1, 37, 5), (64, 1, 3), (7, 1023, 33)]
LINEAR_IDS = ["1x37x5", "64x1x3", "7x1023x33"]
KINDS = [None, "relu", "leaky_relu", "sigmoid", "tanh"]


def _gemm_atol(a_abs, b_abs, k, dtype):
    """Rounding bound of a GEMM of k terms in dtype: 4 sqrt(k + 1) eps (|a| @ |b|), elementwise."""
    return 4.0 * np.sqrt(k + 1.0) * EPS[dtype] * (a_abs @ b_abs)


@dtypes
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", KINDS, ids=[str(k) for k in KINDS])
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=LINEAR_IDS)
def test_linear_matches_oracle(rng, shape, kind, bias, dtype, rtol, atol):
    n, k, m = shape
    lin = Linear(k, m, bias, activation=kind, negative_slope=0.1, seed=_seed(rng), dtype=dtype)
    _randomize(lin, rng)
    x = random_array(rng, (n, k), dtype)
    w = lin.weight.data
    b = lin.bias.data if bias else None
    y = lin(x)
    assert y.shape == (n, m) and y.dtype == dtype
    bound = _gemm_atol(np.abs(x), np.abs(w), k, dtype) + (0 if b is None else 2 * EPS[dtype] * np.abs(b))
    assert_close(y, R.linear_forward(x, w, b, kind, 0.1), rtol, atol + bound, "y")
    dy = random_array(rng, (n, m), dtype)
    dx = lin.backward(dy)
    rdx, rdw, rdb = R.linear_backward(dy, x, w, y, kind, 0.1, has_bias=bias)
    dz_abs = np.abs(R.activation_backward(dy, y, kind, 0.1))
    assert dx.shape == x.shape and dx.dtype == dtype
    assert_close(dx, rdx, rtol, atol + _gemm_atol(dz_abs, np.abs(w).T, m, dtype), "dx")
    assert_close(lin.weight.grad, rdw, rtol, atol + _gemm_atol(np.abs(x).T, dz_abs, n, dtype), "dW")
    if bias:
        assert_close(lin.bias.grad, rdb, rtol, atol + 2 * EPS[dtype] * dz_abs.sum(axis=0), "db")
    assert lin.backward(dy, need_input_grad=False) is None


ACT_SHAPES = [(1, 1), (1, 37), (64, 1), (7, 1023)]
ACT_SHAPE_IDS = ["1x1", "1xC", "Nx1", "7x1023"]


@dtypes
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=ACT_SHAPE_IDS)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACT_IDS)
def test_activation_modules_match_oracle(rng, act, shape, dtype, rtol, atol):
    cls, kw, kind, slope = act
    module = cls(**kw)
    x = random_array(rng, shape, dtype, scale=3.0)
    y = module(x)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, R.activation(x, kind, slope), rtol, atol, "y")
    dy = random_array(rng, shape, dtype)
    dx = module.backward(dy)
    assert dx.shape == shape and dx.dtype == dtype
    assert_close(dx, R.activation_backward(dy, y, kind, slope), rtol, atol, "dx")


@dtypes
def test_identity_passes_values_and_gradients_through(rng, dtype, rtol, atol):
    x = random_array(rng, (3, 4), dtype)
    dy = random_array(rng, (3, 4), dtype)
    assert_close(Identity()(x), x, 0, 0)
    assert_close(Identity().backward(dy), dy, 0, 0)


@dtypes
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=ACT_SHAPE_IDS)
def test_dropout_matches_oracle_over_several_calls(rng, shape, dtype, rtol, atol):
    p = float(rng.uniform(0.1, 0.7))
    seed = _seed(rng)
    drop = Dropout(p, seed=seed)
    for counter in (1, 2, 3):
        x = random_array(rng, shape, dtype)
        y = drop(x)
        assert drop.counter == counter
        assert y.shape == shape and y.dtype == dtype
        assert_close(y, R.dropout_forward(x, p, seed, counter), rtol, atol, f"y at call {counter}")
        dy = random_array(rng, shape, dtype)
        assert_close(drop.backward(dy), R.dropout_backward(dy, p, seed, counter), rtol, atol, "dx")
    drop.eval()
    x = random_array(rng, shape, dtype)
    dy = random_array(rng, shape, dtype)
    assert_close(drop(x), x, 0, 0, "eval forward")
    assert_close(drop.backward(dy), dy, 0, 0, "eval backward")
    assert drop.counter == 3  # eval calls draw no mask


BN_SHAPES = [(2, 37), (64, 1), (7, 1023)]
BN_IDS = ["2x37", "64x1", "7x1023"]


def _batch(rng, shape, dtype):
    """A training batch whose columns have a spread of 0.5 to 2 around means of about 1: BatchNorm in
    float32 loses digits as std / |mean| shrinks (that is the kernel tests' business, not the module's)."""
    z = rng.standard_normal(shape)
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    return (z * rng.uniform(0.5, 2.0, shape[1]) + rng.standard_normal(shape[1])).astype(dtype)


def _batchnorm_dx_bound(dy, x, gamma, mean, invstd, dtype):
    """Rounding bound of dx = a dy - (x - mean) b1 - c0 (a = invstd gamma, b1 = a invstd mean(dy xhat),
    c0 = a mean(dy)), each term in dtype: the terms cancel, and the mean rounded to dtype is off by an ulp
    of |mean|, which is large against x - mean when the batch's spread is small (few rows)."""
    n = x.shape[0]
    a = invstd * (1.0 if gamma is None else gamma)
    b1 = a * invstd * (dy * (x - mean) * invstd).sum(axis=0) / n
    c0 = a * dy.sum(axis=0) / n
    return 8 * EPS[dtype] * (np.abs(a * dy) + (np.abs(x - mean) + np.abs(mean)) * np.abs(b1) + np.abs(c0))


@dtypes
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
def test_batchnorm_training_matches_oracle(rng, shape, affine, dtype, rtol, atol):
    bn = BatchNorm1d(shape[1], momentum=0.2, affine=affine, dtype=dtype)
    if affine:
        _randomize(bn, rng)
    rm = bn.running_mean.astype(np.float64)
    rv = bn.running_var.astype(np.float64)
    gamma = bn.weight.data if affine else None
    beta = bn.bias.data if affine else None
    for step in range(3):
        x = _batch(rng, shape, dtype)
        y = bn(x)
        ry, rm, rv, mean, invstd = R.batchnorm_forward_train(x, gamma, beta, rm, rv, momentum=0.2)
        assert y.shape == shape and y.dtype == dtype
        assert_close(y, ry, rtol, atol * 10, f"y at step {step}")
        assert_close(bn.running_mean, rm, rtol, atol, "running_mean")
        assert_close(bn.running_var, rv, rtol, atol, "running_var")
        assert int(bn.num_batches_tracked) == step + 1
        dy = random_array(rng, shape, dtype)
        dx = bn.backward(dy)
        rdx, rdgamma, rdbeta = R.batchnorm_backward(dy, x, gamma, mean, invstd)
        assert_close(dx, rdx, rtol, atol + _batchnorm_dx_bound(dy, x, gamma, mean, invstd, dtype), "dx")
        if affine:
            assert_close(bn.weight.grad, rdgamma, rtol, atol * np.sqrt(shape[0]) * 4, "dgamma")
            assert_close(bn.bias.grad, rdbeta, rtol, atol * np.sqrt(shape[0]) * 4, "dbeta")


@dtypes
@pytest.mark.parametrize("shape", [(1, 37)] + BN_SHAPES, ids=["1x37"] + BN_IDS)
def test_batchnorm_eval_matches_oracle(rng, shape, dtype, rtol, atol):
    bn = _randomize(BatchNorm1d(shape[1], dtype=dtype), rng).eval()
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    x = random_array(rng, shape, dtype)
    y = bn(x)
    gamma, beta = bn.weight.data, bn.bias.data
    assert_close(y, R.batchnorm_forward_eval(x, gamma, beta, rm, rv), rtol, atol * 10, "y")
    assert_close(bn.running_mean, rm, 0, 0, "running_mean unchanged")
    assert_close(bn.running_var, rv, 0, 0, "running_var unchanged")
    assert int(bn.num_batches_tracked) == 0
    # eval mode is a fixed per-column affine map: y = (x - rm) * s * gamma + beta, s = 1 / sqrt(rv + eps)
    dy = random_array(rng, shape, dtype)
    s = 1.0 / np.sqrt(rv.astype(np.float64) + 1e-5)
    assert_close(bn.backward(dy), dy * s * gamma, rtol, atol, "dx")
    assert_close(bn.weight.grad, (dy * (x - rm.astype(np.float64)) * s).sum(axis=0), rtol,
                 atol * np.sqrt(shape[0]) * 4, "dgamma")
    assert_close(bn.bias.grad, dy.astype(np.float64).sum(axis=0), rtol, atol * np.sqrt(shape[0]) * 4, "dbeta")


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval(rng):
    bn = BatchNorm1d(5, track_running_stats=False, dtype=np.float64).eval()
    assert bn.running_mean is None and bn.named_buffers() == []
    x = rng.standard_normal((6, 5))
    y = bn(x)
    ry, _, _, mean, invstd = R.batchnorm_forward_train(x, None, None, None, None)
    assert_close(y, ry, 1e-12, 1e-12, "y")
    dy = rng.standard_normal((6, 5))
    assert_close(bn.backward(dy), R.batchnorm_backward(dy, x, None, mean, invstd)[0], 1e-10, 1e-12, "dx")


# ------------------------------------------------------------------------------------------------------
# the fused Linear + activation step of Sequential


@dtypes
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACT_IDS)
def test_fused_linear_activation_matches_unfused_oracle(rng, act, dtype, rtol, atol):
    cls, kw, kind, slope = act
    n, k, m = 9, 13, 7
    seq = Sequential(Linear(k, m, seed=_seed(rng), dtype=dtype), cls(**kw))
    # one step: the pair runs as one fused kernel call (the activation module is not called separately)
    assert len(seq._steps) == 1
    standalone = Linear(k, m, activation=kind, negative_slope=slope or 0.01, dtype=dtype)
    b = random_array(rng, (m,), dtype)
    seq[0].bias.data[...] = b
    standalone.bias.data[...] = b
    w = seq[0].weight.data
    standalone.weight.data[...] = w

    x = random_array(rng, (n, k), dtype)
    dy = random_array(rng, (n, m), dtype)
    # unfused float64 oracle: z = x @ W + b, y = act(z); dz = dy * act'(z), then the identity Linear's backward
    z = R.linear_forward(x, w, b)
    ry = R.activation(z, kind, slope)
    dz = R.activation_backward(dy, ry, kind, slope)
    rdx, rdw, rdb = R.linear_backward(dz, x, w, z)
    tol_y = atol + _gemm_atol(np.abs(x), np.abs(w), k, dtype) + 2 * EPS[dtype] * np.abs(b)
    for model, grads in ((seq, seq[0]), (standalone, standalone)):
        y = model(x)
        assert y.shape == (n, m) and y.dtype == dtype
        assert_close(y, ry, rtol, tol_y, "y")
        dx = model.backward(dy)
        assert_close(dx, rdx, rtol, atol + _gemm_atol(np.abs(dz), np.abs(w).T, m, dtype), "dx")
        assert_close(grads.weight.grad, rdw, rtol, atol + _gemm_atol(np.abs(x).T, np.abs(dz), n, dtype), "dW")
        assert_close(grads.bias.grad, rdb, rtol, atol + 2 * EPS[dtype] * np.abs(dz).sum(axis=0), "db")


def test_linear_with_its_own_activation_is_not_fused_with_the_next_module(rng):
    # Linear(activation="relu") then Tanh: tanh(relu(z)), two steps
    seq = Sequential(Linear(4, 3, activation="relu", seed=_seed(rng), dtype=np.float64), Tanh())
    assert len(seq._steps) == 2
    _randomize(seq, rng)
    x = rng.standard_normal((6, 4))
    w, b = seq[0].weight.data, seq[0].bias.data
    assert_close(seq(x), np.tanh(np.maximum(x @ w + b, 0)), 1e-12, 1e-14, "y")


# ------------------------------------------------------------------------------------------------------
# flat buffers


def _assert_one_buffer(model):
    params = model.parameters()
    span = flat_span(params)
    assert span is not None
    data, grad = span
    assert data.size == grad.size == model.num_parameters() == sum(p.size for p in params)
    offset = 0
    for p in params:
        assert np.shares_memory(p.data, data) and np.shares_memory(p.grad, grad)
        assert_close(data[offset:offset + p.size], p.data.reshape(-1), 0, 0, "view")
        offset += p.size
    return data, grad


def test_parameters_of_a_model_are_views_of_one_buffer_in_order(rng):
    model = MLP([5, 7, 6, 3], dropout=0.1, batchnorm=True, seed=_seed(rng), dtype=np.float64)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias", "5.weight", "5.bias",
                     "8.weight", "8.bias"]
    data, grad = _assert_one_buffer(model)
    assert data.dtype == np.float64 and data.flags.c_contiguous and grad.flags.c_contiguous
    # writing through a parameter changes the flat buffer, and the reverse
    w = model[0].weight
    value = rng.standard_normal(w.shape)
    w.data[...] = value
    assert_close(data[:w.size].reshape(w.shape), value, 0, 0, "buffer after writing param.data")
    data[w.size:w.size + 7] = np.arange(1.0, 8.0)
    assert_close(model[0].bias.data, np.arange(1.0, 8.0), 0, 0, "bias after writing the buffer")
    # backward writes into the gradient buffer
    x = rng.standard_normal((8, 5))
    model(x)
    model.backward(rng.standard_normal((8, 3)))
    assert np.abs(grad).sum() > 0
    assert_close(grad[:w.size].reshape(w.shape), w.grad, 0, 0, "grad view")
    model.zero_grad()
    assert not grad.any()


def test_a_layer_keeps_its_values_when_a_container_adopts_it(rng):
    lin = Linear(4, 3, seed=_seed(rng), dtype=np.float64)
    lin.bias.data[...] = rng.standard_normal(3)
    bn = _randomize(BatchNorm1d(3, dtype=np.float64), rng)
    before = [p.data.copy() for p in lin.parameters() + bn.parameters()]
    old_weight = lin.weight.data
    seq = Sequential(lin, bn, ReLU())
    assert not np.shares_memory(lin.weight.data, old_weight)  # repacked into the container's buffer
    for p, value in zip(seq.parameters(), before):
        assert_close(p.data, value, 0, 0, "value after packing")
    _assert_one_buffer(seq)
    # a Sequential of containers packs again, into one buffer for everything
    outer = Sequential(seq, Linear(3, 2, seed=_seed(rng), dtype=np.float64))
    _assert_one_buffer(outer)
    assert_close(outer[0][0].weight.data, before[0], 0, 0, "value after packing twice")


def test_parameter_data_cannot_be_rebound(rng):
    lin = Linear(3, 2, seed=_seed(rng))
    with pytest.raises(AttributeError, match=re.escape("cannot be rebound; copy values into it instead")):
        lin.weight.data = np.zeros((3, 2), np.float32)
    with pytest.raises(TypeError, match="dtype int64 is not supported"):
        Parameter(np.arange(3, dtype=np.int64))
    p = Parameter(rng.standard_normal((2, 3)))
    assert p.shape == (2, 3) and p.size == 6 and p.dtype == np.float64 and not p.grad.any()
    assert repr(p) == "Parameter(shape=(2, 3), dtype=float64)"


def test_containers_refuse_mixed_dtypes_and_non_modules():
    with pytest.raises(TypeError, match=re.escape("one dtype, got ['float32', 'float64']")):
        Sequential(Linear(3, 2), Linear(2, 2, dtype=np.float64))
    with pytest.raises(TypeError, match="Sequential takes Modules; argument 1 is a int"):
        Sequential(ReLU(), 3)


# ------------------------------------------------------------------------------------------------------
# modes and BatchNorm running statistics


def test_train_and_eval_propagate_to_every_submodule(rng):
    model = Sequential(MLP([3, 4, 2], dropout=0.5, batchnorm=True, seed=_seed(rng)), Dropout(0.2))
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.train(False)
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("momentum", [0.1, 0.35, None])
def test_batchnorm_running_stats_follow_torch(rng, momentum):
    torch = pytest.importorskip("torch")
    c = 6
    bn = _randomize(BatchNorm1d(c, momentum=momentum, dtype=np.float64), rng)
    tbn = torch.nn.BatchNorm1d(c, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(bn.weight.data))
        tbn.bias.copy_(torch.from_numpy(bn.bias.data))
        tbn.running_mean.copy_(torch.from_numpy(bn.running_mean))
        tbn.running_var.copy_(torch.from_numpy(bn.running_var))
    for step in range(6):
        x = rng.standard_normal((int(rng.integers(2, 12)), c)) * 2 + rng.standard_normal(c)
        y = bn(x)
        with torch.no_grad():
            ty = tbn(torch.from_numpy(x)).numpy()
        assert_close(y, ty, 1e-12, 1e-12, f"training output at step {step}")
        assert_close(bn.running_mean, tbn.running_mean.numpy(), 1e-12, 1e-14, f"running_mean at step {step}")
        assert_close(bn.running_var, tbn.running_var.numpy(), 1e-12, 1e-14, f"running_var at step {step}")
        assert int(bn.num_batches_tracked) == int(tbn.num_batches_tracked) == step + 1
    bn.eval()
    tbn.eval()
    x = rng.standard_normal((3, c))
    with torch.no_grad():
        assert_close(bn(x), tbn(torch.from_numpy(x)).numpy(), 1e-12, 1e-12, "eval output")
    assert int(bn.num_batches_tracked) == 6  # eval forwards do not count


# ------------------------------------------------------------------------------------------------------
# state dicts and configurations


def _trained_mlp(rng, seed):
    model = MLP([5, 7, 6, 3], dropout=0.3, batchnorm=True, seed=seed, dtype=np.float64)
    for _ in range(3):  # move the running statistics and the dropout counters
        model(rng.standard_normal((8, 5)))
    return model


def test_state_dict_round_trip_restores_parameters_buffers_and_dropout_masks(rng):
    seed = _seed(rng)
    model = _trained_mlp(rng, seed)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias", "5.weight",
                           "5.bias", "8.weight", "8.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked", "3.rng_seed", "3.rng_counter", "5.running_mean", "5.running_var",
                           "5.num_batches_tracked", "7.rng_seed", "7.rng_counter"]
    assert int(state["1.num_batches_tracked"]) == 3 and int(state["3.rng_counter"]) == 3
    assert not np.shares_memory(state["0.weight"], model[0].weight.data)  # copies, not views

    # a model rebuilt from the configuration (the dropout seeds are in it), then loaded
    clone = from_config(json.dumps(model.config()))
    clone(rng.standard_normal((4, 5)))  # its own counters and statistics move too, then get overwritten
    assert clone.load_state_dict(state) is clone
    for key, value in clone.state_dict().items():
        assert_close(value, state[key], 0, 0, key)
    assert clone[3].counter == model[3].counter == 3
    # same masks from here on: both models' next training forwards are identical
    x = rng.standard_normal((8, 5))
    assert_close(clone(x), model(x), 0, 0, "training output after loading")
    assert clone[3].counter == 4
    model.eval()
    clone.eval()
    assert_close(clone(x), model(x), 0, 0, "eval output after loading")


def test_load_state_dict_strict_errors(rng):
    model = _trained_mlp(rng, _seed(rng))
    state = model.state_dict()
    before = model.state_dict()
    missing = dict(state)
    del missing["4.bias"]
    with pytest.raises(KeyError, match=re.escape("missing keys ['4.bias'], unexpected keys []")):
        model.load_state_dict(missing)
    unexpected = dict(state, **{"9.weight": np.zeros(3)})
    with pytest.raises(KeyError, match=re.escape("missing keys [], unexpected keys ['9.weight']")):
        model.load_state_dict(unexpected)
    bad = {k: v + 1 for k, v in state.items()}
    bad["5.running_var"] = np.ones(7)
    with pytest.raises(ValueError, match=re.escape("entry '5.running_var' has shape (7,), the model expects (6,)")):
        model.load_state_dict(bad)
    for key, value in model.state_dict().items():  # a refused state dict leaves the model as it was
        assert_close(value, before[key], 0, 0, key)
    # strict=False loads what matches and ignores the rest
    partial = {"0.bias": state["0.bias"] + 1.0, "extra": np.zeros(2)}
    model.load_state_dict(partial, strict=False)
    assert_close(model[0].bias.data, state["0.bias"] + 1.0, 0, 0, "loaded entry")
    assert_close(model[0].weight.data, state["0.weight"], 0, 0, "entry not in the state dict")


@pytest.mark.parametrize("build", [
    lambda s: MLP([6, 9, 4], "leaky_relu", dropout=0.2, batchnorm=True, bias=False, seed=s, dtype=np.float64),
    lambda s: MLP([3, 2], "sigmoid", seed=s),
    lambda s: Sequential(Linear(5, 4, activation="tanh", init="he", seed=s), BatchNorm1d(4, eps=1e-3, momentum=None,
                         affine=False), LeakyReLU(0.3), Dropout(0.4, seed=s), Identity(),
                         Sequential(Linear(4, 2, seed=s), Sigmoid())),
], ids=["mlp", "mlp_no_hidden", "sequential"])
def test_config_rebuilds_the_same_architecture(rng, build):
    model = build(_seed(rng))
    config = model.config()
    text = json.dumps(config)
    for rebuilt in (from_config(config), from_config(text)):
        assert type(rebuilt) is type(model)
        assert rebuilt.config() == config and json.dumps(rebuilt.config()) == text
        assert repr(rebuilt) == repr(model)
        assert [(n, p.shape, p.dtype) for n, p in rebuilt.named_parameters()] == \
               [(n, p.shape, p.dtype) for n, p in model.named_parameters()]
        assert [n for n, _ in rebuilt.named_buffers()] == [n for n, _ in model.named_buffers()]
    if isinstance(model, MLP):  # the seed is part of an MLP's configuration: same initial weights
        assert_close(flat_span(from_config(text).parameters())[0], flat_span(model.parameters())[0], 0, 0)


def test_from_config_rejects_unknown_types():
    with pytest.raises(ValueError, match="unknown module type 'Conv2d' in configuration"):
        from_config({"type": "Conv2d"})
    with pytest.raises(ValueError, match="unknown module type 'list' in configuration"):
        from_config([1, 2])


# ------------------------------------------------------------------------------------------------------
# initialisation and seeds


@pytest.mark.parametrize("activation,init,expected_std", [
    ("relu", None, np.sqrt(2.0 / 800)),
    ("leaky_relu", None, np.sqrt(2.0 / (1.0 + 0.2**2) / 800)),
    (None, None, np.sqrt(2.0 / (800 + 500))),
    ("tanh", "he", np.sqrt(2.0 / 800)),
    ("relu", "xavier", np.sqrt(2.0 / (800 + 500))),
])
def test_initialisation_std(rng, activation, init, expected_std):
    lin = Linear(800, 500, activation=activation, init=init, negative_slope=0.2, seed=_seed(rng))
    w = lin.weight.data.astype(np.float64)
    assert lin.weight.shape == (800, 500) and lin.weight.dtype == np.float32
    # 400k normal draws: the sample std is within 0.5% of the true one, the mean within 5 std / sqrt(n)
    assert abs(w.std() / expected_std - 1.0) < 0.01
    assert abs(w.mean()) < 5 * expected_std / np.sqrt(w.size)
    assert not lin.bias.data.any()
    assert lin.init == (init or ("he" if activation in ("relu", "leaky_relu") else "xavier"))


def test_seeds_make_weights_reproducible(rng):
    s = _seed(rng)
    a, b, c = Linear(6, 4, seed=s), Linear(6, 4, seed=s), Linear(6, 4, seed=s + 1)
    assert_close(a.weight.data, b.weight.data, 0, 0)
    assert not np.array_equal(a.weight.data, c.weight.data)
    assert not np.array_equal(Linear(6, 4).weight.data, Linear(6, 4).weight.data)  # seed None: OS entropy
    m1, m2 = MLP([5, 8, 8, 3], dropout=0.5, seed=s), MLP([5, 8, 8, 3], dropout=0.5, seed=s)
    assert_close(flat_span(m1.parameters())[0], flat_span(m2.parameters())[0], 0, 0)
    assert [d.seed for d in m1.modules() if isinstance(d, Dropout)] == \
           [d.seed for d in m2.modules() if isinstance(d, Dropout)]
    x = rng.standard_normal((4, 5)).astype(np.float32)
    assert_close(m1(x), m2(x), 0, 0, "same seed, same masks")
    m3 = MLP([5, 8, 8, 3], dropout=0.5, seed=s + 1)
    assert not np.array_equal(flat_span(m1.parameters())[0], flat_span(m3.parameters())[0])


def test_manual_seed_gives_reproducible_masks(rng):
    model = Sequential(Dropout(0.5), Identity(), Dropout(0.5))
    x = rng.uniform(1.0, 2.0, (20, 30))

    def masks():
        return [model(x) != 0 for _ in range(3)]

    s = _seed(rng)
    assert model.manual_seed(s) is model
    first = masks()
    assert model[0].counter == model[2].counter == 3 and model[0].seed != model[2].seed
    model.manual_seed(s)
    assert model[0].counter == 0
    for a, b in zip(first, masks()):
        assert np.array_equal(a, b)
    model.manual_seed(s + 1)
    assert not np.array_equal(first[0], masks()[0])
    assert not np.array_equal(first[0], first[1])  # each call draws a new mask
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\) or None, got -3"):
        model.manual_seed(-3)


# ------------------------------------------------------------------------------------------------------
# errors


def test_input_errors(rng):
    lin = Linear(3, 2)
    with pytest.raises(ValueError, match=re.escape("expects input of shape (N, 3), got (4, 5)")):
        lin(rng.standard_normal((4, 5)).astype(np.float32))
    with pytest.raises(ValueError, match=re.escape("expects input of shape (N, 3), got (3,)")):
        lin(rng.standard_normal(3).astype(np.float32))
    with pytest.raises(TypeError, match="has float32 parameters but got a float64 input"):
        lin(rng.standard_normal((4, 3)))
    with pytest.raises(TypeError, match="expects an array, got list"):
        lin([[1.0, 2.0, 3.0]])
    bn = BatchNorm1d(3, dtype=np.float64)
    with pytest.raises(ValueError, match=re.escape("expects input of shape (N, 3), got (2, 4)")):
        bn(rng.standard_normal((2, 4)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(rng.standard_normal((1, 3)))
    model = MLP([3, 4, 2], seed=1)
    with pytest.raises(ValueError, match=re.escape("expects input of shape (N, 3), got (5, 2)")):
        model(rng.standard_normal((5, 2)).astype(np.float32))


@pytest.mark.parametrize("module", [
    lambda: Linear(3, 2), ReLU, lambda: Dropout(0.5), lambda: BatchNorm1d(3), lambda: MLP([3, 4, 2]),
], ids=["linear", "relu", "dropout", "batchnorm", "mlp"])
def test_backward_before_forward_raises(rng, module):
    with pytest.raises(RuntimeError, match="backward called without a forward first"):
        module().backward(rng.standard_normal((2, 3)).astype(np.float32))


@pytest.mark.parametrize("build,exc,match", [
    (lambda: Linear(0, 3), ValueError, "in_features must be an integer >= 1, got 0"),
    (lambda: Linear(3, 2.0), ValueError, "out_features must be an integer >= 1, got 2.0"),
    (lambda: Linear(True, 2), ValueError, "in_features must be an integer >= 1, got True"),
    (lambda: Linear(3, 2, activation="gelu"), ValueError, "activation = 'gelu' is not one of"),
    (lambda: Linear(3, 2, init="kaiming"), ValueError, re.escape("init = 'kaiming' is not one of ('he', 'xavier')")),
    (lambda: Linear(3, 2, negative_slope=-0.1), ValueError, "negative_slope = -0.1 is out of range"),
    (lambda: Linear(3, 2, dtype=np.int32), TypeError, "dtype int32 is not supported"),
    (lambda: Linear(3, 2, seed=-1), ValueError, r"seed must be an integer in \[0, 2\*\*64\) or None, got -1"),
    (lambda: Linear(3, 2, seed=1.5), ValueError, r"seed must be an integer in \[0, 2\*\*64\) or None, got 1.5"),
    (lambda: LeakyReLU(-0.5), ValueError, "negative_slope = -0.5 is out of range"),
    (lambda: Dropout(1), ValueError, re.escape("dropout probability has to be in [0, 1), got p = 1")),
    (lambda: Dropout(-0.1), ValueError, re.escape("dropout probability has to be in [0, 1), got p = -0.1")),
    (lambda: Dropout(True), ValueError, re.escape("dropout probability has to be in [0, 1), got p = True")),
    (lambda: Dropout(0.5, seed="1"), ValueError, r"seed must be an integer in \[0, 2\*\*64\) or None, got '1'"),
    (lambda: BatchNorm1d(0), ValueError, "num_features must be an integer >= 1, got 0"),
    (lambda: BatchNorm1d(3, eps=0), ValueError, "eps must be a positive number, got 0"),
    (lambda: BatchNorm1d(3, momentum=1.5), ValueError, re.escape("momentum must be a number in [0, 1] or None")),
    (lambda: MLP([5]), ValueError, re.escape("sizes must be a list of at least 2 layer widths")),
    (lambda: MLP(5), ValueError, re.escape("sizes must be a list of at least 2 layer widths")),
    (lambda: MLP([5, 0, 3]), ValueError, re.escape("sizes[1] must be an integer >= 1, got 0")),
    (lambda: MLP([5, 3], activation="softmax"), ValueError, "activation = 'softmax' is not one of"),
    (lambda: MLP([5, 4, 3], dropout=1.0), ValueError, re.escape("dropout probability has to be a number in [0, 1)")),
    (lambda: MLP([5, 4, 3], dropout=None), ValueError, re.escape("got dropout = None")),
    (lambda: Dropout(0.5, seed=2**64), ValueError, r"seed must be an integer in \[0, 2\*\*64\) or None, got 1844"),
    (lambda: MLP([5, 3], seed=-2), ValueError, r"seed must be an integer in \[0, 2\*\*64\) or None, got -2"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_constructor_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# ------------------------------------------------------------------------------------------------------
# a full training step against torch


def test_training_steps_match_torch(rng):
    torch = pytest.importorskip("torch")
    sizes = [6, 8, 5, 4]
    model = _randomize(MLP(sizes, batchnorm=True, seed=_seed(rng), dtype=np.float64), rng)
    tlayers = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(layer.weight.data.T))  # torch stores W transposed
                t.bias.copy_(torch.from_numpy(layer.bias.data))
        elif isinstance(layer, BatchNorm1d):
            t = torch.nn.BatchNorm1d(layer.num_features, dtype=torch.float64)
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(layer.weight.data))
                t.bias.copy_(torch.from_numpy(layer.bias.data))
                t.running_mean.copy_(torch.from_numpy(layer.running_mean))
                t.running_var.copy_(torch.from_numpy(layer.running_var))
        else:
            assert isinstance(layer, ReLU)
            t = torch.nn.ReLU()
        tlayers.append(t)
    tmodel = torch.nn.Sequential(*tlayers)
    lr = 0.1
    opt = nncore.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=lr, momentum=0.9)
    loss_fn, tloss_fn = CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for step in range(3):
        x = rng.standard_normal((16, sizes[0]))
        y = rng.integers(0, sizes[-1], 16)
        out = model(x)
        loss = loss_fn(out, y)
        model.backward(loss_fn.backward(), need_input_grad=False)
        tout = tmodel(torch.from_numpy(x))
        tloss = tloss_fn(tout, torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        assert_close(out, tout.detach().numpy(), 1e-10, 1e-12, f"output at step {step}")
        assert isinstance(loss, float)
        assert_close(loss, tloss.item(), 1e-10, 0, f"loss at step {step}")
        for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
            assert name == tname
            g = tp.grad.numpy()
            assert_close(p.grad, g.T if p.grad.ndim == 2 else g, 1e-10, 1e-12, f"grad of {name} at step {step}")
        opt.step()
        topt.step()
        for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            v = tp.detach().numpy()
            assert_close(p.data, v.T if p.data.ndim == 2 else v, 1e-10, 1e-12, f"{name} after step {step}")
    for name, b in model.named_buffers():
        assert_close(b, tmodel.state_dict()[name].numpy(), 1e-10, 1e-12, name)


def test_training_step_kernels_run_on_one_thread_and_the_thread_count_is_restored(rng, monkeypatch):
    # Sequential and Optimizer.step run their kernels on one Numba thread when a call could go parallel
    # (nncore/_threads.py); the caller's thread count comes back afterwards, also after an error.
    import numba

    import kernels as K
    from nncore import optim

    seen = []
    real = K.activation_forward
    def spy(*args, **kwargs):
        seen.append(numba.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(K, "activation_forward", spy)
    before = numba.get_num_threads()
    model = MLP([8, 300, 4], activation="relu", batchnorm=True, seed=0)  # BN between Linear and ReLU: not fused
    big = rng.standard_normal((200, 8)).astype(np.float32)  # 200 x 300 activations: the parallel path's size
    model(big)
    model(big[:3])
    assert seen == [1, before]
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        model(rng.standard_normal((200, 7)).astype(np.float32))
    assert numba.get_num_threads() == before
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.backward(np.ones((3, 4), np.float32))
    opt.step()
    assert numba.get_num_threads() == before
