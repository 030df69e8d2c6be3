"""The ``nncore`` command: ``nncore train`` fits an MLP to a data set, ``nncore evaluate`` scores a checkpoint,
``nncore bench`` runs the benchmark suites and reports them (nncore/bench.py).

    nncore train                                   # MLP 64-256-10 on digits, Adam, >= 97% test accuracy
    nncore train --dataset breast_cancer --hidden 64 32 --optimizer sgd --lr 0.05 --momentum 0.9 \\
                 --nesterov --schedule cosine --warmup 3 --early-stopping 5 --save bc.npz --plot bc.png
    nncore evaluate bc.npz                         # the same split and standardisation as in training
    nncore bench [--full]                          # tables per op, bench.json and charts in ./nncore-bench

``train`` is the course's recipe end to end: ``nncore.data.load`` (seeded, stratified train/test split,
standardisation fitted on the training split), ``MLP([features, *hidden, outputs])``, cross-entropy over
the class logits (binary included: two outputs) or mean squared error for regression, an ``nncore.optim``
optimizer, an optional ``nncore.schedules`` schedule (with a linear warmup in front), then ``nncore.fit``
and ``nncore.evaluate`` on the test split. ``--save`` writes an ``nncore.save`` checkpoint whose extras
(data set, test_size, seed, task, loss, the standardisation mean/std) let ``evaluate`` rebuild exactly the
same test split, standardised with the saved statistics rather than recomputed ones.

Exit status: 0 on success, 2 for a bad option or a bad file (one line on stderr, ``nncore: error: ...``,
never a traceback), 1 when training diverges (a non-finite loss) or a benchmark fails or cannot run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import checkpoint, data, optim, schedules
from .device import DeviceUnavailableError, to_device
from .losses import CrossEntropyLoss, MSELoss
from .modules import MLP
from .training import evaluate, fit

__all__ = ["build_parser", "main"]

# Learning rates used when --lr is not given, picked on digits: with the default MLP each optimizer reaches
# 96-98% test accuracy in 20 epochs (torch's SGD default, 1e-3, barely moves in that time).
DEFAULT_LR = {"sgd": 0.05, "adagrad": 0.01, "rmsprop": 1e-3, "adadelta": 1.0, "adam": 2e-3, "adamw": 2e-3,
              "nadam": 2e-3}
OPTIMIZERS = {"sgd": optim.SGD, "adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adadelta": optim.Adadelta,
              "adam": optim.Adam, "adamw": optim.AdamW, "nadam": optim.NAdam}
SCHEDULES = ("none", "step", "exponential", "cosine", "plateau")
DEFAULT_GAMMA = {"step": 0.1, "exponential": 0.95, "plateau": 0.1}
PLATEAU_PATIENCE = 5
SETUP_ERRORS = (OSError, ImportError, data.DataError, ValueError, TypeError, KeyError, DeviceUnavailableError)


class UsageError(Exception):
    """A bad command line: main prints it as one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: raise instead of printing the usage and exiting."""

    def error(self, message):
        raise UsageError(message)


# ----------------------------------------------------------------------------------------------- option types

def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: ``kind`` (int or float) within the given bounds, with a message saying which."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low}"
            hi = "inf)" if high is None else f"{high}" + (")" if high_open else "]")
            raise argparse.ArgumentTypeError(f"must be in {lo}, {hi}, got {text}")
        return value
    return parse


_positive = _number(float, 0, low_open=True)
_non_negative = _number(float, 0)
_fraction = _number(float, 0, 1, low_open=True, high_open=True)
_probability = _number(float, 0, 1, high_open=True)
_count = _number(int, 1)
_seed = _number(int, 0, 2**32 - 1)


# ----------------------------------------------------------------------------------------------- parser

def build_parser():
    """The argparse parser of the ``nncore`` command (subcommands ``train``, ``evaluate`` and ``bench``)."""
    parser = _Parser(prog="nncore", description="Train and evaluate MLPs on nncore's compiled kernels.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,bench}")

    t = sub.add_parser("train", help="train an MLP on a data set and report its test metrics",
                       description="Train an MLP on a data set, then report its loss and accuracy (RMSE for "
                                   "regression) on the held-out test split.")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=sorted(data.BUILTIN), default=None,
                     help="bundled data set (default: digits)")
    src.add_argument("--data", metavar="FILE", help="a .npz (arrays X, y) or .csv (last column = target) file")
    t.add_argument("--test-size", type=_fraction, default=0.2, help="fraction held out for testing (default 0.2)")
    g = t.add_argument_group("model")
    g.add_argument("--hidden", type=_count, nargs="*", default=[256], metavar="WIDTH",
                   help="hidden layer widths (default: 256); none = a linear model")
    g.add_argument("--activation", choices=["relu", "leaky_relu", "sigmoid", "tanh"], default="relu",
                   help="hidden activation (default relu)")
    g.add_argument("--dropout", type=_probability, default=0.2, metavar="P",
                   help="dropout probability after each hidden layer, in [0, 1) (default 0.2)")
    g.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after each hidden Linear")
    g.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default float32")
    g = t.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam", help="default adam")
    g.add_argument("--lr", type=_positive, default=None,
                   help="learning rate (default per optimizer: "
                        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--momentum", type=_non_negative, default=None, help="momentum of sgd and rmsprop (default 0)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd, needs --momentum > 0)")
    g.add_argument("--weight-decay", type=_non_negative, default=None,
                   help="L2 weight decay (decoupled for adamw; default: the optimizer's, 0.01 for adamw else 0)")
    g.add_argument("--clip-grad-norm", type=_positive, default=None, metavar="MAX",
                   help="clip the global gradient norm to MAX")
    g = t.add_argument_group("learning-rate schedule")
    g.add_argument("--schedule", choices=SCHEDULES, default="none",
                   help="per-epoch schedule: step (lr *= gamma every step-size epochs), exponential (lr *= gamma "
                        "each epoch), cosine (towards 0 at the end of training), plateau (lr *= gamma after "
                        f"{PLATEAU_PATIENCE} epochs without improvement of val_loss, or loss without validation)")
    g.add_argument("--step-size", type=_count, default=None, metavar="EPOCHS",
                   help="epochs between decays of the step schedule (default 10)")
    g.add_argument("--gamma", type=_positive, default=None,
                   help="decay factor of step/exponential/plateau (default: step 0.1, exponential 0.95, "
                        "plateau 0.1)")
    g.add_argument("--warmup", type=_count, default=None, metavar="EPOCHS",
                   help="linear warmup from lr/3 over EPOCHS epochs, then the schedule")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=_count, default=40, help="default 40")
    g.add_argument("--batch-size", type=_count, default=64, help="default 64")
    g.add_argument("--early-stopping", type=_count, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement of val_loss; keep the best weights")
    g.add_argument("--validation-split", type=_probability, default=None,
                   metavar="FRACTION",
                   help="fraction of the training split held out for validation (default 0.1 with "
                        "--early-stopping, else 0)")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="train on the CPU or on the GPU (needs CuPy and a CUDA device; default cpu)")
    g.add_argument("--seed", type=_seed, default=0,
                   help="seeds the split, the initial weights, the shuffling and dropout (default 0)")
    g = t.add_argument_group("output")
    g.add_argument("--save", metavar="PATH", help="write a checkpoint (nncore.save) for `nncore evaluate`")
    g.add_argument("--plot", metavar="FILE.png", help="write the loss/accuracy curves as a PNG")
    g.add_argument("--quiet", action="store_true", help="print only the final summary line")

    e = sub.add_parser("evaluate", help="score a checkpoint written by `nncore train --save`",
                       description="Load a checkpoint, rebuild the test split it was trained against (or of the "
                                   "data given) with its saved standardisation, and report loss and accuracy "
                                   "(RMSE for regression).")
    e.add_argument("model", metavar="MODEL", help="checkpoint file written by `nncore train --save`")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--dataset", choices=sorted(data.BUILTIN), default=None,
                     help="bundled data set (default: the one the checkpoint was trained on)")
    src.add_argument("--data", metavar="FILE", help="a .npz or .csv file (default: the checkpoint's)")
    e.add_argument("--test-size", type=_fraction, default=None, help="default: the checkpoint's")
    e.add_argument("--seed", type=_seed, default=None, help="split seed (default: the checkpoint's)")
    e.add_argument("--batch-size", type=_count, default=1024, help="default 1024")
    e.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="evaluate on the CPU or the GPU")

    b = sub.add_parser("bench", help="run the benchmark suites: tables per op, JSON, PNG charts",
                       description="Run the pytest-benchmark suites of bench/ for every provider that can run "
                                   "here (nncore, plain NumPy, PyTorch and JAX on the CPU; nncore, plain CuPy "
                                   "and PyTorch on a GPU), each provider in its own process, then print one "
                                   "table per op and write bench.json, report.md and PNG charts.")
    b.add_argument("--full", action="store_true",
                   help="every shape: the targets' sizes and the whole scaling sweeps (default: the quick preset)")
    b.add_argument("--preset", choices=["tiny", "quick", "full"], default=None,
                   help="pick the preset by name instead (tiny: a smoke run of every benchmark body)")
    b.add_argument("--providers", default="all", metavar="LIST",
                   help="comma-separated providers (nncore-cpu, numpy, torch-cpu, jax-cpu, nncore-cuda, cupy, "
                        "torch-cuda) or cpu / gpu / all (default all: those that cannot run here are skipped)")
    b.add_argument("--repeat", type=_count, default=1, metavar="N",
                   help="run the providers N times in turn and keep each benchmark's median run (noisy machines)")
    b.add_argument("-k", dest="select", metavar="EXPR", help="only benchmarks matching this pytest -k expression")
    b.add_argument("--out", default="nncore-bench", metavar="DIR", help="output folder (default ./nncore-bench)")
    b.add_argument("--suites", metavar="DIR", help="the bench/ folder to run (default: the repository's)")
    b.add_argument("--report", metavar="BENCH_JSON",
                   help="no timing: print the tables and draw the charts of a saved bench.json into --out")
    b.add_argument("--no-charts", action="store_true", help="tables and JSON only")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


# ----------------------------------------------------------------------------------------------- helpers

def _check_output_dir(option, path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory; give a file name")


def _build_optimizer(args, params):
    name = args.optimizer
    if args.momentum is not None and name not in ("sgd", "rmsprop"):
        raise UsageError(f"--momentum applies to sgd and rmsprop, not {name}")
    if args.nesterov and name != "sgd":
        raise UsageError(f"--nesterov applies to sgd, not {name}")
    if args.nesterov and not args.momentum:
        raise UsageError("--nesterov needs a momentum: add --momentum, e.g. --momentum 0.9")
    kwargs = {"lr": DEFAULT_LR[name] if args.lr is None else args.lr}
    if args.momentum is not None:
        kwargs["momentum"] = args.momentum
    if args.nesterov:
        kwargs["nesterov"] = True
    if args.weight_decay is not None:
        kwargs["weight_decay"] = args.weight_decay
    return OPTIMIZERS[name](params, **kwargs)


def _build_schedule(args, opt):
    kind = args.schedule
    if args.step_size is not None and kind != "step":
        raise UsageError(f"--step-size applies to --schedule step, not {kind}")
    if args.gamma is not None and kind not in DEFAULT_GAMMA:
        raise UsageError(f"--gamma applies to --schedule step, exponential or plateau, not {kind}")
    gamma = DEFAULT_GAMMA.get(kind) if args.gamma is None else args.gamma
    warmup = args.warmup or 0
    if kind == "step":
        after = schedules.StepLR(opt, step_size=args.step_size or 10, gamma=gamma)
    elif kind == "exponential":
        after = schedules.ExponentialLR(opt, gamma=gamma)
    elif kind == "cosine":
        # the cosine counts its epochs from the end of the warmup and would reach 0 one epoch after the last
        # (so the last epoch still trains with a small, non-zero lr)
        after = schedules.CosineAnnealingLR(opt, T_max=max(1, args.epochs - warmup))
    elif kind == "plateau":
        after = schedules.ReduceLROnPlateau(opt, factor=gamma, patience=PLATEAU_PATIENCE)
    else:
        after = None
    if warmup:
        return schedules.LinearWarmup(opt, warmup, after=after)
    return after


def _loss_for(task):
    return MSELoss() if task == "regression" else CrossEntropyLoss()


def _load_data(dataset, data_file, test_size, seed, dtype, task=None, standardize=True):
    source = Path(data_file) if data_file is not None else (dataset or "digits")
    return data.load(source, test_size=test_size, seed=seed, dtype=dtype, task=task, standardize=standardize)


def _describe_data(ds, dtype):
    kind = "regression" if ds.n_classes is None else f"{ds.n_classes} classes"
    return f"{ds.name} ({kind}): {ds.n_features} features, {len(ds.X_train)} train / {len(ds.X_test)} test, {dtype}"


def _describe_model(model):
    sizes = getattr(model, "sizes", None)
    arch = type(model).__name__ + (" " + "-".join(map(str, sizes)) if sizes else "")
    parts = [arch]
    if sizes and len(sizes) > 2:
        parts.append(model.activation)
        if model.batchnorm:
            parts.append("batchnorm")
        if model.dropout:
            parts.append(f"dropout {model.dropout:g}")
    return ", ".join(parts) + f" ({model.num_parameters():,} parameters)"


def _summary(metrics, n, task):
    """The one-line test result, the same for train and evaluate."""
    if task == "regression":
        return f"test: loss {metrics['loss']:.6g} (MSE), RMSE {math.sqrt(metrics['loss']):.6g}"
    correct = round(metrics["accuracy"] * n)
    return f"test: loss {metrics['loss']:.4f}, accuracy {100 * metrics['accuracy']:.2f}% ({correct}/{n})"


def _epoch_printer(epochs, out):
    """A fit callback printing one line per epoch: metrics, the epoch's learning rate and its seconds."""
    width = len(str(epochs))
    last = [time.perf_counter()]

    def on_epoch_end(epoch, logs):
        now = time.perf_counter()
        fields = [f"epoch {epoch:>{width}}/{epochs}"]
        for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"),
                           ("val_accuracy", "val_acc")):
            if key in logs:
                fields.append(f"{label} {logs[key]:.4f}")
        fields += [f"lr {logs['lr']:.3g}", f"{now - last[0]:.2f}s"]
        last[0] = now
        print("  ".join(fields), file=out, flush=True)

    return on_epoch_end


