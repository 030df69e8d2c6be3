"""Learning-rate schedules: torch.optim.lr_scheduler's semantics, computed as plain functions of the tick.

A schedule sets ``group["lr"]`` of every parameter group of an optimizer at each tick t = 0, 1, 2, ...
(t = 0 at construction; each ``step()`` advances one tick). ``interval`` says what a tick is: ``"epoch"``
(call ``step()`` after each epoch) or ``"step"`` (after each optimizer step); ``nncore.fit`` reads it.
With ``lr_0`` a group's base learning rate (its lr when the schedule was built):

    StepLR             lr_t = lr_0 gamma^floor(t / step_size)
    ExponentialLR      lr_t = lr_0 gamma^t
    CosineAnnealingLR  lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2    (Loshchilov & Hutter,
                       SGDR, without restarts; past T_max the cosine continues, as torch's does)
    LinearWarmup       lr_t = lr_0 (s + (1 - s) t / W) for t < W (torch LinearLR, start_factor s, W = warmup),
                       then the schedule ``after`` from its own tick 0 at t = W (torch
                       SequentialLR([LinearLR(s, total_iters=W), after], milestones=[W]))
    ReduceLROnPlateau  multiply lr by ``factor`` when the metric has not improved for ``patience`` epochs

torch computes the first three recursively (lr_t from lr_{t-1}); the closed forms here agree with it to
rounding (~1e-15 relative) and do not drift. The factor functions (``step_decay``, ``exponential_decay``,
``cosine_decay``, ``linear_warmup``) are the schedules as pure functions of the tick, optax style, for use
anywhere a multiplier is needed.

One schedule drives an optimizer: compose warmup with another schedule through ``LinearWarmup(after=...)``
rather than stepping two schedules on one optimizer (each would overwrite the other's lr).

``state_dict()`` holds plain Python values (ints, floats, lists, dicts, None), so it can be written with
Python's json (ReduceLROnPlateau's ``best`` is +-Infinity until the first metric, which Python's json
accepts); hyper-parameters are not in it: rebuild the schedule with the same arguments, then load.
"""

from __future__ import annotations

import math

from kernels._util import check_int, check_real

from .optim import Optimizer

__all__ = ["step_decay", "exponential_decay", "cosine_decay", "linear_warmup", "Schedule", "StepLR",
           "ExponentialLR", "CosineAnnealingLR", "LinearWarmup", "ReduceLROnPlateau", "INTERVALS"]

INTERVALS = ("epoch", "step")


# --------------------------------------------------------------------------------------------------
# the schedules as factors of the base learning rate, pure functions of the tick t >= 0


