"""Mini-batch training: ``fit``, ``evaluate``, ``predict``, early stopping and the History of a run.

One epoch of ``fit`` is mini-batch gradient descent as the course teaches it:

    shuffle the training rows (seeded), then for each batch of ``batch_size`` rows:
        logits = model(xb)                     forward through the computational graph
        loss = loss_fn(logits, yb)             fused loss + its gradient
        model.backward(loss_fn.backward())     backpropagation (chain rule), gradients into .grad
        clip_grad_norm_(params, max_norm)      optional: the answer to exploding gradients
        optimizer.step()                       one kernel call over the flat parameter buffer
    [validation in eval mode] [schedule] [early stopping] [checkpoint]

``seed`` fixes the shuffling, the validation split and the dropout masks, so a run is reproducible, and a
run resumed from a checkpoint continues bitwise as the uninterrupted run would.

On the GPU (``fit(..., device="cuda")``, or a model already moved with ``model.to("cuda")``) the data is
copied to the device once (when it fits in free device memory, else batch by batch), and nothing in a step
waits for the GPU: the loss and the accuracy counts stay on the device and are read back once per epoch
(and every 10 steps for a progress bar on a terminal). The check for a non-finite loss therefore happens
at the end of the epoch; the error still names the first bad step, and the model, the optimizer and the
schedule are put back to their state at the start of that epoch (the last state known to be finite).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .device import array_module, check_device, device_of, free_device_bytes, to_device, to_numpy
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, NLLLoss
from .modules import BatchNorm1d, Dropout, Module
from .optim import Optimizer, clip_grad_norm_
from .parameter import flat_span

__all__ = ["EarlyStopping", "History", "evaluate", "fit", "predict"]


class History:
    """Per-epoch metrics of a ``fit`` run: ``history["loss"]``, ``["val_loss"]``, ``["accuracy"]``,
    ``["val_accuracy"]`` (classification), ``["lr"]``, each a list with one value per epoch."""

    def __init__(self, history=None, best_epoch=None, stopped_epoch=None):
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.best_epoch = best_epoch        # 1-based epoch whose weights were restored, if any
        self.stopped_epoch = stopped_epoch  # 1-based epoch after which early stopping or a callback ended the run

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    @property
    def epochs(self):
        return len(self.history.get("loss", []))

    def append(self, logs):
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def state(self):
        return {"history": self.history, "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, last={last}, best_epoch={self.best_epoch})"


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs, then
    restore the weights of the best epoch (``restore_best_weights``, the default; Keras semantics).

    ``mode``: "min", "max" or "auto" (max for accuracies, min otherwise). The weights are restored at the
    end of ``fit`` whether it stopped early or ran out of epochs.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=True):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.restore_best_weights = bool(restore_best_weights)
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self.best_state = None, 0, None

    def update(self, epoch, value, model):
        """Record epoch ``epoch``'s monitored value; return True when training should stop."""
        improved = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state, best_state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state = best_state

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta}, "
                f"mode={self.mode!r})")


# ------------------------------------------------------------------------------------------------------
# helpers


def _task(loss_fn):
    if isinstance(loss_fn, (CrossEntropyLoss, NLLLoss)):
        return "classification"
    if isinstance(loss_fn, BCEWithLogitsLoss):
        return "binary"
    return "regression"


def _as_inputs(X, model, name="X", resident=True):
    """X as a C-contiguous array of the model's dtype, on the model's device (or left on the host, batches
    to be copied one at a time, when ``resident`` is False)."""
    if not hasattr(X, "ndim"):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(X.shape)}")
    dtype = model.dtype
    if dtype is not None and X.dtype != dtype:
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise TypeError(f"{name} has dtype {X.dtype}; expected numbers")
        X = X.astype(dtype)  # once per fit, not per batch: the model's dtype decides
    X = _place(X, model.device if resident else "cpu")
    return array_module(X).ascontiguousarray(X)


def _as_targets(y, n, task, dtype, name="y", device="cpu"):
    if not hasattr(y, "ndim"):
        y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} rows but X has {n}; they must match")
    y = _place(y, device)
    xp = array_module(y)
    if task == "classification" and y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            if not bool(xp.all(xp.mod(y, 1) == 0)):
                raise ValueError(f"{name} must hold integer class indices for a classification loss")
            y = y.astype(np.int64)
        return xp.ascontiguousarray(y)
    return xp.ascontiguousarray(y, dtype=dtype)


