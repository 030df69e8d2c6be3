"""CUDA softmax / log_softmax / fused cross-entropy / NLL kernels (kernels/cuda/softmax_xent.py) against the
CPU public functions and the float64 oracle (kernels/reference.py): first the launchers on their own, then
the public functions of kernels.softmax_xent on device arrays (the ``dev`` fixture: CuPy on a GPU, the
simulator's device arrays without one).

Without a GPU these run in Numba's CUDA simulator (tests/conftest.py), one Python thread per CUDA thread,
so the shapes are small: 1x1, 1xC, Nx1, 7x33 (rows sharing a block, the last row group part empty) and
3x300 (C larger than a block of 256 threads: each thread strides over two columns). The cross-entropy
kernels are fed the very scalars (eps, ignore_index, gradient scale) that the public CPU function gave its
own row kernel, captured from that call, and their per-row float64 losses are compared with the public
function's reduction="none" output and the oracle's; the host total (index-order sum times the scale) with
the "mean"/"sum" loss. Inputs with three or more rows hold a row of huge logits (scale 1e4:
every exp but the maximum's underflows) and a row with -inf (masked) logits; a separate test has rows
with NaN, +inf and only -inf. Output buffers start at a sentinel, so an element no thread writes fails.

Tolerances. Against the oracle: the CPU's own (tests/helpers.DTYPE_TOLS). Against the CPU kernels: float32
as against the oracle (2e-5 relative, 2e-6 absolute): the CPU's polynomial exp and the device's expf are
each within 2 ulp (in the simulator math.exp of a float32 is the host's double exp, closer still), and the
CPU sums float32 exps in float32 where the device sums them in float64.
float64 to 1e-12 relative and 1e-15 absolute: the same exp (the host libm in the simulator, libdevice's
within 1 ulp on a GPU) and sums of at most 300 terms in another order (a few ulp of the row sum), with FMA
contraction on a GPU; the absolute part covers gradients that cancel to ~0 (p_y - 1 with p_y ~ 1).

The public-function tests use the same two tolerances, for the same reasons; the "mean"/"sum" loss adds a
float64 tree sum over at most 300 rows (and, for hard "mean", a tree sum of the weights) where the CPU adds
in index order: a few float64 ulp, far inside either tolerance once rounded to float32. The backward passes
round a float64 row sum to the dtype as the CPU does; where dy - sum cancels, a 1-ulp difference of the
rounded sum shows up absolutely, inside the absolute tolerances (y and exp(y) at most 1, sums over at
most 33 columns).
"""

import numba
import numpy as np
import pytest

from kernels import reference as ref
from kernels import softmax_xent as sx
from kernels.softmax_xent.cpu import _sum_serial
from tests.helpers import DTYPE_IDS, DTYPE_TOLS, TOLS, assert_close, random_array

cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(not (numba.config.ENABLE_CUDASIM or cuda.is_available()),
                                reason="no CUDA device and the CUDA simulator is off")

import kernels.cuda as KC  # noqa: E402
import kernels.cuda.softmax_xent as CS  # noqa: E402

SHAPES = [(1, 1), (1, 7), (5, 1), (7, 33), (3, 300)]
SHAPE_IDS = ["1x1", "1x7", "5x1", "7x33", "3x300"]
shapes = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
dtypes = pytest.mark.parametrize("dtype,rtol,atol", DTYPE_TOLS, ids=DTYPE_IDS)
SENTINEL = 12345.0
VS_CPU = {np.float32: TOLS[np.float32], np.float64: (1e-12, 1e-15)}

# (few, as every launch costs ~1 s in the simulator) hard targets: "mean" over the rows not ignored (-100);
# class weights, label smoothing and an ignore_index that is a real class, summed. Probability targets:
# weighted and smoothed "mean" (over N); plain per row. Every case also checks the per-row losses.
HARD_CASES = [
    dict(weighted=False, reduction="mean"),
    dict(weighted=True, ignore_index=1, label_smoothing=0.2, reduction="sum"),
]
HARD_IDS = ["mean", "weighted-smoothed-ignore1-sum"]
SOFT_CASES = [dict(weighted=True, label_smoothing=0.1, reduction="mean"), dict(weighted=False, reduction="none")]
SOFT_IDS = ["weighted-smoothed-mean", "none"]


