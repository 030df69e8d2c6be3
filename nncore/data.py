"""Data sets as standardised, seeded train/test splits: scikit-learn's bundled sets and the user's files.

``load(name)`` takes one of the data sets that ship inside scikit-learn (no download) or a path to a
``.npz`` / ``.csv`` file, and returns a ``Dataset``:

* split: ``sklearn.model_selection.train_test_split(random_state=seed)``, stratified by class for
  classification so both splits keep the class proportions;
* standardisation, fitted on the training split only (the test split must not leak into it)::

      mu_j = mean_i X_train[i, j]      sigma_j = sqrt(mean_i (X_train[i, j] - mu_j)^2)   (biased, ddof=0)
      x'_j = (x_j - mu_j) / sigma_j

  as sklearn's ``StandardScaler``. A column that is constant on the training split gets ``sigma_j = 1`` and
  ``mu_j`` = that constant, so it becomes exactly 0 (never NaN); ``Dataset.transform`` applies the same
  ``mu, sigma`` to new data;
* targets: classification labels become int64 class indices ``0..K-1`` (``np.unique`` order, the original
  labels kept in ``Dataset.classes``), binary included, so CrossEntropyLoss over K outputs works; regression
  targets become an (N, 1) column in the model dtype, to match a one-output model under MSELoss.

User files: ``.npz`` with arrays ``X`` (N, F) and ``y`` (N,) or (N, 1); ``.csv`` of numbers, comma
separated, the last column the target, with an optional header row of names (detected when none of the
first row's fields is a number). For a file, ``task=None`` detects the task: integer-valued targets with at
most 50 distinct values are classification ("binary" when there are 2), anything else regression.

Every problem with the data is found before anything is returned and raised as one sentence naming the
file and the problem: a missing file as ``FileNotFoundError``, everything else about the data or the split
as ``DataError`` (a ``ValueError``), so a command-line tool can catch ``(FileNotFoundError, DataError)``
and print one line. Wrong argument types are ``TypeError``.

scikit-learn is an optional extra (``pip install 'nncore[data]'``) and is imported only when a split or a
bundled data set is asked for.
"""

from __future__ import annotations

import csv
import importlib
import math
import numbers
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .parameter import check_dtype

