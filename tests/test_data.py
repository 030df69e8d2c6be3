"""nncore.data: the bundled data sets against sklearn's own split and StandardScaler (the oracle), the
user-file readers against the arrays written, task detection, and every error path."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from nncore import data
from nncore.data import DataError, Dataset, load, read_file
from tests.helpers import assert_close

sk_datasets = pytest.importorskip("sklearn.datasets")
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

# name, task, n_classes, (n_samples, n_features) as documented by scikit-learn
BUILTINS = [
    ("digits", "classification", 10, (1797, 64)),
    ("breast_cancer", "binary", 2, (569, 30)),
    ("diabetes", "regression", None, (442, 10)),
]
BUILTIN_IDS = [b[0] for b in BUILTINS]


def raw(name):
    bunch = getattr(sk_datasets, f"load_{name}")()
    return bunch.data, bunch.target


# ------------------------------------------------------------------------------------------- built-ins

@pytest.mark.parametrize("name, task, n_classes, shape", BUILTINS, ids=BUILTIN_IDS)
def test_builtin_shapes_dtypes_and_task(name, task, n_classes, shape):
    ds = load(name)
    n, f = shape
    n_test = math.ceil(0.2 * n)
    assert (ds.name, ds.task, ds.n_classes, ds.n_features) == (name, task, n_classes, f)
    assert ds.X_train.shape == (n - n_test, f) and ds.X_test.shape == (n_test, f)
    assert ds.X_train.dtype == ds.X_test.dtype == np.float32
    assert ds.mean.shape == ds.std.shape == (f,)
    assert len(ds.feature_names) == f
    if n_classes is None:
        assert ds.y_train.shape == (n - n_test, 1) and ds.y_test.shape == (n_test, 1)
        assert ds.y_train.dtype == ds.y_test.dtype == np.float32
        assert ds.classes is None
    else:
        assert ds.y_train.shape == (n - n_test,) and ds.y_test.shape == (n_test,)
        assert ds.y_train.dtype == ds.y_test.dtype == np.int64
        assert np.array_equal(ds.classes, np.arange(n_classes))
        assert set(np.unique(ds.y_train)) == set(np.unique(ds.y_test)) == set(range(n_classes))
    r = repr(ds)
    assert name in r and task in r and f"{n - n_test} train" in r and f"{n_test} test" in r


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("name, task, n_classes, shape", BUILTINS, ids=BUILTIN_IDS)
def test_builtin_matches_sklearn_split_and_scaler(name, task, n_classes, shape, seed):
    X, y = raw(name)
    classification = n_classes is not None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed,
                                              stratify=y if classification else None)
    scaler = StandardScaler().fit(X_tr)
    for dtype, rtol, atol in [(np.float32, 1e-6, 2e-6), (np.float64, 1e-12, 1e-12)]:
        ds = load(name, test_size=0.25, seed=seed, dtype=dtype)
        assert ds.X_train.dtype == ds.X_test.dtype == dtype
        assert_close(ds.X_train, scaler.transform(X_tr), rtol, atol, "X_train")
        assert_close(ds.X_test, scaler.transform(X_te), rtol, atol, "X_test")
        assert_close(ds.mean, scaler.mean_, 1e-12, 1e-12, "mean")
        if classification:
            assert np.array_equal(ds.classes[ds.y_train], y_tr) and np.array_equal(ds.classes[ds.y_test], y_te)
        else:
            assert ds.y_train.dtype == dtype
            assert_close(ds.y_train, y_tr[:, None], rtol, atol, "y_train")
            assert_close(ds.y_test, y_te[:, None], rtol, atol, "y_test")


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_builtin_stratified(name):
    ds = load(name)
    k = ds.n_classes
    p_all = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=k) / (len(ds.y_train) + len(ds.y_test))
    p_train = np.bincount(ds.y_train, minlength=k) / len(ds.y_train)
    p_test = np.bincount(ds.y_test, minlength=k) / len(ds.y_test)
    # stratification rounds each class count to a whole sample: off by at most ~1 sample per class
    assert np.abs(p_test - p_all).max() <= 1.5 / len(ds.y_test)
    assert np.abs(p_train - p_all).max() <= 1.5 / len(ds.y_train)


@pytest.mark.parametrize("name", BUILTIN_IDS)
def test_builtin_train_standardised_test_not_exactly(name):
    ds = load(name, dtype=np.float64)
    X_raw, _ = raw(name)
    constant = np.ptp(ds.X_train, axis=0) == 0
    assert_close(ds.X_train.mean(axis=0), np.zeros(ds.n_features), 0, 1e-12, "train mean")
    assert_close(ds.X_train.std(axis=0)[~constant], np.ones((~constant).sum()), 1e-12, 0, "train std")
    assert np.all(ds.X_train[:, constant] == 0) and np.isfinite(ds.X_test).all()
    # the statistics came from the training split only, so the test split's are off (by sampling noise)
    assert np.abs(ds.X_test.mean(axis=0)).max() > 1e-3
    # and not from the whole data set either
    assert not np.allclose(ds.mean, X_raw.mean(axis=0), rtol=1e-9, atol=0)
    if name == "digits":
        assert constant.sum() >= 3  # three pixels are blank in every image: they must stay 0, not NaN


@pytest.mark.parametrize("name", BUILTIN_IDS)
def test_builtin_split_is_a_partition(name):
    X, _ = raw(name)
    ds = load(name, standardize=False, dtype=np.float64)
    assert np.all(ds.mean == 0) and np.all(ds.std == 1)
    train = {r.tobytes() for r in ds.X_train}
    test = {r.tobytes() for r in ds.X_test}
    assert not train & test
    assert train | test == {r.tobytes() for r in X}


@pytest.mark.parametrize("name", BUILTIN_IDS)
def test_builtin_reproducible_by_seed(name):
    a, b, c = load(name, seed=3), load(name, seed=3), load(name, seed=4)
    for field in ("X_train", "y_train", "X_test", "y_test", "mean", "std"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.X_train, c.X_train)
    assert not np.array_equal(a.mean, c.mean)


def test_builtin_float64_agrees_with_float32():
    d32, d64 = load("breast_cancer"), load("breast_cancer", dtype="float64")
    assert d64.X_train.dtype == np.float64
    assert_close(d32.X_train, d64.X_train, 1e-6, 1e-6, "X_train")
    assert np.array_equal(d32.y_train, d64.y_train)


def test_builtin_forced_regression_on_labels():
    ds = load("digits", task="regression")
    assert ds.task == "regression" and ds.n_classes is None and ds.y_train.shape == (len(ds.X_train), 1)
    assert set(np.unique(ds.y_train)) == set(range(10))


# ---------------------------------------------------------------------------------------------- files

def make_xy(rng, n=60, f=4, labels=(-1, 3, 8)):
    X = rng.normal(size=(n, f)) * rng.uniform(0.5, 20, size=f) + rng.uniform(-50, 50, size=f)
    y = np.asarray(labels)[rng.permutation(np.arange(n) % len(labels))]
    return X, y


def write_csv(path, X, y, header=None):
    lines = [",".join(header)] if header else []
    lines += [",".join(repr(float(v)) for v in (*row, t)) for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_npz_round_trip(tmp_path, rng):
    X, y = make_xy(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    X2, y2, names = read_file(tmp_path / "d.npz")
    assert X2.dtype == np.float64 and np.array_equal(X2, X)
    assert np.array_equal(y2, y) and names is None
    np.savez(tmp_path / "col.npz", X=X.astype(np.float32), y=y[:, None])  # (N, 1) y is accepted
    X3, y3, _ = read_file(str(tmp_path / "col.npz"))
    assert X3.dtype == np.float64 and y3.shape == (len(y),) and np.array_equal(y3, y)


@pytest.mark.parametrize("header", [None, ["width", "height", "depth", "mass", "label"]], ids=["no_header", "header"])
def test_read_csv_round_trip(tmp_path, rng, header):
    X, y = make_xy(rng)
    X2, y2, names = read_file(write_csv(tmp_path / "d.csv", X, y, header))
    assert X2.dtype == np.float64 and np.array_equal(X2, X) and np.array_equal(y2, y)
    assert names == (None if header is None else tuple(header[:-1]))


def test_read_csv_tolerates_spaces_blank_lines_and_bom(tmp_path):
    p = tmp_path / "d.CSV"
    p.write_bytes("\ufeffa, b ,y\n\n1, 2.5 ,0\n  \n3,4e1,1\n".encode("utf-8"))
    X, y, names = read_file(p)
    assert np.array_equal(X, [[1, 2.5], [3, 40]]) and np.array_equal(y, [0, 1]) and names == ("a", "b")


def test_load_file_npz_and_csv_give_the_same_dataset(tmp_path, rng):
    X, y = make_xy(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    a = load(tmp_path / "d.npz", seed=5)
    b = load(str(write_csv(tmp_path / "d.csv", X, y, ["a", "b", "c", "d", "t"])), seed=5)
    assert a.name == "d.npz" and b.name == "d.csv" and b.feature_names == ("a", "b", "c", "d")
    for field in ("X_train", "y_train", "X_test", "y_test", "mean", "std", "classes"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.task == "classification" and a.n_classes == 3
    assert a.classes.dtype == b.classes.dtype == np.int64 and np.array_equal(a.classes, [-1, 3, 8])
    # the split is sklearn's, stratified on the original labels
    X_tr, _, y_tr, _ = train_test_split(X, y, test_size=0.2, random_state=5, stratify=y)
    assert np.array_equal(a.classes[a.y_train], y_tr)
    assert_close(a.mean, X_tr.mean(axis=0), 1e-12, 1e-12, "mean")
    assert_close(a.std, X_tr.std(axis=0), 1e-12, 1e-12, "std")


def test_transform_new_data(tmp_path, rng):
    X, y = make_xy(rng, n=80, f=5)
    X[:, 2] = 0.1  # constant column: the float mean of equal 0.1s is not exactly 0.1
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for dtype in (np.float32, np.float64):
        ds = load(tmp_path / "d.npz", seed=1, dtype=dtype)
        X_tr, X_te, _, _ = train_test_split(X, y, test_size=0.2, random_state=1, stratify=y)
        mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
        sd[2], mu[2] = 1.0, 0.1
        assert np.all(ds.X_train[:, 2] == 0) and np.all(ds.X_test[:, 2] == 0)
        new = rng.normal(size=(7, 5)) * 10
        out = ds.transform(new)
        assert out.dtype == dtype and out.shape == (7, 5)
        tol = (1e-6, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)
        assert_close(out, (new - mu) / sd, *tol, "transform(new)")
        assert np.array_equal(ds.transform(X_te), ds.X_test)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 5\) .* but has shape \(3, 4\)"):
        ds.transform(np.ones((3, 4)))
    with pytest.raises(TypeError, match="X has dtype <U1"):
        ds.transform(np.array([["a"] * 5]))


def test_regression_file(tmp_path, rng):
    X, _ = make_xy(rng)
    y = rng.normal(size=len(X)) * 3 + 1
    np.savez(tmp_path / "r.npz", X=X, y=y)
    for dtype in (np.float32, np.float64):
        ds = load(tmp_path / "r.npz", dtype=dtype)
        assert ds.task == "regression" and ds.n_classes is None and ds.classes is None
        assert ds.y_train.shape == (48, 1) and ds.y_test.shape == (12, 1) and ds.y_train.dtype == dtype
        _, _, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
        assert_close(ds.y_train[:, 0], y_tr, 1e-6, 1e-6, "y_train")
        assert_close(ds.y_test[:, 0], y_te, 1e-6, 1e-6, "y_test")


@pytest.mark.parametrize("labels, dtype, task, n_classes", [
    ([0, 1], np.int64, "binary", 2),
    ([-1.0, 1.0], np.float64, "binary", 2),
    ([False, True], np.bool_, "binary", 2),
    ([2, 5, 9], np.uint8, "classification", 3),
    (list(range(50)), np.float64, "classification", 50),
    (list(range(51)), np.int64, "regression", None),
    ([0.5, 1.5], np.float64, "regression", None),
], ids=["int01", "float_pm1", "bool", "uint8", "50_int_valued", "51_ints", "halves"])
def test_task_detection(tmp_path, rng, labels, dtype, task, n_classes):
    X, y = make_xy(rng, n=10 * len(labels), f=3, labels=np.asarray(labels, dtype=dtype))
    np.savez(tmp_path / "t.npz", X=X, y=y)
    ds = load(tmp_path / "t.npz")
    assert ds.task == task and ds.n_classes == n_classes
    if n_classes is not None:
        assert ds.y_train.dtype == np.int64 and set(np.unique(ds.y_train)) == set(range(n_classes))
        assert np.array_equal(np.sort(np.unique(ds.classes[ds.y_test])), np.unique(y))
    else:
        assert ds.y_train.shape == (len(ds.X_train), 1)


def test_task_forced(tmp_path, rng):
    X, y = make_xy(rng, labels=(0, 1, 2))
    np.savez(tmp_path / "t.npz", X=X, y=y)
    ds = load(tmp_path / "t.npz", task="regression", dtype=np.float64)
    assert ds.task == "regression" and ds.y_train.dtype == np.float64 and ds.y_train.shape[1] == 1
    X, y = make_xy(rng, labels=(0.25, 0.5))
    np.savez(tmp_path / "f.npz", X=X, y=y)
    assert load(tmp_path / "f.npz").task == "regression"
    ds = load(tmp_path / "f.npz", task="classification")
    assert ds.task == "binary" and np.array_equal(ds.classes, [0.25, 0.5]) and ds.classes.dtype == np.float64


# --------------------------------------------------------------------------------------------- errors

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file '.*nope\.csv' does not exist"):
        load(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_file(str(tmp_path / "nope.npz"))
    assert not issubclass(FileNotFoundError, DataError) and issubclass(DataError, ValueError)


def test_unsupported_extension_and_directory(tmp_path):
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"d\.txt: unsupported extension '\.txt'; expected one of \.npz, \.csv"):
        load(tmp_path / "d.txt")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir\.csv: is not a file"):
        read_file(tmp_path / "dir.csv")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        read_file(3)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; available: breast_cancer, diabetes, digits"):
        load("mnist")
    with pytest.raises(TypeError, match="name must be a data set name or a path, got int"):
        load(1)


def test_npz_missing_arrays(tmp_path, rng):
    X, y = make_xy(rng)
    np.savez(tmp_path / "a.npz", X=X, labels=y)
    with pytest.raises(DataError, match=r"a\.npz: has no array named 'y'; it holds 'X', 'labels'"):
        read_file(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", data=X)
    with pytest.raises(DataError, match=r"b\.npz: has no array named 'X' or 'y'; it holds 'data'"):
        load(tmp_path / "b.npz")


def test_npz_not_an_archive(tmp_path, rng):
    (tmp_path / "junk.npz").write_bytes(rng.bytes(64))
    with pytest.raises(DataError, match=r"junk\.npz: cannot be read as an \.npz archive"):
        read_file(tmp_path / "junk.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.npz: cannot be read as an \.npz archive"):
        read_file(tmp_path / "empty.npz")
    with open(tmp_path / "one.npz", "wb") as f:
        np.save(f, rng.normal(size=(3, 2)))
    with pytest.raises(DataError, match=r"one\.npz: is a single \.npy array, not an \.npz archive"):
        read_file(tmp_path / "one.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match=r"obj\.npz: cannot be read as an \.npz archive \(.*allow_pickle"):
        read_file(tmp_path / "obj.npz")
    np.savez(tmp_path / "str.npz", X=np.ones((2, 2)), y=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"str\.npz: y has dtype <U1; expected real numbers"):
        read_file(tmp_path / "str.npz")


@pytest.mark.parametrize("X_shape, y_shape, match", [
    ((10,), (10,), r"X must be 2-D \(samples, features\) but has shape \(10,\)"),
    ((10, 2, 2), (10,), r"X must be 2-D .* has shape \(10, 2, 2\)"),
    ((10, 3), (10, 2), r"y must be 1-D \(samples,\) or \(samples, 1\) but has shape \(10, 2\)"),
    ((10, 3), (), r"y must be 1-D .* has shape \(\)"),
    ((10, 3), (9,), "X has 10 rows but y has 9"),
    ((10, 3), (9, 1), "X has 10 rows but y has 9"),
    ((0, 3), (0,), r"holds no samples \(X has shape \(0, 3\)\)"),
    ((10, 0), (10,), r"X has no feature columns \(shape \(10, 0\)\)"),
], ids=["X_1d", "X_3d", "y_2cols", "y_scalar", "lengths", "lengths_col", "no_rows", "no_features"])
def test_npz_bad_shapes(tmp_path, rng, X_shape, y_shape, match):
    np.savez(tmp_path / "s.npz", X=rng.normal(size=X_shape), y=rng.integers(0, 2, size=y_shape))
    with pytest.raises(DataError, match=r"s\.npz: " + match):
        load(tmp_path / "s.npz")


@pytest.mark.parametrize("key, bad, index, match", [
    ("X", np.nan, (4, 1), r"X\[4, 1\] is nan, in row 4"),
    ("X", -np.inf, (0, 2), r"X\[0, 2\] is -inf, in row 0"),
    ("y", np.inf, (7,), r"y\[7\] is inf, in row 7"),
])
def test_npz_non_finite(tmp_path, rng, key, bad, index, match):
    X, y = make_xy(rng, n=12, f=3, labels=(0.0, 1.0))
    arrays = {"X": X, "y": y}
    arrays[key][index] = bad
    arrays[key][(9,) + index[1:]] = np.nan  # a later row: the first must be named
    np.savez(tmp_path / "n.npz", **arrays)
    with pytest.raises(DataError, match=r"n\.npz: " + match):
        load(tmp_path / "n.npz")


@pytest.mark.parametrize("text, match", [
    ("", r"e\.csv: is empty"),
    ("\n  \n", r"e\.csv: is empty"),
    ("a,b,c\n", r"e\.csv: has a header row but no data rows"),
    ("1\n2\n3\n", r"e\.csv: has 1 column but needs at least 2 columns"),
    ("x,y\n1,0\n2\n", r"e\.csv: line 3 has 1 fields but the first line has 2"),
    ("1,2,0\n3,abc,1\n", r"e\.csv: line 2, column 2 holds 'abc', which is not a number"),
    ("p,q,t\n1,2,0\n\n3,4,x\n", r"e\.csv: line 4, column 3 \('t'\) holds 'x', which is not a number"),
    ("p,q,t\n1,,0\n", r"e\.csv: line 2, column 2 \('q'\) is empty"),
    ("1,2,0\n3,nan,1\n", r"e\.csv: line 2, column 2 holds 'nan', which is not a finite number"),
    ("1,2,0\n3,4,-inf\n", r"e\.csv: line 2, column 3 holds '-inf', which is not a finite number"),
    ("a,1,2\n3,4,5\n", r"e\.csv: line 1, column 1 holds 'a', which is not a number"),
    ('1,"2\n', r"e\.csv: line 1 is not valid CSV"),
], ids=["empty", "blank", "header_only", "one_column", "ragged", "text", "text_header", "empty_field",
        "nan", "inf", "mixed_first_row", "unclosed_quote"])
def test_csv_errors(tmp_path, text, match):
    (tmp_path / "e.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        load(tmp_path / "e.csv")


def test_csv_not_utf8(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe1,2\n")
    with pytest.raises(DataError, match=r"b\.csv: is not a UTF-8 text file"):
        read_file(tmp_path / "b.csv")


def test_too_few_samples_for_stratified_split(tmp_path, rng):
    X, y = make_xy(rng, n=20, labels=(0, 1))
    y[3] = 7
    np.savez(tmp_path / "c.npz", X=X, y=y)
    with pytest.raises(DataError, match=r"c\.npz: class 7 has only 1 sample; a stratified split needs at least "
                                        r"2 per class"):
        load(tmp_path / "c.npz")
    load(tmp_path / "c.npz", task="regression")  # unstratified: fine

    X, y = make_xy(rng, n=40, labels=tuple(range(10)))
    np.savez(tmp_path / "k.npz", X=X, y=y)
    with pytest.raises(DataError, match=r"test_size = 0.1 gives 4 test samples, fewer than the 10 classes"):
        load(tmp_path / "k.npz", test_size=0.1)
    with pytest.raises(DataError, match=r"test_size = 0.9 gives 4 training samples, fewer than the 10 classes"):
        load(tmp_path / "k.npz", test_size=0.9)
    with pytest.raises(DataError, match=r"test_size = 0.99 leaves no training samples out of 40"):
        load(tmp_path / "k.npz", test_size=0.99, task="regression")

    np.savez(tmp_path / "one.npz", X=X, y=np.full(len(X), 4))
    with pytest.raises(DataError, match=r"one\.npz: all targets are 4; classification needs at least 2 classes"):
        load(tmp_path / "one.npz")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"test_size": 0}, ValueError, r"test_size = 0 must lie strictly between 0 and 1"),
    ({"test_size": 1.0}, ValueError, r"test_size = 1.0 must lie strictly between 0 and 1"),
    ({"test_size": -0.1}, ValueError, r"test_size = -0.1 must lie"),
    ({"test_size": 30}, ValueError, r"test_size = 30 must lie"),
    ({"test_size": float("nan")}, ValueError, r"test_size = nan must lie"),
    ({"test_size": "0.2"}, TypeError, r"test_size must be a float in \(0, 1\), got str"),
    ({"test_size": True}, TypeError, r"test_size must be a float .* got bool"),
    ({"dtype": np.int32}, TypeError, r"dtype int32 is not supported; allowed dtypes: float32, float64"),
    ({"dtype": np.float16}, TypeError, r"dtype float16 is not supported"),
    ({"seed": 1.5}, TypeError, r"seed must be an int, got float"),
    ({"seed": -1}, ValueError, r"seed = -1 must be in \[0, 2\*\*32\)"),
    ({"standardize": 1}, TypeError, r"standardize must be a bool, got int"),
    ({"task": "binary"}, ValueError, r"task = 'binary' is not one of \('classification', 'regression'\)"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load("digits", **kwargs)


def test_missing_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn .*nncore\[data\]"):
        load("digits")


def test_dataset_is_frozen():
    ds = load("diabetes")
    assert isinstance(ds, Dataset)
    with pytest.raises(AttributeError):
        ds.task = "classification"
    assert data.MAX_AUTO_CLASSES == 50