def step_decay(t, *, step_size, gamma=0.1):
    """gamma^floor(t / step_size): decay by gamma every step_size ticks."""
    return gamma ** (t // step_size)


def exponential_decay(t, *, gamma):
    """gamma^t."""
    return gamma**t


def cosine_decay(t, *, t_max, eta_min_ratio=0.0):
    """eta_min_ratio + (1 - eta_min_ratio) (1 + cos(pi t / t_max)) / 2: from 1 at t = 0 down to
    eta_min_ratio at t = t_max (and back up after, as the cosine goes on)."""
    return eta_min_ratio + (1.0 - eta_min_ratio) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0


def linear_warmup(t, *, warmup, start_factor=1.0 / 3):
    """start_factor + (1 - start_factor) min(t, warmup) / warmup: from start_factor up to 1 at t = warmup."""
    return start_factor + (1.0 - start_factor) * min(t, warmup) / warmup


# --------------------------------------------------------------------------------------------------
# base class


def _check_interval(interval):
    if interval not in INTERVALS:
        raise ValueError(f"interval = {interval!r} is not one of {INTERVALS}")
    return interval


class Schedule:
    """Base class: a learning rate per parameter group as a function of the tick ``last_epoch``.

    Subclasses define ``_lr(base_lr, t)``. Construction writes the tick-0 learning rates into the
    optimizer (as torch's schedulers do); ``step()`` advances one tick and writes the new ones.
    """

    needs_metric = False  # True when step() needs the validation metric (ReduceLROnPlateau)

    def __init__(self, optimizer, *, interval="epoch"):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an nncore.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.interval = _check_interval(interval)
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0
        self._write([self._lr(base, 0) for base in self.base_lrs])

    def _lr(self, base_lr, t):
        raise NotImplementedError

    def _write(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def _restart(self):
        """Go back to tick 0 (LinearWarmup hands over to its ``after`` schedule this way)."""
        self.last_epoch = 0
        self._write([self._lr(base, 0) for base in self.base_lrs])

    def step(self, metric=None):
        """Advance one tick and set the new learning rates. ``metric`` is ignored (it is accepted so that a
        training loop can call every schedule the same way)."""
        self.last_epoch += 1
        t = self.last_epoch
        self._write([self._lr(base, t) for base in self.base_lrs])

    def get_last_lr(self):
        """The learning rates of the current tick, one float per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        return {"type": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                "last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict):
        """Restore the tick, base and current learning rates (written back into the optimizer)."""
        expected = set(self.state_dict())
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict must have the keys {sorted(expected)}, got {got}")
        if state_dict["type"] != type(self).__name__:
            raise ValueError(f"state_dict is for a {state_dict['type']}, not a {type(self).__name__}")
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            if len(state_dict[key]) != n:
                raise ValueError(f"state_dict[{key!r}] has {len(state_dict[key])} entries, the optimizer has "
                                 f"{n} parameter groups")
        last_epoch = check_int("last_epoch", state_dict["last_epoch"], low=0)
        base_lrs = [float(v) for v in state_dict["base_lrs"]]
        last_lr = [float(v) for v in state_dict["last_lr"]]
        self._load_extra(state_dict)
        self.last_epoch, self.base_lrs = last_epoch, base_lrs
        self._write(last_lr)

    def _load_extra(self, state_dict):
        """Subclasses check and restore their own state entries here (before the common ones are set)."""

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr}, interval={self.interval!r})"


# --------------------------------------------------------------------------------------------------
# schedules


class StepLR(Schedule):
    """torch.optim.lr_scheduler.StepLR: lr_0 gamma^floor(t / step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, *, interval="epoch"):
        self.step_size = check_int("step_size", step_size, low=1)
        self.gamma = check_real("gamma", gamma, low=0.0, low_open=True)
        super().__init__(optimizer, interval=interval)

    def _lr(self, base_lr, t):
        return base_lr * step_decay(t, step_size=self.step_size, gamma=self.gamma)


class ExponentialLR(Schedule):
    """torch.optim.lr_scheduler.ExponentialLR: lr_0 gamma^t."""

    def __init__(self, optimizer, gamma, *, interval="epoch"):
        self.gamma = check_real("gamma", gamma, low=0.0, low_open=True)
        super().__init__(optimizer, interval=interval)

    def _lr(self, base_lr, t):
        return base_lr * exponential_decay(t, gamma=self.gamma)


class CosineAnnealingLR(Schedule):
    """torch.optim.lr_scheduler.CosineAnnealingLR: eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, *, interval="epoch"):
        self.T_max = check_int("T_max", T_max, low=1)
        self.eta_min = check_real("eta_min", eta_min, low=0.0)
        super().__init__(optimizer, interval=interval)

    def _lr(self, base_lr, t):
        return self.eta_min + (base_lr - self.eta_min) * cosine_decay(t, t_max=self.T_max)


class ReduceLROnPlateau(Schedule):
    """torch.optim.lr_scheduler.ReduceLROnPlateau, same arguments and rules; ticks are epochs.

    ``step(metric)`` records the epoch's metric (e.g. the validation loss). A metric is an improvement when
    it beats ``best`` by the threshold (mode "min", "rel": metric < best (1 - threshold); "abs": metric <
    best - threshold; mirrored for "max"). After more than ``patience`` epochs without improvement each
    group's lr becomes max(lr factor, min_lr) -- unless that changes it by eps or less -- and ``cooldown``
    epochs follow in which bad epochs are not counted. Construction leaves the learning rates as they are.
    """

    needs_metric = True

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode = {mode!r} is unknown: use 'min' or 'max'")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode = {threshold_mode!r} is unknown: use 'rel' or 'abs'")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = check_real("factor", factor, low=0.0, high=1.0, high_open=True)
        self.patience = check_int("patience", patience, low=0)
        self.threshold = check_real("threshold", threshold, low=0.0)
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.eps = check_real("eps", eps, low=0.0)
        super().__init__(optimizer, interval="epoch")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs (one per parameter group), got {len(min_lr)}")
            self.min_lrs = [check_real(f"min_lr[{i}]", v, low=0.0) for i, v in enumerate(min_lr)]
        else:
            self.min_lrs = [check_real("min_lr", min_lr, low=0.0)] * n
        self._reset()

    def _lr(self, base_lr, t):
        # only tick 0 is a function of the tick: the base learning rate, left as it was
        return base_lr

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _restart(self):
        self._reset()
        super()._restart()

    def _is_better(self, a):
        if self.threshold_mode == "rel":
            if self.mode == "min":
                return a < self.best * (1.0 - self.threshold)
            return a > self.best * (self.threshold + 1.0)
        if self.mode == "min":
            return a < self.best - self.threshold
        return a > self.best + self.threshold

    def step(self, metric=None):
        """Record this epoch's ``metric`` (required) and reduce the learning rates on a plateau."""
        if metric is None:
            raise TypeError("ReduceLROnPlateau.step() requires the metric to watch, e.g. step(val_loss)")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self):
        return {**super().state_dict(), "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter}

    def _load_extra(self, state_dict):
        num_bad_epochs = check_int("num_bad_epochs", state_dict["num_bad_epochs"], low=0)
        cooldown_counter = check_int("cooldown_counter", state_dict["cooldown_counter"], low=0)
        self.best = float(state_dict["best"])
        self.num_bad_epochs, self.cooldown_counter = num_bad_epochs, cooldown_counter


class LinearWarmup(Schedule):
    """Linear warmup from ``start_factor`` lr_0 towards lr_0 over ``warmup`` ticks (torch LinearLR), then the
    schedule ``after`` (or a constant lr_0 when None), which counts its own ticks from the end of warmup.

    Equivalent to torch ``SequentialLR([LinearLR(opt, start_factor, total_iters=warmup), after],
    milestones=[warmup])``. ``after`` must be built on the same optimizer, before this schedule; it may be
    any schedule, including ReduceLROnPlateau (which torch's SequentialLR refuses): then ``step(metric)``
    needs the metric at every tick, and the metrics of the warmup ticks -- up to and including the one
    that ends warmup -- are ignored, as they were measured at warmup learning rates; from tick warmup + 1
    on each metric goes to the plateau schedule. ``interval`` defaults to ``after``'s ("epoch" without it).
    """

    def __init__(self, optimizer, warmup, start_factor=1.0 / 3, after=None, *, interval=None):
        self.warmup = check_int("warmup", warmup, low=1)
        self.start_factor = check_real("start_factor", start_factor, low=0.0, high=1.0, low_open=True)
        if after is not None:
            if not isinstance(after, Schedule):
                raise TypeError(f"after must be a Schedule or None, got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("after must be a schedule of the same optimizer as the warmup")
            if interval is not None and _check_interval(interval) != after.interval:
                raise ValueError(f"interval = {interval!r} differs from the interval of after "
                                 f"({after.interval!r}); a warmup and the schedule after it tick together")
            interval = after.interval
        self.after = after
        self.needs_metric = after is not None and after.needs_metric
        super().__init__(optimizer, interval="epoch" if interval is None else interval)
        if after is not None:
            # after wrote its tick-0 lr at construction; the base is the lr it started from
            self.base_lrs = list(after.base_lrs)
            self._write([self._lr(base, 0) for base in self.base_lrs])

    def _lr(self, base_lr, t):
        return base_lr * linear_warmup(t, warmup=self.warmup, start_factor=self.start_factor)

    def step(self, metric=None):
        """Advance one tick: warmup, then hand over to ``after`` (see the class docstring for metrics)."""
        if self.needs_metric and metric is None:
            raise TypeError(f"{type(self).__name__}.step() requires the metric: the schedule after warmup is "
                            f"{type(self.after).__name__}")
        if self.after is None or self.last_epoch + 1 < self.warmup:
            super().step()
            return
        self.last_epoch += 1
        if self.last_epoch == self.warmup:
            self.after._restart()
        else:
            self.after.step(metric)
        self._last_lr = self.after.get_last_lr()

    def state_dict(self):
        return {**super().state_dict(), "after": None if self.after is None else self.after.state_dict()}

    def _load_extra(self, state_dict):
        saved = state_dict["after"]
        if (saved is None) != (self.after is None):
            raise ValueError("state_dict and this LinearWarmup disagree on whether there is an 'after' schedule")
        if self.after is not None:
            self.after.load_state_dict(saved)
