"""CUDA loss kernels (kernels/cuda/losses.py) against the CPU kernels and the float64 oracle.

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python call per thread, so the
inputs are small; with one, on the device (NumPy arrays are copied in and out by Numba). Each device
launch gets exactly the arguments the public CPU function gave its kernel for the same call (captured
with a spy: the periodic weight and pos_weight vectors, w_full, the scale, the buffers), so both targets
run the same loss on the same inputs; the device's buffers start at 7, not 0, so a skipped element shows.

Tolerances:
* MSE and L1: loss and gradient elements bitwise the CPU's (a difference, then one multiply each).
* BCE elements: 8 ulp, and for the gradient, 8 ulp of its two terms w (|1 - t| + |pw t|) * scale (they
  can cancel): the simulator runs the very helpers the CPU loop inlines, so it agrees to the bit in
  practice; a GPU calls libdevice's exp/log1p in float64, divides approximately in float32 (2 ulp) and
  contracts multiply-adds into FMAs.
* block partials against the CPU's: both are float64 sums of the same LOSS_BLOCK terms, added in
  different orders (the CPU's loop is vectorised by LLVM), so within (terms - 1) float64 ulp of the sum
  of |terms| (plus, for BCE, the elements' 8 ulp); the reduced loss adds the device's float64 sum of the
  partials (a tree, where the CPU's math.fsum is exact: one float64 ulp per partial) and one rounding to
  the dtype.
* block partials against a NumPy model of the documented order (per-thread sums, then the shared-memory
  tree), built from the device's own per-element losses: bitwise.

The last tests call the public functions (kernels.losses) on device arrays from the ``dev`` fixture (the
simulator's, or CuPy's on a GPU): every launch gets device arrays only (weights, partials and the reduced
loss are built on the device), a "mean"/"sum" loss comes back as a 0-d device array, out=, and the CPU's
error messages for the same bad input.
"""

import math

import numba
import numpy as np
import pytest

from kernels import losses as L
from kernels import reference as R
from tests.helpers import (
    DTYPE_IDS,
    DTYPE_TOLS,
    DTYPES,
    assert_close,
    assert_same_error,
    non_finite_loss_inputs,
)
from tests.helpers import random_array as _random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda.losses as CLo
from kernels.cuda import THREADS

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
EPS64 = EPS[np.float64]
# (shape, weight layout, pos_weight layout, reduction): every layout the CPU builds (a periodic weight:
# None, last axis, scalar; a full one: same shape, a column, a broadcast middle axis), pos_weight None, one
# per column and a single one, and each reduction three times (the kernel sees a reduction only as
# store_loss and the scale); one element, one row, one column, sizes past one THREADS-thread sweep, and
# 40 x 77, past the CPU's period of the tiled weights (77 * 27 = 2079 elements), where the periodic index
# wraps and only a full weight is indexed by the element
BCE_CASES = [((1, 1), None, None, "mean"), ((1, 7), "last_axis", "per_column", "sum"),
             ((5, 1), "column", "single", "none"), ((7, 33), "full", "per_column", "mean"),
             ((65, 5), "scalar", "single", "sum"), ((130, 3), None, "per_column", "none"),
             ((3, 4, 5), "middle", "per_column", "none"), ((), "scalar", None, "sum"),
             ((40, 77), "column", "per_column", "mean")]
BCE_IDS = ["1x1-mean", "1x7-lastaxis-pw-sum", "5x1-column-pw1-none", "7x33-full-pw-mean", "65x5-scalar-pw1-sum",
           "130x3-pw-none", "3x4x5-middle-pw-none", "scalar-sum", "40x77-column-pw-mean"]
# MSE and L1 run over the flat array: one element, one partial sweep of THREADS threads, one and a half;
# each with one reduction
DIFF_CASES = [((1, 1), "mean"), ((7, 33), "none"), ((130, 3), "sum")]
DIFF_IDS = ["1x1-mean", "7x33-none", "130x3-sum"]
DIFF = {"mse": (L.mse_loss, R.mse_loss, L.MSE), "l1": (L.l1_loss, R.l1_loss, L.L1)}


def random_array(rng, shape, dtype, **kw):
    # np.asarray: astype on a 0-d draw returns a NumPy scalar, and the kernels take arrays only
    return np.asarray(_random_array(rng, shape, dtype, **kw))