# ----------------------------------------------------------------------------------------------- commands

def _train(args, out):
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path is not None:
            _check_output_dir(option, path)
    validation_split = args.validation_split
    if validation_split is None:
        validation_split = 0.1 if args.early_stopping else 0.0
    dtype = np.dtype(args.dtype)
    if args.device != "cpu":
        to_device(np.zeros(1), args.device)  # no GPU: one clear error before the data is loaded
    ds = _load_data(args.dataset, args.data, args.test_size, args.seed, dtype)
    n_outputs = 1 if ds.task == "regression" else ds.n_classes
    model = MLP([ds.n_features, *args.hidden, n_outputs], activation=args.activation, dropout=args.dropout,
                batchnorm=args.batchnorm, seed=args.seed, dtype=dtype)
    opt = _build_optimizer(args, model.parameters())
    schedule = _build_schedule(args, opt)
    loss = _loss_for(ds.task)
    if not args.quiet:
        plan = [f"{type(opt).__name__} lr {opt.defaults['lr']:g}"]
        if args.schedule != "none" or args.warmup:
            plan.append(f"schedule {args.schedule}" + (f" after {args.warmup} warmup epochs" if args.warmup else ""))
        plan.append(f"{type(loss).__name__}, {args.epochs} epochs, batch {args.batch_size}, on {args.device}")
        if validation_split:
            plan.append(f"validation {validation_split:g}")
        print(f"data: {_describe_data(ds, dtype)}", file=out)
        print(f"model: {_describe_model(model)}", file=out)
        print(f"training: {'; '.join(plan)}", file=out, flush=True)

    start = time.perf_counter()
    # fit reports a non-finite loss itself (FloatingPointError, one line); NumPy's overflow warnings on the
    # way there would only add lines to stderr
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        history = fit(model, ds.X_train, ds.y_train, loss=loss, optimizer=opt, epochs=args.epochs,
                      batch_size=args.batch_size, validation_split=validation_split, seed=args.seed,
                      schedule=schedule, early_stopping=args.early_stopping, clip_grad_norm=args.clip_grad_norm,
                      callbacks=() if args.quiet else (_epoch_printer(args.epochs, out),), progress=False,
                      device=args.device)
    seconds = time.perf_counter() - start
    metrics = evaluate(model, ds.X_test, ds.y_test, loss=loss)

    parts = [_summary(metrics, len(ds.X_test), ds.task)]
    if history.best_epoch is not None:
        stopped = f", stopped after epoch {history.stopped_epoch}" if history.stopped_epoch else ""
        parts.append(f"best epoch {history.best_epoch}{stopped}")
    parts.append(f"{history.epochs} epochs in {seconds:.1f}s")
    if args.save is not None:
        checkpoint.save(args.save, model, opt, schedule, dataset=None if args.data else ds.name,
                        data_file=os.path.abspath(args.data) if args.data else None, test_size=args.test_size,
                        seed=args.seed, task=ds.task, loss=type(loss).__name__, mean=ds.mean, std=ds.std)
        parts.append(f"saved {args.save}")
    if args.plot is not None:
        from .plot import plot_history
        plot_history(history, args.plot, title=f"{ds.name}: {_describe_model(model)}")
        parts.append(f"plot {args.plot}")
    print("; ".join(parts), file=out, flush=True)
    return 0