def _logits(rng, shape, dtype, keep=0):
    """normal(0, 3) logits; with 3+ rows, row 1 has huge logits and row 2 masked (-inf) entries, never at
    column ``keep`` (its target, so that row's hard loss stays finite without smoothing)."""
    x = random_array(rng, shape, dtype, scale=3.0)
    n, c = shape
    if n >= 3:
        x[1] = random_array(rng, c, dtype, scale=1e4)
        masked = rng.random(c) < 0.3
        masked[keep] = False
        x[2, masked] = -np.inf
    return x


def _hard_targets(rng, n, c, ignore_index):
    t = rng.integers(0, c, size=n)
    if n > 1:
        t[rng.random(n) < 0.3] = ignore_index
        t[0] = ignore_index
        t[-1] = rng.integers(0, c)  # at least one row counts
    return t


def _hard_logits(rng, shape, dtype, target, ignore_index):
    """_logits keeping row 2's target unmasked; for an ignored row, column 0, which the oracle reads (times
    a zero weight) in place of the target."""
    keep = int(target[2]) if shape[0] >= 3 and target[2] != ignore_index else 0
    return _logits(rng, shape, dtype, keep)


def _probs(rng, shape, dtype):
    p = rng.uniform(0.01, 1.0, size=shape)
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _cpu_xent(logits, target, **kw):
    """Run the public CPU cross-entropy; returns (loss, dlogits, the arguments it gave its row kernel)."""
    seen = []
    with pytest.MonkeyPatch.context() as mp:
        for name in ("_xent_hard_serial", "_xent_hard_parallel", "_xent_soft_serial", "_xent_soft_parallel"):
            real = getattr(sx, name)

            def spy(*args, real=real):
                seen.append(args)
                return real(*args)

            mp.setattr(sx, name, spy)
        loss, g = sx.softmax_cross_entropy(logits, target, **kw)
    (args,) = seen
    return loss, g, args


def _device_xent(args):
    """Launch the device kernel on the CPU kernel's arguments; returns (dlogits, loss_rows)."""
    g = np.full_like(args[0], SENTINEL)
    rows = np.full(args[0].shape[0], SENTINEL)
    if len(args) == 10:  # hard: x, target, w, wsum, eps, ignore_index, scale, g, refs, loss_rows
        CS.xent_hard(*args[:3], *args[4:7], g, rows)  # the device kernel sums the weights itself
    else:  # soft: x, t, w, eps, scale, g, refs, loss_rows
        CS.xent_soft(*args[:5], g, rows)
    cuda.synchronize()
    return g, rows


def _check_xent(x, target, kw, dtype, rtol, atol):
    loss_cpu, g_cpu, args = _cpu_xent(x, target, **kw)
    g, rows = _device_xent(args)
    assert g.shape == x.shape and g.dtype == dtype
    crtol, catol = VS_CPU[dtype]
    # per-row losses: the CPU function and the oracle with reduction "none"
    rows_cpu, _ = sx.softmax_cross_entropy(x, target, **{**kw, "reduction": "none"})
    rows_ref, _ = ref.cross_entropy(x, target, **{**kw, "reduction": "none"})
    assert_close(rows, rows_cpu, crtol, catol, "loss rows vs CPU")
    assert_close(rows, rows_ref, rtol, atol, "loss rows vs oracle")
    loss_ref, g_ref = ref.cross_entropy(x, target, **kw)
    assert_close(g, g_cpu, crtol, catol, "dlogits vs CPU")
    assert_close(g, g_ref, rtol, atol, "dlogits vs oracle")
    if kw["reduction"] != "none":
        total = _sum_serial(rows) * args[-4]  # the gradient scale is the "mean"/"sum" loss scale
        assert_close(total, loss_cpu, crtol, catol, "loss vs CPU")
        assert_close(total, loss_ref, rtol, atol, "loss vs oracle")