def _place(a, device):
    return a if device_of(a) == device else to_device(a, device)


def _fits_on_device(*arrays):
    """Whether the host arrays can be copied to the GPU whole, leaving room for the model's work: at most
    half of the free device memory."""
    need = sum(a.nbytes for a in arrays if a is not None and device_of(a) == "cpu")
    return need <= free_device_bytes() // 2


def _correct(out, y, task):
    """(correct predictions, predictions) in a batch: one per row for classification, one per output for
    the binary (BCE) task, which may have several independent labels per row. The count is a device scalar
    for device arrays (nothing waits for the GPU), an int on the host."""
    if task == "classification":
        hit = out.argmax(axis=1) == (y.argmax(axis=1) if y.ndim == 2 else y)  # probability targets: likeliest
        k = y.shape[0]
    else:
        hit, k = (out > 0) == (y > 0.5), y.size
    if device_of(hit) == "cuda":
        return hit.sum(), k
    return int(np.count_nonzero(hit)), k


def _host_values(values):
    """Python floats of a list of (host or device) scalars: one read-back for device scalars."""
    if values and device_of(values[0]) == "cuda":
        return [float(v) for v in to_numpy(array_module(values[0]).stack(values))]
    return [float(v) for v in values]


def _check_mean_loss(loss):
    if loss.reduction != "mean":
        raise ValueError(f"fit and evaluate average the loss over batches: they need reduction='mean', got "
                         f"{type(loss).__name__}(reduction={loss.reduction!r})")


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


def _batch_bounds(n, batch_size, merge_single=False):
    """(start, stop) of each batch. ``merge_single``: a last batch of one row joins the one before it, since
    BatchNorm cannot normalise a single row in training mode (torch raises; users then pass drop_last)."""
    bounds = [(s, min(n, s + batch_size)) for s in range(0, n, batch_size)]
    if merge_single and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _modes(model):
    """Every module's train/eval flag, to put back after a call that switches modes."""
    return [(m, m.training) for m in model.modules()]


def _restore_modes(modes):
    for m, training in modes:
        m.training = training


def evaluate(model, X, y, *, loss, batch_size=1024):
    """Loss (and accuracy for classification losses) of ``model`` on (X, y) in eval mode, as a dict. Host
    data is copied to the model's device first.

    The loss is the mean over all rows (each batch's "mean" weighted by its size); accuracy is the fraction
    of rows classified correctly (for BCEWithLogitsLoss: of outputs, each thresholded at 0). Every module's
    train/eval mode is restored afterwards.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be an nncore loss (e.g. nncore.CrossEntropyLoss()), got {type(loss).__name__}")
    _check_mean_loss(loss)
    batch_size = _check_batch_size(batch_size)
    task = _task(loss)
    X = _as_inputs(X, model)
    y = _as_targets(y, X.shape[0], task, model.dtype, device=device_of(X))
    modes = _modes(model)
    model.eval()
    losses, sizes, corrects, counted = [], [], [], 0
    try:
        for start, stop in _batch_bounds(X.shape[0], batch_size):
            xb, yb = X[start:stop], y[start:stop]
            out = model(xb)
            losses.append(loss.forward(out, yb))
            sizes.append(stop - start)
            if task != "regression":
                c, k = _correct(out, yb, task)
                corrects.append(c)
                counted += k
    finally:
        _restore_modes(modes)
    total = 0.0
    for value, size in zip(_host_values(losses), sizes):  # in batch order, as the values were computed
        total += value * size
    metrics = {"loss": total / max(1, X.shape[0])}
    if task != "regression":
        metrics["accuracy"] = int(sum(_host_values(corrects))) / max(1, counted)
    return metrics


def predict(model, X, *, batch_size=1024):
    """The model's outputs for X (eval mode, in batches), one array on the model's device (host data is
    copied there first; nncore.to_numpy brings a device result back); every module's mode is restored."""
    batch_size = _check_batch_size(batch_size)
    X = _as_inputs(X, model)
    modes = _modes(model)
    model.eval()
    try:
        if X.shape[0] == 0:
            return model(X).copy()  # (0, outputs): the model knows its output width
        outs = [model(X[s:e]).copy() for s, e in _batch_bounds(X.shape[0], batch_size)]
    finally:
        _restore_modes(modes)
    return array_module(outs[0]).concatenate(outs)