def _input_output_widths(model):
    linears = [m for m in model.modules() if hasattr(m, "in_features")]
    if not linears:
        raise ValueError("the checkpoint's model has no Linear layer")
    return linears[0].in_features, linears[-1].out_features


def _evaluate(args, out):
    ck = checkpoint.load(args.model, device=args.device)
    extra = ck.extra
    dataset, data_file, task = args.dataset, args.data, None
    if dataset is None and data_file is None:
        dataset, data_file = extra.get("dataset"), extra.get("data_file")
        if dataset is None and data_file is None:
            raise UsageError(f"{args.model} does not record its data set (it was not written by `nncore train "
                             "--save`): pass --dataset or --data")
        # a file's task was detected from its targets at training time; keep that reading
        if extra.get("task") is not None:
            task = "regression" if extra["task"] == "regression" else "classification"
    test_size = args.test_size if args.test_size is not None else extra.get("test_size", 0.2)
    seed = args.seed if args.seed is not None else extra.get("seed", 0)
    model = ck.model
    saved_stats = "mean" in extra and "std" in extra
    # with the saved statistics, load the split unstandardised in float64 (the raw values, exactly) and
    # standardise it the way training did: float64 arithmetic, one rounding to the model's dtype
    ds = _load_data(dataset, data_file, test_size, seed, np.float64 if saved_stats else model.dtype, task=task,
                    standardize=not saved_stats)
    n_in, n_out = _input_output_widths(model)
    if n_in != ds.n_features:
        raise ValueError(f"the model in {args.model} takes {n_in} input features but {ds.name} has "
                         f"{ds.n_features}")
    needed = 1 if ds.task == "regression" else ds.n_classes
    if n_out != needed:
        kind = "regression (1 output)" if ds.task == "regression" else f"{ds.n_classes} classes"
        raise ValueError(f"the model in {args.model} has {n_out} outputs but {ds.name} is {kind}")
    X_test, y_test = ds.X_test, ds.y_test
    if saved_stats:
        mean, std = np.asarray(extra["mean"], np.float64), np.asarray(extra["std"], np.float64)
        if mean.shape != (ds.n_features,) or std.shape != (ds.n_features,):
            raise ValueError(f"{args.model}: the saved mean/std have shapes {mean.shape}/{std.shape}, the data "
                             f"has {ds.n_features} features")
        X_test = ((X_test - mean) / std).astype(model.dtype)
        y_test = y_test.astype(model.dtype) if ds.task == "regression" else y_test
    loss = _loss_for(ds.task)
    metrics = evaluate(model, X_test, y_test, loss=loss, batch_size=args.batch_size)
    trained_on = extra.get("dataset") or extra.get("data_file") or "unrecorded data"
    print(f"model: {_describe_model(model)}, trained on {trained_on} (seed {extra.get('seed', '?')}, "
          f"test_size {extra.get('test_size', '?')})", file=out)
    print(f"data: {_describe_data(ds, model.dtype)}, split seed {seed}, test_size {test_size:g}", file=out)
    print(_summary(metrics, len(X_test), ds.task), file=out, flush=True)
    return 0