def _options(rng, kw, c, dtype):
    kw = dict(kw)
    if kw.pop("weighted"):
        kw["weight"] = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    return kw


# --------------------------------------------------------------------------------------------------


def test_launch_shape():
    assert CS.launch_shape(1, 1) == (1, (1, 1))
    assert CS.launch_shape(5, 1) == (1, (1, 5))  # one thread per row, the rows share one block
    assert CS.launch_shape(1, 7) == (1, (8, 1))
    assert CS.launch_shape(7, 33) == (2, (64, 4))
    assert CS.launch_shape(65, 5) == (3, (8, 32))
    assert CS.launch_shape(3, 300) == (3, (KC.THREADS, 1))  # C above a block: threads stride
    assert CS.launch_shape(10**7, 5) == (KC.MAX_BLOCKS, (8, 32))  # grid-stride over the row groups


@dtypes
@shapes
def test_softmax_and_log_softmax_match_cpu_and_oracle(rng, shape, dtype, rtol, atol):
    x = _logits(rng, shape, dtype)
    crtol, catol = VS_CPU[dtype]
    for name, launch in [("softmax", CS.softmax), ("log_softmax", CS.log_softmax)]:
        y = np.full_like(x, SENTINEL)
        launch(x, y)
        cuda.synchronize()
        assert_close(y, getattr(sx, name)(x), crtol, catol, f"{name} vs CPU")
        assert_close(y, getattr(ref, name)(x), rtol, atol, f"{name} vs oracle")


@pytest.mark.parametrize("kw", HARD_CASES, ids=HARD_IDS)
@dtypes
@shapes
def test_xent_hard_matches_cpu_and_oracle(rng, shape, kw, dtype, rtol, atol):
    n, c = shape
    kw = _options(rng, kw, c, dtype)
    ignore_index = kw.get("ignore_index", -100)
    target = _hard_targets(rng, n, c, ignore_index)
    x = _hard_logits(rng, shape, dtype, target, ignore_index)
    _check_xent(x, target, kw, dtype, rtol, atol)


@pytest.mark.parametrize("kw", SOFT_CASES, ids=SOFT_IDS)
@dtypes
@shapes
def test_xent_soft_matches_cpu_and_oracle(rng, shape, kw, dtype, rtol, atol):
    kw = _options(rng, kw, shape[1], dtype)
    _check_xent(_logits(rng, shape, dtype), _probs(rng, shape, dtype), kw, dtype, rtol, atol)


@dtypes
def test_all_ignored_batch_gives_zero_loss_and_gradient(rng, dtype, rtol, atol):
    x = _logits(rng, (5, 1), dtype)
    target = np.zeros(5, dtype=np.int64)  # class 0 is ignore_index: every row ignored, "mean" over 0 rows
    _check_xent(x, target, dict(ignore_index=0, label_smoothing=0.3, reduction="mean"), dtype, rtol, atol)
    g, rows = _device_xent(_cpu_xent(x, target, ignore_index=0, reduction="mean")[2])
    assert not g.any() and not rows.any()


# inf - inf in these rows: the simulator's Python arithmetic and the oracle's NumPy warn; NaN is the answer
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@dtypes
def test_non_finite_rows_are_nan_and_leave_other_rows_alone(rng, dtype, rtol, atol):
    x = random_array(rng, (4, 9), dtype, scale=3.0)
    x[0] = -np.inf  # every class masked
    x[1, 5] = np.nan
    x[2, 7] = np.inf
    target = rng.integers(0, 9, size=4)
    w = rng.uniform(0.5, 2.0, size=9).astype(dtype)
    probs = _probs(rng, x.shape, dtype)
    for tgt, kw in [(target, dict(weight=w, label_smoothing=0.1)), (probs, dict(weight=w))]:
        _, _, args = _cpu_xent(x, tgt, reduction="none", **kw)
        g, rows = _device_xent(args)
        assert np.isnan(rows[:3]).all() and np.isnan(g[:3]).all()
        assert_close(rows, args[-1], *VS_CPU[dtype], "loss rows vs CPU")
        rows_ref, g_ref = ref.cross_entropy(x, tgt, reduction="none", **kw)
        assert_close(rows[3], rows_ref[3], rtol, atol, "finite row loss")
        assert_close(g[3], g_ref[3], rtol, atol, "finite row gradient")
    for name, launch in [("softmax", CS.softmax), ("log_softmax", CS.log_softmax)]:
        y = np.full_like(x, SENTINEL)
        launch(x, y)
        cuda.synchronize()
        assert np.isnan(y[:3]).all(), name
        assert_close(y[3], getattr(ref, name)(x[3]), rtol, atol, name)