# name -> (sklearn.datasets loader, task)
BUILTIN = {
    "digits": ("load_digits", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
EXTENSIONS = (".npz", ".csv")
TASKS = ("classification", "regression")
# Auto-detection: integer-valued targets with at most this many distinct values are class labels.
MAX_AUTO_CLASSES = 50


class DataError(ValueError):
    """A problem with a data set, a data file or the requested split (the message names it)."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A standardised train/test split. ``mean``/``std`` were fitted on the training split.

    ``y_*`` are int64 class indices for "classification"/"binary" (``classes[y]`` gives the original
    labels) and (N, 1) arrays of X's dtype for "regression" (``n_classes`` and ``classes`` are None).
    With ``standardize=False``, ``mean`` is 0 and ``std`` is 1, so ``transform`` only casts.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None
    n_features: int
    name: str
    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray | None
    feature_names: tuple[str, ...] | None = None

    def transform(self, X) -> np.ndarray:
        """``(X - mean) / std`` in the data set's dtype, for new samples of shape (N, n_features)."""
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X has dtype {X.dtype}; expected real numbers")
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(f"X must have shape (N, {self.n_features}) for data set {self.name!r}, "
                            f"but has shape {X.shape}")
        return _standardize(X, self.mean, self.std, self.X_train.dtype)

    def __repr__(self) -> str:
        kind = self.task if self.n_classes is None else f"{self.task}, {self.n_classes} classes"
        return (f"Dataset({self.name!r}, {kind}, {self.n_features} features, {len(self.X_train)} train / "
                f"{len(self.X_test)} test, {self.X_train.dtype})")


def _standardize(X, mean, std, dtype):
    # float64 arithmetic whatever the input, then one rounding to the model dtype
    return ((np.asarray(X, dtype=np.float64) - mean) / std).astype(dtype)


def _import_sklearn(module):
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError as exc:
        raise ImportError("nncore.data needs scikit-learn: pip install scikit-learn "
                          "(or the data extra: pip install 'nncore[data]')") from exc


# ----------------------------------------------------------------------------------------------- files

def read_file(path):
    """Read a user's data file: returns ``(X, y, feature_names)``.

    ``X`` is float64 (N, F), ``y`` is (N,) (the file's numeric dtype for .npz, float64 for .csv),
    ``feature_names`` the CSV header's names of the F feature columns, else None. Raises
    FileNotFoundError or DataError as described in the module docstring.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {str(p)!r} does not exist")
    if not p.is_file():
        raise DataError(f"{p}: is not a file")
    ext = p.suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(f"{p}: unsupported extension {p.suffix!r}; expected one of {', '.join(EXTENSIONS)}")
    X, y, names = _read_npz(p) if ext == ".npz" else _read_csv(p)
    _check_arrays(p, X, y)
    return np.asarray(X, dtype=np.float64), y.reshape(-1), names


def _read_npz(p):
    try:
        npz = np.load(p, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError(f"{p}: is a single .npy array, not an .npz archive holding X and y")
        with npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                present = ", ".join(repr(k) for k in npz.files) or "no arrays"
                raise DataError(f"{p}: has no array named {' or '.join(repr(k) for k in missing)}; "
                                f"it holds {present}")
            X, y = npz["X"], npz["y"]
    except DataError:
        raise
    # object arrays (which would need pickle, unsafe on untrusted files) raise ValueError
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{p}: cannot be read as an .npz archive ({exc})") from None
    for key, a in (("X", X), ("y", y)):
        if a.dtype.kind not in "biuf":
            raise DataError(f"{p}: {key} has dtype {a.dtype}; expected real numbers")
    return X, y, None


def _read_csv(p):
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:  # -sig: skip a spreadsheet's byte-order mark
            reader = csv.reader(f, strict=True)
            rows, lines = [], []
            for row in reader:
                if all(not field.strip() for field in row):  # blank line
                    continue
                rows.append([field.strip() for field in row])
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError(f"{p}: is not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"{p}: line {reader.line_num} is not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"{p}: is empty")
    width = len(rows[0])
    header = None
    if not any(_is_number(field) for field in rows[0]):
        header, rows, lines = rows[0], rows[1:], lines[1:]
        if not rows:
            raise DataError(f"{p}: has a header row but no data rows")
    if width < 2:
        raise DataError(f"{p}: has {width} column but needs at least 2 columns (features, then the target "
                        f"last), separated by commas")
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, (row, line) in enumerate(zip(rows, lines)):
        if len(row) != width:
            raise DataError(f"{p}: line {line} has {len(row)} fields but the first line has {width}")
        for j, field in enumerate(row):
            try:
                v = float(field)
            except ValueError:
                v = None
            if v is None or not math.isfinite(v):
                col = f"column {j + 1}" + (f" ({header[j]!r})" if header else "")
                problem = "is empty" if not field else (
                    f"holds {field!r}, which is " + ("not a number" if v is None else "not a finite number"))
                raise DataError(f"{p}: line {line}, {col} {problem}")
            values[i, j] = v
    names = tuple(header[:-1]) if header else None
    return values[:, :-1], values[:, -1], names


def _is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def _check_arrays(p, X, y):
    """Shapes, lengths and finiteness of a file's X and y (the CSV reader has already named its lines)."""
    if X.ndim != 2:
        raise DataError(f"{p}: X must be 2-D (samples, features) but has shape {X.shape}")
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise DataError(f"{p}: y must be 1-D (samples,) or (samples, 1) but has shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise DataError(f"{p}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    if X.shape[0] == 0:
        raise DataError(f"{p}: holds no samples (X has shape {X.shape})")
    if X.shape[1] == 0:
        raise DataError(f"{p}: X has no feature columns (shape {X.shape})")
    for key, a in (("X", X), ("y", y.reshape(-1))):
        bad = ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            where = ", ".join(map(str, idx))
            raise DataError(f"{p}: {key}[{where}] is {a[idx]}, in row {idx[0]} (counting from 0); "
                            f"remove or impute non-finite values")


# ------------------------------------------------------------------------------------------------ load

def load(name, *, test_size=0.2, seed=0, standardize=True, dtype=np.float32, task=None) -> Dataset:
    """A standardised, seeded train/test split of a bundled data set or of a .npz/.csv file.

    name: "digits" (10 classes), "breast_cancer" (binary) or "diabetes" (regression), or a path.
    test_size: the fraction of samples in the test split, in (0, 1).
    seed: ``random_state`` of the split; the same seed gives the same split.
    standardize: fit mean/std on the training split and apply them to both splits.
    dtype: float32 or float64, for X (and regression targets).
    task: "classification", "regression", or None (the bundled set's task, or detected for a file).
    """
    dtype = check_dtype(dtype)
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a float in (0, 1), got {type(test_size).__name__}")
    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size = {test_size!r} must lie strictly between 0 and 1 (a fraction)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise DataError(f"seed = {seed} must be in [0, 2**32)")
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be a bool, got {type(standardize).__name__}")
    if task is not None and task not in TASKS:
        raise DataError(f"task = {task!r} is not one of {TASKS} or None (detect)")

    if isinstance(name, str) and name in BUILTIN:
        loader, builtin_task = BUILTIN[name]
        bunch = getattr(_import_sklearn("datasets"), loader)()
        X, y = bunch.data.astype(np.float64), bunch.target
        names = tuple(str(n) for n in bunch.feature_names)
        label, task = name, task or builtin_task
    elif isinstance(name, os.PathLike) or (isinstance(name, str) and _looks_like_path(name)):
        X, y, names = read_file(name)
        label = Path(name).name
        task = task or _detect_task(y)
    elif isinstance(name, str):
        raise DataError(f"unknown data set {name!r}; available: {', '.join(sorted(BUILTIN))}, "
                        f"or a path to a {' or '.join(EXTENSIONS)} file")
    else:
        raise TypeError(f"name must be a data set name or a path, got {type(name).__name__}")

    n = len(X)
    n_test = math.ceil(test_size * n)  # sklearn's rounding
    n_train = n - n_test
    if n_train < 1:
        raise DataError(f"{label}: test_size = {test_size} leaves no training samples out of {n}")

    classes = n_classes = None
    if task == "classification":
        classes, y, counts = np.unique(y, return_inverse=True, return_counts=True)
        y = y.astype(np.int64)
        if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
            classes = classes.astype(np.int64)  # labels read as floats (CSV) shown as the integers they are
        n_classes = len(classes)
        _check_stratifiable(label, classes, counts, n_train, n_test, test_size)
        if n_classes == 2:
            task = "binary"
    else:
        y = np.asarray(y, dtype=np.float64)

    train_test_split = _import_sklearn("model_selection").train_test_split
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed,
                                              stratify=y if classes is not None else None)

    if standardize:
        mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
        # exactly constant columns: subtract the constant itself (the float mean of equal numbers can be
        # off by an ulp, which divided by a ~0 std would blow up) and divide by 1, so they become 0
        const = np.ptp(X_tr, axis=0) == 0
        mean = np.where(const, X_tr[0], mean)
        std = np.where(const, 1.0, std)
    else:
        mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
    if classes is None:
        y_tr, y_te = (np.ascontiguousarray(a.reshape(-1, 1), dtype=dtype) for a in (y_tr, y_te))

    return Dataset(
        X_train=_standardize(X_tr, mean, std, dtype), y_train=y_tr,
        X_test=_standardize(X_te, mean, std, dtype), y_test=y_te,
        task=task, n_classes=n_classes, n_features=X.shape[1], name=label,
        mean=mean, std=std, classes=classes, feature_names=names,
    )


def _looks_like_path(name):
    return Path(name).suffix != "" or os.sep in name or "/" in name or os.path.exists(name)


def _detect_task(y):
    if y.dtype.kind in "biu":
        integral = True
    else:
        integral = bool(np.all(y == np.round(y)))
    return "classification" if integral and len(np.unique(y)) <= MAX_AUTO_CLASSES else "regression"


def _check_stratifiable(label, classes, counts, n_train, n_test, test_size):
    """The conditions under which sklearn's stratified split works, as our own one-sentence errors."""
    n_classes = len(classes)
    if n_classes < 2:
        raise DataError(f"{label}: all targets are {classes[0]}; classification needs at least 2 classes")
    k = int(np.argmin(counts))
    if counts[k] < 2:
        raise DataError(f"{label}: class {classes[k]} has only {counts[k]} sample; a stratified split needs "
                        f"at least 2 per class (one for each split)")
    for split, size in (("test", n_test), ("training", n_train)):
        if size < n_classes:
            raise DataError(f"{label}: test_size = {test_size} gives {size} {split} samples, fewer than the "
                            f"{n_classes} classes; a stratified split needs at least one sample of each class "
                            f"in each split")
