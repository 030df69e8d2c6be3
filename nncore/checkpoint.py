"""Checkpoints: one ``.npz`` file with a model, its optimizer and schedule state, and the training state.

    nncore.save("run.npz", model, optimizer, schedule, note="baseline")
    ck = nncore.load("run.npz")
    ck.model, ck.optimizer, ck.schedule_state, ck.epoch, ck.extra
    ck = nncore.load("run.npz", device="cuda")   # wherever it was written: the arrays are stored on the host

Layout of the file (plain NumPy, readable without nncore): ``__meta__`` is a JSON text with the format
version, the model's configuration (``module.config()``, from which ``load`` rebuilds it), the optimizer's
class and hyper-parameters, the schedule's state, the training state of ``fit`` (epoch, step, the shuffling
generator's state, history, early stopping) and the JSON-serialisable extras; the arrays are stored as
``model/<name>`` (parameters and buffers: BatchNorm running statistics, dropout counters),
``optimizer/<group>/<name>``, ``best/<name>`` (the best weights early stopping keeps) and ``extra/<name>``.

Writing is atomic: the file is written to a temporary file in the same directory, flushed to disk, then
renamed over the target (``os.replace``), so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

from . import optim as _optim
from .device import check_device, is_device_array, to_numpy
from .modules import Module, from_config
from .optim import Optimizer

__all__ = ["Checkpoint", "load", "save"]

FORMAT = "nncore-checkpoint"
VERSION = 1


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray) and o.ndim == 0:
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save(path, model, optimizer=None, schedule=None, **extra):
    """Write a checkpoint of ``model`` (+ optimizer and schedule state, + extras) to ``path`` atomically.

    Extras: arrays are stored as arrays, anything else must be JSON-serialisable (numbers, strings,
    lists, dicts). Returns the path.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be an nncore Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an nncore.optim optimizer, got {type(optimizer).__name__}")
    fit_state = extra.pop("_fit_state", None)
    best_state = extra.pop("_best_state", None)
    arrays = {f"model/{k}": to_numpy(v) for k, v in model.state_dict().items()}  # a GPU model is saved from the host
    meta = {"format": FORMAT, "version": VERSION, "model": model.config(), "fit": fit_state, "extra": {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        # the groups' parameters as indices into model.parameters() (the optimizer may hold a subset)
        position = {id(p): i for i, p in enumerate(model.parameters())}
        groups = []
        for g, live in zip(sd["param_groups"], optimizer.param_groups):
            missing = [i for i, p in enumerate(live["params"]) if id(p) not in position]
            if missing:
                raise ValueError(f"the optimizer holds parameters that are not the model's (group {len(groups)}, "
                                 f"parameters {missing}); save the model the optimizer was built on")
            groups.append({**g, "params": [position[id(p)] for p in live["params"]]})
        state = {}
        for gi, st in sd["state"].items():
            state[str(gi)] = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) or is_device_array(v):
                    arrays[f"optimizer/{gi}/{k}"] = to_numpy(v)
                else:
                    state[str(gi)][k] = v
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": groups, "state": state}
    if schedule is not None:
        meta["schedule"] = {"type": type(schedule).__name__, "state": schedule.state_dict()}
    if best_state is not None:
        arrays.update({f"best/{k}": to_numpy(v) for k, v in best_state.items()})
    for k, v in extra.items():
        if isinstance(v, np.ndarray) or is_device_array(v):
            arrays[f"extra/{k}"] = to_numpy(v)
        else:
            meta["extra"][k] = v
    try:
        text = json.dumps(meta, default=_json_default)
    except TypeError as e:
        raise TypeError(f"checkpoint extras must be arrays or JSON-serialisable values: {e}") from None
    arrays["__meta__"] = np.array(text)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save checkpoint {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save checkpoint {path!r}: it is a directory")
    fd, tmp = tempfile.mkstemp(prefix=".nncore-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file private (0600); a checkpoint is a normal file
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Checkpoint:
    """What ``load`` returns: the rebuilt model, the optimizer rebuilt over its parameters (or None),
    the schedule's state dict (load it into a schedule you build: ``schedule.load_state_dict(...)``), the
    epoch reached by ``fit`` (or None), and the extras given to ``save``."""

    def __init__(self, model, optimizer, schedule_state, extra, fit_state, best_state):
        self.model, self.optimizer, self.schedule_state = model, optimizer, schedule_state
        self.extra, self.fit_state, self.best_state = extra, fit_state, best_state

    @property
    def epoch(self):
        return None if self.fit_state is None else self.fit_state["epoch"]

    def restore_training(self, model, optimizer, schedule, rng, stopper):
        """Load this checkpoint's training state into ``fit``'s objects; returns (epoch, step)."""
        if self.fit_state is None:
            raise ValueError("this checkpoint was not written by fit(checkpoint=...): it has no training state")
        model.load_state_dict(self.model.state_dict())
        if self.optimizer is None:
            raise ValueError("this checkpoint has no optimizer state to resume from")
        optimizer.load_state_dict(self.optimizer.state_dict())
        if schedule is not None:
            if self.schedule_state is None:
                raise ValueError("fit was given a schedule but the checkpoint has no schedule state")
            schedule.load_state_dict(self.schedule_state)
        rng.bit_generator.state = self.fit_state["rng"]
        if stopper is not None and self.fit_state.get("early_stopping") is not None:
            stopper.load_state(self.fit_state["early_stopping"], self.best_state)
        return int(self.fit_state["epoch"]), int(self.fit_state["step"])

    def __repr__(self):
        return (f"Checkpoint(model={type(self.model).__name__}, optimizer="
                f"{None if self.optimizer is None else type(self.optimizer).__name__}, epoch={self.epoch}, "
                f"extra={sorted(self.extra)})")


def load(path, device="cpu"):
    """Read a checkpoint written by ``save`` (or by ``fit(checkpoint=...)``); returns a Checkpoint whose model
    (and optimizer state) live on ``device``, "cpu" or "cuda", whichever device wrote the file."""
    check_device(device)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file {path!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise ValueError(f"{path!r} is not a readable .npz checkpoint") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is a single .npy array, not an .npz checkpoint")
    with z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path!r} is not an nncore checkpoint (it has no __meta__ entry)")
        arrays = {k: z[k] for k in z.files}
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r}: its __meta__ entry is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r}: its __meta__ entry is not a JSON object")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path!r} has format {meta.get('format')!r} version {meta.get('version')!r}; this nncore "
                         f"reads {FORMAT!r} version {VERSION}")
    if "model" not in meta:
        raise ValueError(f"{path!r}: the checkpoint has no model configuration")
    model = from_config(meta["model"])
    model.load_state_dict(_section(arrays, "model/"))
    model.to(device)  # before the optimizer is built over its parameters, so the optimizer state goes there too

    optimizer = None
    if "optimizer" in meta:
        o = meta["optimizer"]
        cls = getattr(_optim, o["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
            raise ValueError(f"{path!r}: unknown optimizer type {o['type']!r}")
        params = model.parameters()
        groups = []
        for g in o["param_groups"]:
            hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items() if k != "params"}
            groups.append({"params": [params[i] for i in g["params"]], **hyper})
        optimizer = cls(groups)
        state = {}
        for gi, scalars in o["state"].items():
            entry = dict(scalars)
            entry.update(_section(arrays, f"optimizer/{gi}/"))
            state[int(gi)] = entry
        optimizer.load_state_dict({"state": state, "param_groups": o["param_groups"]})
    best = _section(arrays, "best/") or None
    extra = dict(meta.get("extra", {}))
    extra.update(_section(arrays, "extra/"))
    schedule_state = meta["schedule"]["state"] if "schedule" in meta else None
    return Checkpoint(model, optimizer, schedule_state, extra, meta.get("fit"), best)


def _section(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