def test_one_block_striding_over_row_groups_gives_the_same_bits(rng, monkeypatch):
    # the reduction tree depends on C only: a single block looping over all three row groups of 32 rows
    # (reusing its shared memory, the last group with one live row) must reproduce the full grid's result
    # bit for bit
    n, c = shape = (65, 5)
    target = _hard_targets(rng, n, c, -100)
    x = _hard_logits(rng, shape, np.float32, target, -100)
    # (label smoothing without class weights: the one hard-target combination the cases above leave out)
    _, g_cpu, args = _cpu_xent(x, target, label_smoothing=0.1, reduction="mean")
    g_full, rows_full = _device_xent(args)
    monkeypatch.setattr(CS, "MAX_BLOCKS", 1)
    assert CS.launch_shape(n, c)[0] == 1
    g_one, rows_one = _device_xent(args)
    assert np.array_equal(g_one, g_full) and np.array_equal(rows_one, rows_full)
    assert_close(g_one, g_cpu, *VS_CPU[np.float32], "dlogits vs CPU")
    assert_close(rows_one, args[-1], *VS_CPU[np.float32], "loss rows vs CPU")


# --------------------------------------------------------------------------------------------------
# the public functions on device arrays


def _on_device(dev, r):
    """r is an array of the device module (not a host copy)."""
    return dev.get_array_module(r) is dev


