"""The ``nncore`` command (nncore.cli) and the training-curve plot (nncore.plot).

Most cases call ``main([...])`` in-process and read stdout/stderr with capsys; one test runs
``python -m nncore`` in a subprocess for the real exit code and stderr. What is checked against something
other than the CLI's own output: the default run's test accuracy against the 97% goal, the printed
learning rates against the schedules' formulas (torch semantics), the best epoch against the printed
validation losses, ``evaluate`` against the train summary, regression RMSE against the spread of the
targets, and every error path's exit status, single stderr line and message.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

import nncore
from nncore.cli import main
from nncore.plot import plot_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ACCURACY = re.compile(r"accuracy (\d+\.\d+)% \((\d+)/(\d+)\)")
RMSE = re.compile(r"test: loss ([\d.e+-]+) \(MSE\), RMSE ([\d.e+-]+)")
EPOCH = re.compile(r"^epoch +(\d+)/(\d+) ")
SMALL = ["--hidden", "16", "--epochs", "2", "--quiet"]  # fast runs that only exercise an option


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def field(line, name):
    """The number after ``name`` in a progress line ("loss 0.1234  acc ...")."""
    return float(re.search(rf"(?:^|  ){name} (\S+)", line).group(1))


def epoch_lines(out):
    return [line for line in out.splitlines() if EPOCH.match(line)]


def accuracy(out):
    m = ACCURACY.search(out.splitlines()[-1])
    assert m, out
    return float(m.group(1)) / 100, int(m.group(2)), int(m.group(3))


# ----------------------------------------------------------------------------------------- acceptance

def test_default_train_reaches_97_percent_on_digits(capsys):
    rc, out, err = run(capsys, "train")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("data: digits (10 classes): 64 features, 1437 train / 360 test")
    assert lines[1].startswith("model: MLP 64-") and "Adam" in lines[2]
    epochs = epoch_lines(out)
    assert [int(EPOCH.match(line).group(1)) for line in epochs] == list(range(1, len(epochs) + 1))
    assert all(re.search(r"  \d+\.\d+s$", line) for line in epochs)  # seconds per epoch
    acc, correct, n = accuracy(out)
    assert n == 360 and correct == round(acc * n)
    assert acc >= 0.97, out


# ----------------------------------------------------------------------------------------- options

def lr_warmup_step(lr, t, warmup=2, step_size=2, gamma=0.5):
    # torch SequentialLR([LinearLR(start_factor=1/3, total_iters=warmup), StepLR], milestones=[warmup])
    if t < warmup:
        return lr * (1 / 3 + (2 / 3) * t / warmup)
    return lr * gamma ** ((t - warmup) // step_size)


def test_breast_cancer_sgd_nesterov_step_schedule_with_warmup(capsys):
    rc, out, err = run(capsys, "train", "--dataset", "breast_cancer", "--hidden", "16", "8", "--activation", "tanh",
                       "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov", "--weight-decay",
                       "1e-4", "--schedule", "step", "--step-size", "2", "--gamma", "0.5", "--warmup", "2",
                       "--epochs", "7", "--batch-size", "32", "--clip-grad-norm", "5", "--seed", "3",
                       "--test-size", "0.25")
    assert rc == 0 and err == ""
    assert "breast_cancer (2 classes): 30 features, 426 train / 143 test" in out
    assert "MLP 30-16-8-2, tanh" in out and "SGD lr 0.05" in out
    lrs = [field(line, "lr") for line in epoch_lines(out)]
    assert len(lrs) == 7
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(lr_warmup_step(0.05, t), rel=5e-3), (t, lrs)
    acc, _, n = accuracy(out)
    assert n == 143 and acc >= 0.9


@pytest.mark.parametrize("schedule, extra, expected", [
    ("exponential", ["--gamma", "0.5"], lambda t: 0.01 * 0.5**t),
    ("cosine", [], lambda t: 0.01 * (1 + math.cos(math.pi * t / 4)) / 2),
])
def test_printed_lr_follows_the_schedule(capsys, schedule, extra, expected):
    rc, out, _ = run(capsys, "train", "--hidden", "16", "--epochs", "4", "--optimizer", "adagrad", "--lr", "0.01",
                     "--schedule", schedule, *extra)
    assert rc == 0
    lrs = [field(line, "lr") for line in epoch_lines(out)]
    assert lrs == pytest.approx([expected(t) for t in range(4)], rel=5e-3, abs=1e-12)


@pytest.mark.parametrize("argv", [
    ["--optimizer", "adadelta", "--schedule", "plateau", "--gamma", "0.5", "--validation-split", "0.2"],
    ["--optimizer", "nadam", "--dtype", "float64", "--activation", "sigmoid"],
    ["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.05", "--warmup", "1"],
    ["--optimizer", "rmsprop", "--momentum", "0.5", "--batchnorm", "--activation", "leaky_relu"],
], ids=["adadelta-plateau", "nadam-float64", "adamw-warmup", "rmsprop-batchnorm"])
def test_optimizers_and_model_options_train(capsys, argv):
    rc, out, err = run(capsys, "train", *SMALL, *argv)
    assert rc == 0 and err == ""
    assert len(out.splitlines()) == 1  # --quiet: the summary line only
    acc, _, n = accuracy(out)
    assert n == 360 and acc > 0.5  # ten classes: chance is 0.1


def test_batchnorm_and_validation_columns(capsys):
    rc, out, _ = run(capsys, "train", "--hidden", "32", "--epochs", "3", "--batchnorm", "--validation-split", "0.2")
    assert rc == 0
    assert "MLP 64-32-10, relu, batchnorm" in out and "validation 0.2" in out
    assert all("val_loss" in line and "val_acc" in line for line in epoch_lines(out))


def test_diabetes_regression_reports_rmse(capsys):
    rc, out, err = run(capsys, "train", "--dataset", "diabetes", "--hidden", "32", "--optimizer", "adamw", "--lr",
                       "0.05", "--epochs", "30", "--dtype", "float64")
    assert rc == 0 and err == ""
    assert "diabetes (regression): 10 features" in out and "MSELoss" in out
    assert all("acc" not in line for line in epoch_lines(out))
    loss, rmse = map(float, RMSE.search(out.splitlines()[-1]).groups())
    assert rmse == pytest.approx(math.sqrt(loss), rel=1e-5)
    ds = nncore.data.load("diabetes")
    # better than always predicting the training mean (RMSE = the test targets' spread about it)
    assert rmse < 0.9 * float(np.sqrt(np.mean((ds.y_test - ds.y_train.mean()) ** 2)))


def test_early_stopping_prints_the_best_epoch(capsys):
    rc, out, _ = run(capsys, "train", "--hidden", "16", "--lr", "0.05", "--epochs", "40", "--early-stopping", "1")
    assert rc == 0
    assert "validation 0.1" in out
    lines = epoch_lines(out)
    val = [field(line, "val_loss") for line in lines]
    best = int(re.search(r"best epoch (\d+)", out.splitlines()[-1]).group(1))
    assert val[best - 1] == min(val)
    stopped = re.search(r"stopped after epoch (\d+)", out)
    assert len(lines) == (int(stopped.group(1)) if stopped else 40)


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_plot_writes_a_png(capsys, tmp_path):
    path = tmp_path / "curves.png"
    rc, out, _ = run(capsys, "train", *SMALL, "--early-stopping", "3", "--plot", path)
    assert rc == 0 and f"plot {path}" in out
    assert png_size(path)[0] > 0


def test_plot_history_panels_and_errors(tmp_path):
    clf = nncore.History({"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "accuracy": [0.5, 0.8, 0.9],
                          "val_accuracy": [0.4, 0.7, 0.6], "lr": [0.1] * 3}, best_epoch=2)
    reg = nncore.History({"loss": [3e4, 5e3, 3e3], "lr": [0.1] * 3})
    a = plot_history(clf, tmp_path / "clf.png", title="digits")
    b = plot_history(reg.history, tmp_path / "reg.png")  # a plain dict of lists works too
    assert a == tmp_path / "clf.png"
    width_clf, height_clf = png_size(tmp_path / "clf.png")
    width_reg, height_reg = png_size(b)
    assert width_clf > 1.5 * width_reg and height_clf == height_reg  # two panels vs the loss panel alone
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_history(clf, tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="no epochs"):
        plot_history(nncore.History(), tmp_path / "empty.png")
    with pytest.raises(TypeError, match="History"):
        plot_history([1.0, 0.5], tmp_path / "list.png")


def summary_numbers(out):
    last = out.splitlines()[-1]
    return re.search(r"test: loss (\S+?),", last).group(1), accuracy(out)


def test_save_then_evaluate_gives_the_train_summary(capsys, tmp_path):
    path = tmp_path / "bc.npz"
    rc, out, _ = run(capsys, "train", "--dataset", "breast_cancer", "--hidden", "16", "--epochs", "5", "--seed",
                     "5", "--test-size", "0.3", "--dropout", "0.5", "--quiet", "--save", path)
    assert rc == 0 and f"saved {path}" in out
    trained = summary_numbers(out)
    assert trained[1][2] == 171  # ceil(0.3 * 569): the non-default test_size was used
    rc, out, err = run(capsys, "evaluate", path)
    assert rc == 0 and err == ""
    assert summary_numbers(out) == trained
    extra = nncore.load(path).extra
    assert (extra["dataset"], extra["seed"], extra["test_size"], extra["task"], extra["loss"]) == \
        ("breast_cancer", 5, 0.3, "binary", "CrossEntropyLoss")
    assert extra["mean"].shape == extra["std"].shape == (30,)
    # another split of the same data, standardised with the saved statistics
    rc, out, _ = run(capsys, "evaluate", path, "--seed", "1", "--test-size", "0.5", "--batch-size", "7")
    assert rc == 0 and accuracy(out)[2] == 285


def synthetic(rng, n=240, features=5, classes=3):
    X = rng.normal(size=(n, features)) * rng.uniform(0.5, 20, size=features) + rng.normal(size=features) * 10
    W = rng.normal(size=(features, classes))
    labels = np.argmax((X - X.mean(0)) / X.std(0) @ W, axis=1)
    return X, labels


def test_csv_file_linear_model_save_evaluate(capsys, tmp_path, rng):
    X, labels = synthetic(rng)
    path = tmp_path / "train.csv"
    rows = ["a,b,c,d,e,label"] + [",".join(f"{v:.17g}" for v in x) + f",{c + 1}"
                                  for x, c in zip(X, labels, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    ck = tmp_path / "lin.npz"
    # no hidden widths: a linear (softmax regression) model, enough for linearly separable classes
    rc, out, err = run(capsys, "train", "--data", path, "--hidden", "--epochs", "30", "--lr", "0.05",
                       "--save", ck)
    assert rc == 0 and err == ""
    assert "train.csv (3 classes): 5 features, 192 train / 48 test" in out and "MLP 5-3 (18 parameters)" in out
    trained = summary_numbers(out)
    assert trained[1][0] >= 0.75  # chance is 1/3; seen 0.875 to 1.0 over 30 draws
    rc, out, _ = run(capsys, "evaluate", ck)
    assert rc == 0 and summary_numbers(out) == trained


def test_npz_file_regression(capsys, tmp_path, rng):
    X = rng.normal(size=(300, 4)) * 3 + 1
    w = rng.normal(size=4)
    y = X @ w + 0.05 * rng.normal(size=300)
    path = tmp_path / "reg.npz"
    np.savez(path, X=X, y=y)
    rc, out, _ = run(capsys, "train", "--data", path, "--hidden", "--epochs", "40", "--lr", "0.05",
                     "--batch-size", "16", "--quiet")
    assert rc == 0
    rmse = float(RMSE.search(out).group(2))
    assert rmse < 0.2 * np.std(y)  # a linear target, learnt by a linear model


# ----------------------------------------------------------------------------------------- errors

def assert_one_error_line(rc, out, err, match, status=2):
    assert rc == status
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nncore: error: ") and "Traceback" not in err
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("argv, match", [
    (["train", "--lr", "0"], r"--lr: must be in \(0, inf\), got 0"),
    (["train", "--lr", "-0.001"], r"--lr: must be in \(0, inf\), got -0.001"),
    (["train", "--lr", "fast"], r"--lr: expected a number, got 'fast'"),
    (["train", "--lr", "nan"], r"--lr: expected a finite number"),
    (["train", "--dropout", "1"], r"--dropout: must be in \[0, 1\), got 1"),
    (["train", "--dropout", "-0.1"], r"--dropout: must be in \[0, 1\)"),
    (["train", "--test-size", "1.5"], r"--test-size: must be in \(0, 1\)"),
    (["train", "--hidden", "32", "0"], r"--hidden: must be in \[1, inf\), got 0"),
    (["train", "--epochs", "2.5"], r"--epochs: expected an integer"),
    (["train", "--seed", "-1"], r"--seed: must be in \[0, 4294967295\]"),
    (["train", "--dataset", "mnist"], r"--dataset: invalid choice: 'mnist'"),
    (["train", "--optimizer", "lbfgs"], r"--optimizer: invalid choice"),
    (["train", "--dataset", "digits", "--data", "x.csv"], r"--data: not allowed with argument --dataset"),
    (["train", "--no-such-option"], r"unrecognized arguments: --no-such-option"),
    (["train", "--momentum", "0.9"], r"--momentum applies to sgd and rmsprop, not adam"),
    (["train", "--optimizer", "sgd", "--nesterov"], r"--nesterov needs a momentum"),
    (["train", "--optimizer", "adam", "--nesterov"], r"--nesterov applies to sgd"),
    (["train", "--schedule", "cosine", "--gamma", "0.5"], r"--gamma applies to --schedule step"),
    (["train", "--step-size", "3"], r"--step-size applies to --schedule step, not none"),
    (["train", "--schedule", "plateau", "--gamma", "2"], r"factor"),
    (["train", "--validation-split", "0.9999", "--epochs", "1", "--quiet"], r"validation_split"),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
    (["evaluate"], r"required: MODEL"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, match):
    rc, out, err = run(capsys, *argv)
    assert_one_error_line(rc, out, err, match)


def test_bad_files_exit_2_with_one_line(capsys, tmp_path, rng):
    missing = tmp_path / "nope.csv"
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("1,2,3\n4,oops,6\n")
    not_ckpt = tmp_path / "fake.npz"
    not_ckpt.write_bytes(b"this is not a zip archive")
    plain_npz = tmp_path / "plain.npz"
    np.savez(plain_npz, X=rng.normal(size=(3, 2)))
    three_class = tmp_path / "wide.npz"
    X, labels = synthetic(rng, features=30)
    np.savez(three_class, X=X, y=labels)
    bc = tmp_path / "bc.npz"
    assert main(["train", "--dataset", "breast_cancer", *SMALL, "--save", str(bc)]) == 0
    bare = tmp_path / "bare.npz"
    nncore.save(bare, nncore.MLP([64, 10], seed=0))
    capsys.readouterr()
    cases = [
        (["train", "--data", missing], r"does not exist"),
        (["train", "--data", bad_csv], r"bad\.csv: line 2, column 2 holds 'oops'"),
        (["train", "--data", plain_npz], r"no array named 'y'"),
        (["train", *SMALL, "--save", tmp_path / "no" / "dir" / "m.npz"], r"--save .*directory .* does not exist"),
        (["train", *SMALL, "--plot", tmp_path / "no" / "p.png"], r"--plot .*directory .* does not exist"),
        (["train", *SMALL, "--save", tmp_path], r"--save .*: is a directory; give a file name"),
        (["evaluate", missing.with_suffix(".npz")], r"checkpoint file .* does not exist"),
        (["evaluate", not_ckpt], r"not a readable .npz checkpoint"),
        (["evaluate", plain_npz], r"not an nncore checkpoint"),
        (["evaluate", bc, "--dataset", "digits"], r"takes 30 input features but digits has 64"),
        (["evaluate", bc, "--data", three_class], r"has 2 outputs but wide\.npz is 3 classes"),
        (["evaluate", bare], r"does not record its data set .* pass --dataset or --data"),
    ]
    for argv, match in cases:
        rc, out, err = run(capsys, *argv)
        assert_one_error_line(rc, out, err, match)


def test_evaluate_a_bare_checkpoint_with_dataset(capsys, tmp_path):
    """A checkpoint saved from Python (no extras): --dataset supplies the data, standardised as load does."""
    ds = nncore.data.load("digits")
    model = nncore.MLP([64, 10], seed=0)
    nncore.fit(model, ds.X_train, ds.y_train, loss=nncore.CrossEntropyLoss(),
               optimizer=nncore.optim.Adam(model.parameters(), lr=1e-2), epochs=3, progress=False)
    expected = nncore.evaluate(model, ds.X_test, ds.y_test, loss=nncore.CrossEntropyLoss())
    path = tmp_path / "bare.npz"
    nncore.save(path, model)
    rc, out, _ = run(capsys, "evaluate", path, "--dataset", "digits")
    assert rc == 0
    assert accuracy(out)[1] == round(expected["accuracy"] * 360)


def test_divergence_exits_1_with_one_line(capsys):
    rc, out, err = run(capsys, "train", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "3", "--quiet")
    assert_one_error_line(rc, out, err, r"training diverged: loss is (nan|inf)", status=1)


# ----------------------------------------------------------------------------------------- help

TRAIN_OPTIONS = ["--dataset", "--data", "--test-size", "--hidden", "--activation", "--dropout", "--batchnorm",
                 "--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay", "--schedule", "--step-size",
                 "--gamma", "--warmup", "--epochs", "--batch-size", "--early-stopping", "--validation-split",
                 "--clip-grad-norm", "--seed", "--dtype", "--save", "--plot", "--quiet"]


def test_help_lists_every_option(capsys):
    rc, out, err = run(capsys, "train", "--help")
    assert rc == 0 and err == ""
    for option in TRAIN_OPTIONS:
        line = next((line for line in out.splitlines() if line.strip().startswith(option + " ")
                     or line.strip() == option), None)
        assert line is not None, option
    rc, out, _ = run(capsys, "evaluate", "--help")
    assert rc == 0 and all(o in out for o in ("MODEL", "--dataset", "--data", "--batch-size", "--seed"))
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "train" in out and "evaluate" in out


def test_no_subcommand_prints_help_and_returns_2(capsys):
    rc, out, _ = run(capsys)
    assert rc == 2 and out.startswith("usage: nncore") and "train" in out and "evaluate" in out


# ----------------------------------------------------------------------------------------- subprocess

def test_python_m_nncore_subprocess():
    ok = subprocess.run([sys.executable, "-m", "nncore", "train", "--epochs", "2", "--hidden", "16", "--quiet"],
                        check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr and ok.stderr == ""
    assert len(ok.stdout.splitlines()) == 1 and ACCURACY.search(ok.stdout)
    bad = subprocess.run([sys.executable, "-m", "nncore", "train", "--lr", "0"], check=False, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == ["nncore: error: argument --lr: must be in (0, inf), got 0"]