def _weights(rng, shape, dtype, w_kind, pw_kind):
    """(weight, pos_weight) of the named layouts (None: absent)."""
    c = shape[-1] if shape else 1
    w_shape = {"full": shape, "last_axis": (c,), "scalar": (), "column": shape[:-1] + (1,),
               "middle": shape[:1] + (1,) + shape[2:]}.get(w_kind)
    pw_shape = {"per_column": (c,), "single": (1,)}.get(pw_kind)
    return (None if w_shape is None else random_array(rng, w_shape, dtype, low=0.5, high=2.0),
            None if pw_shape is None else random_array(rng, pw_shape, dtype, low=0.2, high=3.0))


def _cpu(monkeypatch, kernel_names, fn, *args, **kw):
    """Run the public CPU function; return (loss, dx, the arguments its kernel got, its partials)."""
    seen = []
    for name in kernel_names:
        real = getattr(L, name)

        def spy(*a, real=real):
            real(*a)
            seen.append((a, a[-1].copy()))

        monkeypatch.setattr(L, name, spy)
    loss, dx = fn(*args, **kw)
    monkeypatch.undo()
    (kernel_args, partials), = seen
    return loss, dx, list(kernel_args), partials


def _on_device(run, kernel_args, dx_at, loss_at):
    """Launch ``run`` with the CPU kernel's arguments, fresh buffers in place of its outputs; return the
    device's (dx, loss, partials), flat."""
    # Numba copies NumPy arguments back after a launch, which a read-only input (the CPU passes a full
    # weight as a broadcast view when it needs no copy) does not allow
    a = [np.array(v) if isinstance(v, np.ndarray) and not v.flags.writeable else v for v in kernel_args]
    for i in (dx_at, loss_at, len(a) - 1):
        a[i] = np.full_like(a[i], 7.0)
    run(*a)
    cuda.synchronize()
    return a[dx_at], a[loss_at], a[-1]


def _bce_args(monkeypatch, x, t, w, pw, reduction):
    return _cpu(monkeypatch, ["_bce_serial", "_bce_parallel"], L.binary_cross_entropy_with_logits, x, t,
                weight=w, pos_weight=pw, reduction=reduction)


def _diff_args(monkeypatch, name, x, t, reduction):
    return _cpu(monkeypatch, ["_diff_serial", "_diff_parallel"], DIFF[name][0], x, t, reduction=reduction)


def _assert_same_bits(actual, expected, name):
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, f"{name}: NaN positions")
    assert actual[~nan].tobytes() == expected[~nan].tobytes(), f"{name}: not bitwise the CPU's"


def _block_tol(terms, dtype_eps):
    """Per LOSS_BLOCK: how far two float64 sums of these terms (each term within dtype_eps relative of the
    other's) may be apart when added in different orders."""
    flat = np.abs(terms.reshape(-1).astype(np.float64))
    blocks = [flat[i:i + L.LOSS_BLOCK] for i in range(0, flat.size, L.LOSS_BLOCK)]
    return np.array([(b.size * EPS64 + dtype_eps) * b.sum() for b in blocks])


def _check_reduced(reduction, loss_dev, part_dev, loss_cpu, part_cpu, x, dtype, terms, elem_eps):
    """The device's partials and finished loss against the CPU's."""
    if reduction == "none":
        assert part_dev.tolist() == [0.0] * part_dev.size  # as on the CPU: nothing summed
    else:
        assert_close(part_dev, part_cpu, 0.0, _block_tol(terms, elem_eps), "block partials vs CPU")
    loss = CLo.reduced_loss(reduction, loss_dev.reshape(x.shape) if reduction == "none" else loss_dev, part_dev,
                            x.size, dtype)
    if reduction == "none":
        assert loss.shape == x.shape and loss.dtype == dtype
    else:  # a 0-d array, summed by the device (NumPy here: the partials are)
        assert loss.shape == () and loss.dtype == dtype
        scale = 1.0 / x.size if reduction == "mean" else 1.0
        assert_close(loss, loss_cpu, EPS[dtype], scale * _block_tol(terms, elem_eps).sum(), "loss vs CPU")
    return loss