def _device_kw(dev, kw):
    return {k: dev.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


@dtypes
@pytest.mark.parametrize("shape", [(1, 1), (7, 33)], ids=["1x1", "7x33"])
def test_public_softmax_family_on_device(rng, dev, shape, dtype, rtol, atol):
    x = _logits(rng, shape, dtype)
    dy = random_array(rng, shape, dtype)
    y = sx.softmax(x)
    y_log = sx.log_softmax(x)
    cases = [
        ("softmax", sx.softmax, (x,), ref.softmax),
        ("log_softmax", sx.log_softmax, (x,), ref.log_softmax),
        ("softmax_backward", sx.softmax_backward, (dy, y), ref.softmax_backward),
        ("log_softmax_backward", sx.log_softmax_backward, (dy, y_log), ref.log_softmax_backward),
    ]
    for name, f, args, oracle in cases:
        r = f(*(dev.asarray(a) for a in args))
        assert _on_device(dev, r), name
        assert r.shape == shape and r.dtype == dtype, name
        assert_close(dev.asnumpy(r), f(*args), *VS_CPU[dtype], f"{name} vs CPU")
        assert_close(dev.asnumpy(r), oracle(*args), rtol, atol, f"{name} vs oracle")


@dtypes
def test_public_softmax_family_other_axis_out_and_strided_input_on_device(rng, dev, dtype, rtol, atol):
    # axis 1 of (3, 4, 5): moved last and back on the device; a strided device input is copied contiguous
    base = random_array(rng, (3, 4, 10), dtype, scale=3.0)
    x = base[..., ::2]
    x_strided = dev.asarray(base)[..., ::2]
    assert not x_strided.flags.c_contiguous
    dy = random_array(rng, x.shape, dtype)
    y = sx.softmax(x, axis=1)
    for name, f, args, dargs, oracle in [
        ("softmax", sx.softmax, (x,), (x_strided,), ref.softmax),
        ("softmax_backward", sx.softmax_backward, (dy, y), (dev.asarray(dy), dev.asarray(y)), ref.softmax_backward),
    ]:
        out = dev.asarray(np.full(x.shape, SENTINEL, dtype))
        r = f(*dargs, axis=1, out=out)
        assert r is out
        assert_close(dev.asnumpy(r), f(*args, axis=1), *VS_CPU[dtype], f"{name} vs CPU")
        assert_close(dev.asnumpy(r), oracle(*args, axis=1), rtol, atol, f"{name} vs oracle")


# hard "mean" with weights and ignored rows: the denominator is computed on the device (before the row
# kernel, which reads it); smoothed weighted "sum"; probability targets "mean" (1/N); per-row "none"
DEVICE_XENT_CASES = [
    dict(target="hard", weighted=True, reduction="mean"),
    dict(target="hard", weighted=True, label_smoothing=0.2, reduction="sum"),
    dict(target="soft", weighted=True, label_smoothing=0.1, reduction="mean"),
    dict(target="hard", weighted=False, reduction="none"),
]
DEVICE_XENT_IDS = ["hard-weighted-mean", "hard-weighted-smoothed-sum", "soft-weighted-smoothed-mean", "hard-none"]


def _check_device_loss(dev, loss, g, x, expected, reduction, dtype, rtol, atol, name):
    loss_cpu, g_cpu, loss_ref, g_ref = expected
    assert _on_device(dev, loss) and _on_device(dev, g), name
    # a "mean"/"sum" loss is a 0-d device array of the input dtype (a torch-like scalar tensor)
    assert loss.shape == (() if reduction != "none" else (x.shape[0],)) and loss.dtype == dtype, name
    assert g.shape == x.shape and g.dtype == dtype, name
    crtol, catol = VS_CPU[dtype]
    assert_close(dev.asnumpy(loss), loss_cpu, crtol, catol, f"{name} loss vs CPU")
    assert_close(dev.asnumpy(loss), loss_ref, rtol, atol, f"{name} loss vs oracle")
    assert_close(dev.asnumpy(g), g_cpu, crtol, catol, f"{name} gradient vs CPU")
    assert_close(dev.asnumpy(g), g_ref, rtol, atol, f"{name} gradient vs oracle")


@pytest.mark.parametrize("case", DEVICE_XENT_CASES, ids=DEVICE_XENT_IDS)
@dtypes
def test_public_cross_entropy_on_device(rng, dev, case, dtype, rtol, atol):
    kw = dict(case)
    hard = kw.pop("target") == "hard"
    n, c = shape = (7, 9)
    kw = _options(rng, kw, c, dtype)
    if hard:
        target = _hard_targets(rng, n, c, -100)
        x = _hard_logits(rng, shape, dtype, target, -100)
    else:
        target = _probs(rng, shape, dtype)
        x = _logits(rng, shape, dtype)
    out = dev.asarray(np.full(shape, SENTINEL, dtype))
    loss, g = sx.softmax_cross_entropy(dev.asarray(x), dev.asarray(target), out=out, **_device_kw(dev, kw))
    assert g is out
    expected = (*sx.softmax_cross_entropy(x, target, **kw), *ref.cross_entropy(x, target, **kw))
    _check_device_loss(dev, loss, g, x, expected, kw["reduction"], dtype, rtol, atol, "cross-entropy")


@pytest.mark.parametrize("reduction", ["mean", "none"])
@dtypes
def test_public_nll_loss_on_device(rng, dev, reduction, dtype, rtol, atol):
    n, c = shape = (7, 9)
    logp = ref.log_softmax(random_array(rng, shape, dtype, scale=2.0)).astype(dtype)
    target = _hard_targets(rng, n, c, -100)
    w = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    out = dev.asarray(np.full(shape, SENTINEL, dtype))
    loss, g = sx.nll_loss(dev.asarray(logp), dev.asarray(target), weight=dev.asarray(w), reduction=reduction, out=out)
    assert g is out
    expected = (*sx.nll_loss(logp, target, weight=w, reduction=reduction),
                *ref.nll_loss(logp, target, weight=w, reduction=reduction))
    _check_device_loss(dev, loss, g, logp, expected, reduction, dtype, rtol, atol, "nll")


def test_public_losses_on_device_many_rows_and_row_groups(rng, dev):
    # 65 x 5 (three row groups of 32, the last with one live row) for the cross-entropy; 300 rows for NLL, so
    # the one-block "mean" denominator and the final sum stride over more values than a block has threads
    rtol, atol = TOLS[np.float64]
    n, c = shape = (65, 5)
    target = _hard_targets(rng, n, c, -100)
    x = _hard_logits(rng, shape, np.float64, target, -100)
    loss, g = sx.softmax_cross_entropy(dev.asarray(x), dev.asarray(target), label_smoothing=0.1)
    expected = (*sx.softmax_cross_entropy(x, target, label_smoothing=0.1),
                *ref.cross_entropy(x, target, label_smoothing=0.1))
    _check_device_loss(dev, loss, g, x, expected, "mean", np.float64, rtol, atol, "cross-entropy 65x5")
    logp = random_array(rng, (300, 1), np.float64, low=-3.0, high=-0.1)
    target = _hard_targets(rng, 300, 1, -100)
    w = rng.uniform(0.5, 2.0, size=1)
    loss, g = sx.nll_loss(dev.asarray(logp), dev.asarray(target), weight=dev.asarray(w))
    expected = (*sx.nll_loss(logp, target, weight=w), *ref.nll_loss(logp, target, weight=w))
    _check_device_loss(dev, loss, g, logp, expected, "mean", np.float64, rtol, atol, "nll 300x1")


def test_public_all_ignored_and_empty_batch_on_device(rng, dev):
    # "mean" over no counted row: the device denominator is 0, the scale 0, loss 0 and a zero gradient
    x = dev.asarray(random_array(rng, (4, 3), np.float32, scale=3.0))
    target = dev.asarray(np.full(4, 2))
    for loss, g in [sx.softmax_cross_entropy(x, target, ignore_index=2, label_smoothing=0.3),
                    sx.nll_loss(x, target, ignore_index=2)]:
        assert _on_device(dev, loss) and loss.shape == () and loss.dtype == np.float32
        assert float(loss) == 0.0 and not dev.asnumpy(g).any()
    # N = 0: no row kernel runs; the "mean" denominator and the sum run over nothing
    empty = dev.asarray(np.empty((0, 3), np.float64))
    for loss, g in [sx.softmax_cross_entropy(empty, dev.asarray(np.empty(0, np.int64))),
                    sx.softmax_cross_entropy(empty, dev.asarray(np.empty((0, 3))), reduction="sum")]:
        assert _on_device(dev, loss) and loss.shape == () and loss.dtype == np.float64 and float(loss) == 0.0
        assert _on_device(dev, g) and g.shape == (0, 3)


@pytest.mark.skipif(not numba.config.ENABLE_CUDASIM, reason="the read-back guard patches the simulator's arrays")
def test_public_hard_mean_reads_nothing_back(rng, dev, monkeypatch):
    # every way a device value becomes a host value raises, except the label check's one allowed boolean
    def read_back(*args, **kwargs):
        raise AssertionError("device value read back to the host")

    for name in ("__float__", "__int__", "__bool__", "__index__", "item", "tolist", "get"):
        monkeypatch.setattr(dev.SimDeviceArray, name, read_back, raising=False)
    monkeypatch.setattr(dev, "asnumpy", read_back)
    monkeypatch.setattr(sx, "check_labels", lambda *args: None)
    x = random_array(rng, (3, 4), np.float32, scale=3.0)
    target = np.array([1, -100, 3])
    w = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    with pytest.raises(AssertionError, match="read back"):  # the guard catches the CPU's host denominator
        sx._hard_mean_denominator(dev.asarray(target), dev.asarray(w), -100)
    loss, _ = sx.softmax_cross_entropy(dev.asarray(x), dev.asarray(target), weight=dev.asarray(w))
    loss_nll, _ = sx.nll_loss(dev.asarray(x), dev.asarray(target), weight=dev.asarray(w))
    monkeypatch.undo()
    assert_close(dev.asnumpy(loss), sx.softmax_cross_entropy(x, target, weight=w)[0], *VS_CPU[np.float32], "loss")
    assert_close(dev.asnumpy(loss_nll), sx.nll_loss(x, target, weight=w)[0], *VS_CPU[np.float32], "nll")


def test_public_bad_device_input_same_errors(rng, dev):
    # validation only: every call below raises before any kernel runs (label checks: one device reduction)
    x = random_array(rng, (4, 5), np.float32)
    dx = dev.asarray(x)
    t = dev.asarray(np.array([0, 1, 4, 2]))
    with pytest.raises(TypeError, match="x has dtype int64"):
        sx.softmax(dev.asarray(np.ones((2, 3), np.int64)))
    with pytest.raises(TypeError, match="y has dtype float64 but dy has dtype float32"):
        sx.softmax_backward(dx, dev.asarray(x.astype(np.float64)))
    with pytest.raises(ValueError, match=r"dy has shape \(4, 4\) but y has shape \(4, 5\)"):
        sx.log_softmax_backward(dev.asarray(x[:, :4]), dx)
    with pytest.raises(ValueError, match="axis = 2 is out of range for an array of ndim 2"):
        sx.softmax(dx, axis=2)
    with pytest.raises(ValueError, match=r"target\[2\] = 5 is outside the valid class range \[0, 5\)"):
        sx.softmax_cross_entropy(dx, dev.asarray(np.array([0, 1, 5, -100])))
    with pytest.raises(ValueError, match=r"target\[1\] = -1 is outside .* and is not ignore_index=-100"):
        sx.nll_loss(dx, dev.asarray(np.array([0, -1, 1, 1])))
    with pytest.raises(ValueError, match="target has length 3, expected 4"):
        sx.softmax_cross_entropy(dx, t[:3])
    with pytest.raises(TypeError, match="weight has dtype float64 but logits has dtype float32"):
        sx.softmax_cross_entropy(dx, t, weight=dev.asarray(np.ones(5)))
    with pytest.raises(TypeError, match="nll_loss takes integer class indices"):
        sx.nll_loss(dx, dev.asarray(np.full((4, 5), 0.2, np.float32)))
    with pytest.raises(ValueError, match=r"target has shape \(4, 4\); probability targets must have"):
        sx.softmax_cross_entropy(dx, dev.asarray(np.full((4, 4), 0.25, np.float32)))
    for call in (lambda out: sx.softmax(dx, out=out), lambda out: sx.softmax_cross_entropy(dx, t, out=out),
                 lambda out: sx.nll_loss(dx, t, out=out)):
        with pytest.raises(ValueError, match="^out overlaps an input array"):
            call(dx)
        with pytest.raises(TypeError, match="^out has dtype float64, expected float32"):
            call(dev.asarray(np.empty((4, 5))))
        with pytest.raises(ValueError, match=r"^out has shape \(5, 4\), expected \(4, 5\)"):
            call(dev.asarray(np.empty((5, 4), np.float32)))
    with pytest.raises(ValueError, match="^out must be C-contiguous"):
        sx.log_softmax(dx, out=dev.asarray(np.empty((4, 10), np.float32))[:, ::2])


def test_public_host_device_mix_raises(rng, dev):
    x = random_array(rng, (4, 5), np.float32)
    t = np.array([0, 1, 4, 2])
    dx = dev.asarray(x)
    with pytest.raises(TypeError, match=r"^out is on the CPU \(NumPy\) but x is on the GPU"):
        sx.softmax(dx, out=np.empty_like(x))
    with pytest.raises(TypeError, match=r"^y is on the CPU \(NumPy\) but dy is on the GPU"):
        sx.softmax_backward(dx, x)
    with pytest.raises(TypeError, match=r"^target is on the CPU \(NumPy\) but logits is on the GPU"):
        sx.softmax_cross_entropy(dx, t)
    with pytest.raises(TypeError, match=r"^logp is on the CPU \(NumPy\) but target is on the GPU"):
        sx.nll_loss(x, dev.asarray(t))
    with pytest.raises(TypeError, match=r"^logits is on the CPU \(NumPy\) but weight is on the GPU"):
        sx.softmax_cross_entropy(x, t, weight=dev.asarray(np.ones(5, np.float32)))