def _split_validation(X, y, fraction, seed):
    if not (0.0 <= fraction < 1.0):
        raise ValueError(f"validation_split must be in [0, 1), got {fraction!r}")
    if fraction == 0.0:
        return X, y, None
    n_val = int(round(X.shape[0] * fraction))
    if n_val < 1 or n_val >= X.shape[0]:
        raise ValueError(f"validation_split = {fraction} leaves {n_val} of {X.shape[0]} rows for validation")
    # its own stream, so the split does not shift the shuffling of the epochs
    order = np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(X.shape[0])
    order = array_module(X).asarray(order)  # device data is indexed on the device
    tr, va = order[n_val:], order[:n_val]
    return X[tr], y[tr], (X[va], y[va])


class _LastFiniteState:
    """What fit puts back when a loss is not finite, so the model is left as after the last step whose loss
    was finite: BatchNorm's running statistics and the dropout counters (moved by the bad forward), and the
    parameters of before the last update if that update made them non-finite."""

    def __init__(self, model, flat):
        drops = [m for m in model.modules() if isinstance(m, Dropout)]
        self.drops = drops
        self.buffers = [b for m in model.modules() if not isinstance(m, Dropout) for _, b in m._own_buffers()]
        self.copies = [np.array(b, copy=True) for b in self.buffers]
        self.counters = [d.counter for d in drops]
        self.flat, self.backup, self.updated = flat, None if flat is None else flat.copy(), False

    def before_forward(self):
        for dst, src in zip(self.copies, self.buffers):
            dst[...] = src
        self.counters = [d.counter for d in self.drops]

    def before_update(self):
        if self.flat is not None:
            self.backup[...] = self.flat
            self.updated = True

    def restore(self):
        """Put the state back; returns a note for the error message."""
        for dst, src in zip(self.buffers, self.copies):
            dst[...] = src
        for d, c in zip(self.drops, self.counters):
            d.counter = c
        if self.updated and not np.all(np.isfinite(self.flat)):
            self.flat[...] = self.backup
            return " (the previous update made parameters non-finite; they were restored to their values before it)"
        return ""


class _EpochStart:
    """What fit puts back on the GPU when an epoch had a non-finite loss (checked once per epoch there): the
    model's parameters and buffers (device copies), the optimizer's state and hyper-parameters, the
    schedule's state, as they were when the epoch began."""

    def __init__(self, model, optimizer, schedule):
        self.model = model.state_dict()
        self.optimizer = optimizer.state_dict()
        self.schedule = None if schedule is None else schedule.state_dict()

    def restore(self, model, optimizer, schedule):
        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        if schedule is not None:
            schedule.load_state_dict(self.schedule)


# ------------------------------------------------------------------------------------------------------
# fit