@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,w_kind,pw_kind,reduction", BCE_CASES, ids=BCE_IDS)
def test_bce_matches_cpu_and_oracle(monkeypatch, rng, shape, w_kind, pw_kind, reduction, dtype, rtol,
                                    atol):
    x = random_array(rng, shape, dtype, scale=3.0)
    t = random_array(rng, shape, dtype, low=0.0, high=1.0)
    w, pw = _weights(rng, shape, dtype, w_kind, pw_kind)
    loss_cpu, dx_cpu, args, part_cpu = _bce_args(monkeypatch, x, t, w, pw, reduction)
    dx, loss_dev, part = _on_device(CLo.run_bce, args, 5, 6)

    eps = 8 * EPS[dtype]
    wb = np.broadcast_to(1.0 if w is None else w.astype(np.float64), shape)
    pwb = np.broadcast_to(1.0 if pw is None else pw.astype(np.float64), shape)
    scale = 1.0 / x.size if reduction == "mean" else 1.0
    grad_terms = wb * (np.abs(1.0 - t) + np.abs(pwb * t)) * scale
    assert dx.dtype == dtype
    assert_close(dx.reshape(shape), dx_cpu, eps, eps * grad_terms, "dx vs CPU")
    if reduction == "none":
        assert_close(loss_dev.reshape(shape), loss_cpu, eps, 0.0, "loss elements vs CPU")
    terms = loss_cpu if reduction == "none" else R.binary_cross_entropy_with_logits(
        x, t, weight=w, pos_weight=pw, reduction="none")[0]
    loss = _check_reduced(reduction, loss_dev, part, loss_cpu, part_cpu, x, dtype, terms, eps)
    r_loss, r_dx = R.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction)
    assert_close(loss, r_loss, rtol, atol, "loss vs oracle")
    assert_close(dx.reshape(shape), r_dx, rtol, atol, "dx vs oracle")


@pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,reduction", DIFF_CASES, ids=DIFF_IDS)
@pytest.mark.parametrize("name", ["mse", "l1"])
def test_mse_l1_match_cpu_and_oracle(monkeypatch, rng, name, shape, reduction, dtype, rtol, atol):
    x = random_array(rng, shape, dtype)
    t = random_array(rng, shape, dtype)
    if x.size > 2:
        t.reshape(-1)[1] = x.reshape(-1)[1]  # L1's gradient at x == t is 0
    loss_cpu, dx_cpu, args, part_cpu = _diff_args(monkeypatch, name, x, t, reduction)
    dx, loss_dev, part = _on_device(CLo.run_diff, args, 2, 3)
    assert dx.dtype == dtype
    _assert_same_bits(dx.reshape(shape), dx_cpu, "dx")
    if reduction == "none":
        _assert_same_bits(loss_dev.reshape(shape), loss_cpu, "loss elements")
    terms = R.mse_loss(x, t, reduction="none")[0] if name == "mse" else np.abs(x - t)
    loss = _check_reduced(reduction, loss_dev, part, loss_cpu, part_cpu, x, dtype, terms, 0.0)
    r_loss, r_dx = DIFF[name][1](x, t, reduction=reduction)
    assert_close(loss, r_loss, rtol, atol, "loss vs oracle")
    assert_close(dx.reshape(shape), r_dx, rtol, atol, "dx vs oracle")