def _bench(args, out):
    from . import bench

    echo = lambda text: print(text, file=out, flush=True)  # noqa: E731
    if args.report and (args.full or args.preset or args.select or args.providers != "all" or args.repeat > 1):
        raise UsageError("--report re-renders a saved run: it takes no --full, --preset, -k, --providers or --repeat")
    if args.full and args.preset:
        raise UsageError("give --full or --preset, not both")
    if args.report:
        try:
            with open(args.report) as f:
                results = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--report {args.report}: {_message(exc)}") from None
    else:
        try:
            providers = bench.parse_providers(args.providers)
        except ValueError as exc:
            raise UsageError(f"--providers: {exc}") from None
        preset = args.preset or ("full" if args.full else "quick")
        try:
            bench.suites_dir(args.suites)
        except bench.BenchError as exc:
            raise UsageError(_message(exc)) from None
        try:
            results = bench.run(preset=preset, providers=providers, out=args.out, select=args.select,
                                suites=args.suites, progress=not args.no_progress, repeat=args.repeat, echo=echo)
        except bench.BenchError as exc:
            _error(_message(exc))
            return 1
    bench.report(results, args.out, charts=not args.no_charts, echo=echo)
    if results.get("failures"):
        _error(f"{len(results['failures'])} provider(s) had failing benchmarks: {results['failures'][0]}")
        return 1
    return 0


def _error(message):
    print(f"nncore: error: {message}", file=sys.stderr, flush=True)


def _message(exc):
    # KeyError's str() is the repr of its key; the others' are their message. Never more than one line.
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def main(argv=None):
    """Run the ``nncore`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error(_message(exc))
        return 2
    except SystemExit as exc:  # --help (and --version-like actions) exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help()
        return 2
    command = {"train": _train, "evaluate": _evaluate, "bench": _bench}[args.command]
    try:
        return command(args, sys.stdout)
    except FloatingPointError as exc:
        _error(f"training diverged: {_message(exc)}")
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except (UsageError, *SETUP_ERRORS) as exc:
        _error(_message(exc))
        return 2