def fit(model, X, y, *, loss, optimizer, epochs, batch_size=32, validation_data=None, validation_split=0.0,
        shuffle=True, seed=0, schedule=None, early_stopping=None, clip_grad_norm=None, callbacks=(),
        progress=True, checkpoint=None, resume=None, device=None):
    """Train ``model`` on (X, y) with mini-batch gradient descent; returns a History.

    loss: an nncore loss object; optimizer: an nncore.optim optimizer over model.parameters().
    epochs: the total number of epochs (a resumed run continues up to it). validation_data=(Xv, yv), or
    validation_split: a seeded fraction of (X, y) held out. schedule: an nncore.schedules schedule, stepped
    per optimizer step or per epoch as its ``interval`` says (ReduceLROnPlateau gets the monitored metric:
    val_loss when there is validation data, else loss). early_stopping: an EarlyStopping, or an int patience
    (monitoring val_loss, or loss without validation data). clip_grad_norm: max global gradient norm.
    callbacks: callables ``f(epoch, logs)`` (or objects with ``on_epoch_end(epoch, logs)``) run after each
    epoch; one returning True stops training. progress: a tqdm bar per epoch when stderr is a terminal.
    checkpoint: a path saved (atomically) after every epoch; resume: a checkpoint path to continue from.
    device: "cpu" or "cuda" moves the model there first (``model.to(device)``; the optimizer's state follows
    the parameters); None trains where the model is. Host data is copied to the model's device once (batch
    by batch if it does not fit in half the free device memory); see the module docstring for what the GPU
    changes about the non-finite loss check.

    A non-finite loss raises FloatingPointError naming the epoch and step, leaving the model at its last
    finite state. The loss must use reduction="mean". With a BatchNorm1d in the model, a last batch of one
    row joins the batch before it (a single row cannot be batch-normalised). Every module's train/eval mode
    is restored when fit returns; a run that early stopping (or a callback) ended stays ended on resume.
    """
    from . import checkpoint as ckpt

    if not isinstance(model, Module):
        raise TypeError(f"model must be an nncore Module, got {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be an nncore loss (e.g. nncore.CrossEntropyLoss()), got {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an nncore.optim optimizer, got {type(optimizer).__name__}")
    _check_mean_loss(loss)
    for name, v, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0):
        raise ValueError(f"clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    if device is not None:
        model.to(check_device(device))
    on_device = model.device == "cuda"
    task = _task(loss)
    X = _as_inputs(X, model, resident=False)  # dtype fixed on the host; moved after the split
    y = _as_targets(y, X.shape[0], task, model.dtype, device=device_of(X))
    if validation_data is not None and validation_split:
        raise ValueError("pass either validation_data or validation_split, not both")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        Xv = _as_inputs(validation_data[0], model, "X_val")
        val = (Xv, _as_targets(validation_data[1], Xv.shape[0], task, model.dtype, "y_val", device_of(Xv)))
    else:
        X, y, val = _split_validation(X, y, float(validation_split), int(seed))
        if val is not None:
            val = (_place(val[0], model.device), _place(val[1], model.device))
    resident = not on_device or _fits_on_device(X, y)
    if resident:
        X, y = _place(X, model.device), _place(y, model.device)
    if X.shape[0] == 0:
        raise ValueError("no training rows")
    stopper = early_stopping
    if isinstance(stopper, (int, np.integer)) and not isinstance(stopper, bool):
        stopper = EarlyStopping("val_loss" if val is not None else "loss", patience=int(stopper))
    if stopper is not None:
        if not isinstance(stopper, EarlyStopping):
            raise TypeError(f"early_stopping must be an EarlyStopping or an int patience, got {stopper!r}")
        if stopper.monitor.startswith("val_") and val is None:
            raise ValueError(f"early stopping monitors {stopper.monitor!r} but there is no validation data: pass "
                             "validation_data or validation_split, or monitor 'loss'")
        stopper.reset()
    if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
        raise ValueError("the schedule was built on another optimizer than the one given to fit")
    callbacks = [getattr(c, "on_epoch_end", c) for c in callbacks]

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    model.manual_seed(int(seed))
    history, start_epoch, step, stopped = History(), 0, 0, False
    if resume is not None:
        state = ckpt.load(resume)
        saved_seed = (state.fit_state or {}).get("seed")
        if saved_seed is not None and saved_seed != int(seed):
            raise ValueError(f"resume: the checkpoint was trained with seed={saved_seed}, fit was given seed={seed}; "
                             "a resumed run must use the same seed to continue the same run")
        start_epoch, step = state.restore_training(model, optimizer, schedule, rng, stopper)
        history = History(**state.fit_state["history"])
        stopped = bool(state.fit_state.get("stopped", False))
    params = model.parameters()
    span = flat_span(params)
    guard = None if on_device else _LastFiniteState(model, span[0] if span is not None else None)
    metric_name = "val_loss" if val is not None else "loss"

    n = X.shape[0]
    bounds = _batch_bounds(n, batch_size, merge_single=any(isinstance(m, BatchNorm1d) for m in model.modules()))
    bar = _progress(progress)
    modes = _modes(model)
    model.train()
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            if stopped:
                break
            order = rng.permutation(n) if shuffle else np.arange(n)
            rows = array_module(X).asarray(order)  # on the device with resident device data
            lr = float(optimizer.param_groups[0]["lr"])
            losses, sizes, corrects, counted = [], [], [], 0
            start_state = _EpochStart(model, optimizer, schedule) if on_device else None
            pbar = bar(len(bounds), epoch, epochs) if bar else None
            try:
                for b, (start, stop_row) in enumerate(bounds, 1):
                    idx = rows[start:stop_row]
                    xb, yb = X[idx], y[idx]
                    if not resident:
                        xb, yb = to_device(xb, "cuda"), to_device(yb, "cuda")
                    step += 1
                    if guard is not None:
                        guard.before_forward()
                    out = model(xb)
                    value = loss.forward(out, yb)
                    if guard is not None:  # on the host the check costs nothing: every step
                        value = float(value)
                        if not math.isfinite(value):
                            note = guard.restore()
                            raise FloatingPointError(
                                f"loss is {value} at epoch {epoch}, step {step} (batch {b} of the epoch); training "
                                f"stopped and the model keeps its last finite state{note}. Try a smaller learning "
                                "rate or clip_grad_norm=...")
                    model.backward(loss.backward(), need_input_grad=False)
                    if clip_grad_norm is not None:
                        clip_grad_norm_(params, clip_grad_norm)
                    if guard is not None:
                        guard.before_update()
                    optimizer.step()
                    if schedule is not None and schedule.interval == "step":
                        schedule.step()
                    losses.append(value)
                    sizes.append(stop_row - start)
                    if task != "regression":
                        c, k = _correct(out, yb, task)
                        corrects.append(c)
                        counted += k
                    if pbar is not None:
                        pbar.update(1)
                        if b % 10 == 0:
                            done = sum(v * m for v, m in zip(_host_values(losses), sizes))
                            pbar.set_postfix(loss=f"{done / stop_row:.4f}", refresh=False)
                values = _host_values(losses)  # the epoch's one read-back on the GPU
                if start_state is not None:
                    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
                    if bad is not None:
                        start_state.restore(model, optimizer, schedule)
                        first = step - len(values) + bad + 1
                        raise FloatingPointError(
                            f"loss is {values[bad]} at epoch {epoch}, step {first} (batch {bad + 1} of the epoch); "
                            "training stopped. On the GPU the loss is checked once per epoch: the model, the "
                            f"optimizer and the schedule were put back to their state at the start of epoch {epoch}, "
                            "the last state known to be finite. Try a smaller learning rate or clip_grad_norm=...")
                total = 0.0
                for v, m in zip(values, sizes):  # in step order: the same sum on every device
                    total += v * m
                correct = int(sum(_host_values(corrects)))
                logs = {"loss": total / n}
                if task != "regression":
                    logs["accuracy"] = correct / max(1, counted)
                if val is not None:
                    logs.update({"val_" + k: v for k, v in evaluate(model, *val, loss=loss).items()})
                logs["lr"] = lr
                if pbar is not None:
                    pbar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
            finally:
                if pbar is not None:
                    pbar.close()
            history.append(logs)
            if schedule is not None and schedule.interval == "epoch":
                schedule.step(logs[metric_name])  # schedules that do not watch a metric ignore it
            if stopper is not None:
                if stopper.monitor not in logs:
                    raise ValueError(f"early stopping monitors {stopper.monitor!r}, which is not one of "
                                     f"{sorted(logs)}")
                stopped = stopper.update(epoch, logs[stopper.monitor], model)
            for cb in callbacks:
                stopped = bool(cb(epoch, logs)) or stopped
            if stopped:
                history.stopped_epoch = epoch
            if checkpoint is not None:
                ckpt.save(checkpoint, model, optimizer, schedule, _fit_state=dict(
                    epoch=epoch, step=step, rng=rng.bit_generator.state, history=history.state(),
                    early_stopping=None if stopper is None else stopper.state(), seed=int(seed), stopped=stopped),
                    _best_state=None if stopper is None else stopper.best_state)
    finally:
        _restore_modes(modes)
    if stopper is not None and stopper.restore_best_weights and stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
        history.best_epoch = stopper.best_epoch
    return history


def _progress(progress):
    """A function making a tqdm bar per epoch, or None when off (progress=False, not a terminal, no tqdm)."""
    if not progress or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None

    def bar(total, epoch, epochs):
        return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True)

    return bar