def _model_partials(terms):
    """The documented order: per LOSS_BLOCK, thread k adds elements k, k + THREADS, ... into 0.0, then the
    THREADS sums are added by halving: s[k] += s[k + h] for h = THREADS / 2, ..., 1."""
    flat = terms.reshape(-1).astype(np.float64)
    out = []
    for i0 in range(0, flat.size, L.LOSS_BLOCK):
        block = flat[i0:i0 + L.LOSS_BLOCK]
        rows = np.zeros(-(-block.size // THREADS) * THREADS)  # + 0.0 changes no non-negative sum
        rows[:block.size] = block
        s = np.zeros(THREADS)
        for row in rows.reshape(-1, THREADS):
            s = s + row
        h = THREADS // 2
        while h:
            s[:h] = s[:h] + s[h:2 * h]
            h //= 2
        out.append(s[0])
    return np.array(out)


TWO_BLOCKS = L.LOSS_BLOCK + 37


# n = 300: a full sweep of THREADS threads and a partial one; TWO_BLOCKS: a full LOSS_BLOCK and a short one
# (each loss and dtype once: the simulator takes about a second per LOSS_BLOCK)
@pytest.mark.parametrize("name,dtype,n", [("bce", np.float32, 300), ("bce", np.float64, TWO_BLOCKS),
                                          ("mse", np.float32, TWO_BLOCKS), ("mse", np.float64, 300),
                                          ("l1", np.float32, 300), ("l1", np.float64, TWO_BLOCKS)],
                         ids=["bce-float32-n300", "bce-float64-two-blocks", "mse-float32-two-blocks",
                              "mse-float64-n300", "l1-float32-n300", "l1-float64-two-blocks"])
def test_partials_follow_the_documented_order(monkeypatch, rng, name, dtype, n):
    x = random_array(rng, (n,), dtype, scale=3.0)
    t = random_array(rng, (n,), dtype, low=0.0, high=1.0)

    def cpu(reduction):
        if name == "bce":
            return _bce_args(monkeypatch, x, t, None, None, reduction)
        return _diff_args(monkeypatch, name, x, t, reduction)

    run, dx_at, loss_at = (CLo.run_bce, 5, 6) if name == "bce" else (CLo.run_diff, 2, 3)
    _, _, args_none, _ = cpu("none")
    _, elements, _ = _on_device(run, args_none, dx_at, loss_at)
    loss_cpu, _, args_sum, part_cpu = cpu("sum")
    _, loss_dev, part = _on_device(run, args_sum, dx_at, loss_at)
    assert part.shape == (-(-n // L.LOSS_BLOCK),)
    expected = _model_partials(elements)
    assert part.tobytes() == expected.tobytes(), f"partials {part} vs the documented order's {expected}"
    elem_eps = 8 * EPS[dtype] if name == "bce" else 0.0
    _check_reduced("sum", loss_dev, part, loss_cpu, part_cpu, x, dtype, elements, elem_eps)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["bce", "mse", "l1"])
def test_non_finite_inputs_follow_the_cpu(monkeypatch, rng, name, dtype):
    # as tests/test_losses.py: NaN propagates to its element and to a reduced loss; x = +-inf gives the
    # formula's inf, or NaN where 0 * inf
    x, t = non_finite_loss_inputs(rng, dtype)
    pw = random_array(rng, (6,), dtype, low=0.2, high=3.0)
    for reduction in ("none", "mean"):
        if name == "bce":
            loss_cpu, dx_cpu, args, _ = _bce_args(monkeypatch, x, t, None, pw, reduction)
            dx, loss_dev, part = _on_device(CLo.run_bce, args, 5, 6)
        else:
            loss_cpu, dx_cpu, args, _ = _diff_args(monkeypatch, name, x, t, reduction)
            dx, loss_dev, part = _on_device(CLo.run_diff, args, 2, 3)
        assert_close(dx.reshape(x.shape), dx_cpu, 8 * EPS[dtype], 0.0, f"dx ({reduction})")
        loss = CLo.reduced_loss(reduction, loss_dev.reshape(x.shape) if reduction == "none" else loss_dev, part,
                                x.size, dtype)
        assert_close(loss, loss_cpu, 8 * EPS[dtype], 0.0, f"loss ({reduction})")
        if reduction != "none":
            assert np.isnan(loss)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_empty_input_launches_nothing_and_gives_zero(reduction):
    x = np.empty((0, 3))
    loss_cpu, _ = L.mse_loss(x, x.copy(), reduction=reduction)
    partials = np.empty(0)
    dx = np.empty(0)
    CLo.run_diff(x.reshape(-1), x.reshape(-1), dx, np.empty(0), False, 1.0, L.MSE, partials)
    CLo.run_bce(x.reshape(-1), x.reshape(-1), np.ones(3), False, np.ones(3), dx, np.empty(0), False, 1.0, partials)
    loss = CLo.reduced_loss(reduction, np.empty(0), partials, 0, np.float64)
    assert loss == loss_cpu == 0.0 and loss.dtype == np.float64


def test_reduced_loss_sums_device_partials_on_the_device(rng, dev):
    # integers times 2^-10 below 2^40: every partial sum is exact in float64, so any order of adding them
    # gives math.fsum's value, and the result is the CPU's "sum" / n exactly ("mean" divides once)
    part = rng.integers(-2**40, 2**40, size=300).astype(np.float64) * 2.0**-10
    d = dev.asarray(part)
    for reduction, mul, div, dtype in (("sum", 1, 1, np.float64), ("mean", 1, 7, np.float32)):
        loss = CLo.reduced_loss(reduction, None, d, 7, dtype)
        assert type(loss) is type(d) and loss.shape == () and loss.dtype == dtype
        assert dev.asnumpy(loss) == dtype(math.fsum(part) * mul / div)
    empty = CLo.reduced_loss("mean", None, dev.empty(0), 0, np.float32)
    assert type(empty) is type(d) and dev.asnumpy(empty) == 0.0


# ------------------------------------------------------------------------------------------------------
# the public functions on device arrays (kernels.losses dispatching to the launchers above)


def _spy_launches(monkeypatch, device_type):
    """Record the launchers' array arguments and check that every one is a device array: the weight vectors,
    the partials and the loss's one-element result are built on the device, not on the host."""
    seen = []
    for name in ("run_bce", "run_diff", "sum_scaled"):
        real = getattr(CLo, name)

        def spy(*args, real=real, name=name):
            arrays = [a for a in args if hasattr(a, "dtype") and hasattr(a, "shape") and not np.isscalar(a)]
            assert all(type(a) is device_type for a in arrays), (name, [type(a).__name__ for a in arrays])
            seen.append(name)
            return real(*args)

        monkeypatch.setattr(CLo, name, spy)
    return seen


# (loss, shape, weight layout, pos_weight layout, reduction, dtype): every weight layout the CPU builds
# (periodic: last axis; full: a column, same shape), each reduction, each dtype
PUBLIC_CASES = [("bce", (7, 33), "column", "per_column", "mean", np.float32),
                ("bce", (5, 1), "full", "single", "none", np.float64),
                ("bce", (2, 3, 5), "last_axis", None, "sum", np.float64),
                ("mse", (7, 33), None, None, "mean", np.float32), ("mse", (65, 5), None, None, "sum", np.float64),
                ("l1", (7, 33), None, None, "none", np.float32), ("l1", (1, 1), None, None, "mean", np.float64)]
PUBLIC_IDS = ["bce-column-pw-mean-float32", "bce-full-pw1-none-float64", "bce-lastaxis-sum-float64",
              "mse-mean-float32", "mse-sum-float64", "l1-none-float32", "l1-1x1-mean-float64"]


@pytest.mark.parametrize("name,shape,w_kind,pw_kind,reduction,dtype", PUBLIC_CASES, ids=PUBLIC_IDS)
def test_public_functions_on_device_arrays(monkeypatch, rng, dev, name, shape, w_kind, pw_kind, reduction,
                                           dtype):
    """Device arrays in, device arrays out (a "mean"/"sum" loss as a 0-d device array of the dtype, reduced
    on the device); values against the CPU public function (tolerances of the module docstring: MSE/L1
    gradients bitwise, BCE 8 ulp, the reduced loss within the float64 sums' rounding) and the oracle."""
    x = random_array(rng, shape, dtype, scale=3.0)
    t = random_array(rng, shape, dtype, low=0.0, high=1.0)
    if name != "bce":
        t.reshape(-1)[0] = x.reshape(-1)[0]  # L1's gradient at x == t is 0
    w, pw = _weights(rng, shape, dtype, w_kind, pw_kind)
    kw = {"reduction": reduction}
    if name == "bce":
        fn, oracle = L.binary_cross_entropy_with_logits, R.binary_cross_entropy_with_logits
        kw.update(weight=w, pos_weight=pw)
    else:
        fn, oracle = DIFF[name][:2]
    d_x = dev.asarray(x)
    seen = _spy_launches(monkeypatch, type(d_x))
    loss, dx = fn(d_x, dev.asarray(t), **{k: v if isinstance(v, str) or v is None else dev.asarray(v)
                                          for k, v in kw.items()})
    assert seen == [("run_bce" if name == "bce" else "run_diff")] + ([] if reduction == "none" else ["sum_scaled"])
    monkeypatch.undo()
    assert type(loss) is type(d_x) and type(dx) is type(d_x)
    assert loss.shape == (shape if reduction == "none" else ()) and dx.shape == shape
    assert loss.dtype == dx.dtype == dtype
    loss, dx = dev.asnumpy(loss), dev.asnumpy(dx)

    loss_cpu, dx_cpu = fn(x, t, **kw)
    r_loss, r_dx = oracle(x, t, **kw)
    elem_eps = 8 * EPS[dtype] if name == "bce" else 0.0
    n_scale = 1.0 / x.size if reduction == "mean" else 1.0
    if name == "bce":
        wb = np.broadcast_to(1.0 if w is None else w.astype(np.float64), shape)
        pwb = np.broadcast_to(1.0 if pw is None else pw.astype(np.float64), shape)
        assert_close(dx, dx_cpu, elem_eps, elem_eps * wb * (np.abs(1.0 - t) + np.abs(pwb * t)) * n_scale, "dx vs CPU")
    else:
        _assert_same_bits(dx, dx_cpu, "dx vs CPU")
    if reduction == "none":
        assert_close(loss, loss_cpu, elem_eps, 0.0, "loss elements vs CPU")
    else:
        terms = oracle(x, t, **{**kw, "reduction": "none"})[0]
        assert_close(loss, loss_cpu, EPS[dtype], n_scale * _block_tol(terms, elem_eps).sum(), "loss vs CPU")
    rtol, atol = {d: (r, a) for d, r, a in DTYPE_TOLS}[dtype]
    assert_close(loss, r_loss, rtol, atol, "loss vs oracle")
    assert_close(dx, r_dx, rtol, atol, "dx vs oracle")


def test_public_functions_out_and_empty_on_device(rng, dev):
    x = random_array(rng, (3, 5), np.float64)
    t = random_array(rng, (3, 5), np.float64)
    out = dev.asarray(np.full(x.shape, 7.0))
    loss, dx = L.l1_loss(dev.asarray(x), dev.asarray(t), reduction="sum", out=out)
    assert dx is out
    _assert_same_bits(dev.asnumpy(out), L.l1_loss(x, t, reduction="sum")[1], "dx into out")
    assert_close(dev.asnumpy(loss), L.l1_loss(x, t, reduction="sum")[0], EPS64, _block_tol(np.abs(x - t), 0.0).sum(),
                 "loss (the CPU adds the terms in another order)")
    # an empty input: loss 0 (not 0/0), as on the CPU, still a 0-d device array
    e = dev.asarray(np.empty((0, 4), np.float32))
    loss, dx = L.binary_cross_entropy_with_logits(e, e.copy(), pos_weight=dev.asarray(np.ones(4, np.float32)))
    assert type(loss) is type(e) and loss.shape == () and loss.dtype == np.float32 and dev.asnumpy(loss) == 0.0
    assert type(dx) is type(e) and dx.shape == (0, 4)


def _out_is_input(fn, x, t, which):
    """A case for assert_same_error: fn(x, t) with out= the x (which=0) or the target (1) it reads."""
    def case(a):
        args = (a(x), a(t))
        return fn(*args, out=args[which])
    return case


def test_public_functions_reject_bad_device_input_as_on_the_cpu(rng, dev):
    x = random_array(rng, (3, 4), np.float32)
    t = random_array(rng, (3, 4), np.float32, low=0.0, high=1.0)
    bce = L.binary_cross_entropy_with_logits
    cases = []
    for fn in (bce, L.mse_loss, L.l1_loss):
        cases += [
            lambda a, fn=fn: fn(a(x.astype(np.int64)), a(t)),
            lambda a, fn=fn: fn(a(x), a(t.astype(np.float64))),
            lambda a, fn=fn: fn(a(x), a(t[:2])),
            lambda a, fn=fn: fn(a(x), a(t), reduction="average"),
            lambda a, fn=fn: fn(a(x), a(t), out=a(np.empty((3, 4), np.float64))),
            _out_is_input(fn, x, t, 0),
            _out_is_input(fn, x, t, 1),
        ]
    cases += [
        lambda a: bce(a(x), a(t), weight=a(np.ones((2, 4), np.float32))),
        lambda a: bce(a(x), a(t), weight=a(np.ones(4, np.float64))),
        lambda a: bce(a(x), a(t), pos_weight=a(np.ones(3, np.float32))),
        lambda a: bce(a(x), a(t), pos_weight=a(np.ones((1, 4), np.float32))),
    ]
    for case in cases:
        assert_same_error(lambda: case(lambda v: v), lambda: case(dev.asarray))
    with pytest.raises(TypeError, match="^target is on the CPU .NumPy. but x is on the GPU"):
        L.mse_loss(dev.asarray(x), t)
    with pytest.raises(TypeError, match="^x is on the CPU .NumPy. but out is on the GPU"):
        L.l1_loss(x, t, out=dev.asarray(x))
    with pytest.raises(TypeError, match="^pos_weight is on the CPU .NumPy. but x is on the GPU"):
        bce(dev.asarray(x), dev.asarray(t), weight=dev.asarray(t), pos_weight=np.ones(4, np.float32))
