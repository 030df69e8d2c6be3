"""nncore.fit / evaluate / predict: accuracy on real data, the loop's exact semantics, early stopping,
checkpoint + resume (bitwise), non-finite losses, schedules and callbacks inside fit, bad arguments."""

import math
import sys

import numpy as np
import pytest

import nncore
from nncore import optim, schedules
from nncore.optim import clip_grad_norm_


@pytest.fixture(scope="module")
def digits():
    return nncore.data.load("digits", seed=0)


def _blobs(rng, n=96, f=5, c=3, dtype=np.float32):
    centers = rng.standard_normal((c, f)) * 3
    y = rng.integers(0, c, n)
    X = (centers[y] + rng.standard_normal((n, f))).astype(dtype)
    return X, y


def _params(model):
    return np.concatenate([p.data.ravel() for p in model.parameters()])


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
    lambda p: optim.Adam(p, lr=2e-3),
], ids=["sgd-momentum", "adam"])
def test_fit_on_digits_reaches_95_percent(digits, make_opt):
    model = nncore.MLP([64, 64, 10], dropout=0.1, seed=0)
    loss = nncore.CrossEntropyLoss()
    hist = nncore.fit(model, digits.X_train, digits.y_train, loss=loss, optimizer=make_opt(model.parameters()),
                      epochs=15, batch_size=32, seed=0, progress=False)
    assert hist.epochs == 15 and hist["loss"][-1] < hist["loss"][0]
    test = nncore.evaluate(model, digits.X_test, digits.y_test, loss=loss)
    assert test["accuracy"] >= 0.95, test


def test_one_epoch_equals_the_hand_written_loop(rng):
    # fit without shuffling, with clipping, must do exactly what the documented loop does
    X, y = _blobs(rng)
    kw = dict(sizes=[5, 8, 3], dropout=0.25, batchnorm=True, seed=3)
    a, b = nncore.MLP(**kw), nncore.MLP(**kw)
    la, lb = nncore.CrossEntropyLoss(), nncore.CrossEntropyLoss()
    oa, ob = optim.Adam(a.parameters(), lr=0.01), optim.Adam(b.parameters(), lr=0.01)
    hist = nncore.fit(a, X, y, loss=la, optimizer=oa, epochs=1, batch_size=20, shuffle=False, seed=11,
                      clip_grad_norm=0.5, progress=False)
    b.manual_seed(11)
    b.train()
    total = 0.0
    for s in range(0, len(X), 20):
        xb, yb = X[s:s + 20], y[s:s + 20]
        value = lb(b(xb), yb)
        total += value * len(xb)
        b.backward(lb.backward())
        clip_grad_norm_(b.parameters(), 0.5)
        ob.step()
    np.testing.assert_array_equal(_params(a), _params(b))
    for (name, x1), (_, x2) in zip(a.named_buffers(), b.named_buffers()):
        np.testing.assert_array_equal(x1, x2, err_msg=name)
    assert hist["loss"][0] == pytest.approx(total / len(X), rel=1e-12)


def test_seed_fixes_the_run_and_another_seed_changes_it(rng):
    X, y = _blobs(rng)

    def run(seed):
        model = nncore.MLP([5, 8, 3], dropout=0.3, seed=0)
        nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                   epochs=3, batch_size=16, seed=seed, progress=False)
        return _params(model)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_early_stopping_stops_and_restores_the_best_epoch(rng):
    # a tiny noisy training set and a large learning rate: validation loss turns up quickly
    X, y = _blobs(rng, n=60, f=20, c=3)
    y = np.where(rng.random(60) < 0.4, rng.integers(0, 3, 60), y)
    Xv, yv = _blobs(rng, n=60, f=20, c=3)
    model = nncore.MLP([20, 64, 3], seed=1)
    loss = nncore.CrossEntropyLoss()
    stopper = nncore.EarlyStopping("val_loss", patience=3)
    hist = nncore.fit(model, X, y, loss=loss, optimizer=optim.Adam(model.parameters(), lr=0.05), epochs=200,
                      batch_size=10, validation_data=(Xv, yv), early_stopping=stopper, seed=0, progress=False)
    val = hist["val_loss"]
    assert hist.stopped_epoch is not None and hist.stopped_epoch < 200
    assert len(val) == hist.stopped_epoch
    best = int(np.argmin(val)) + 1
    assert hist.best_epoch == best and hist.stopped_epoch == best + 3
    # the restored weights give back exactly the best epoch's validation loss
    assert nncore.evaluate(model, Xv, yv, loss=loss)["loss"] == val[best - 1]


def test_early_stopping_min_delta_and_max_mode():
    s = nncore.EarlyStopping("val_accuracy", patience=2, min_delta=0.05, restore_best_weights=False)
    assert s.mode == "max"
    model = nncore.Linear(2, 2)
    # 0.54 is not 0.05 better than 0.5; 0.56 is (new best); 0.6 and 0.605 are not better than 0.56 + 0.05
    stops = [s.update(e, v, model) for e, v in enumerate([0.5, 0.54, 0.56, 0.6, 0.605], 1)]
    assert stops == [False, False, False, False, True]
    assert s.best_epoch == 3 and s.best == 0.56


@pytest.mark.parametrize("with_schedule", ["step", "plateau"])
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(rng, tmp_path, with_schedule):
    X, y = _blobs(rng, n=80)

    def setup():
        model = nncore.MLP([5, 16, 3], dropout=0.2, batchnorm=True, seed=2)
        opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
        if with_schedule == "step":
            sched = schedules.LinearWarmup(opt, 3, after=schedules.CosineAnnealingLR(opt, T_max=40, interval="step"),
                                           interval="step")
        else:
            sched = schedules.ReduceLROnPlateau(opt, patience=1, factor=0.5)
        return model, opt, sched

    kw = dict(loss=nncore.CrossEntropyLoss(), batch_size=16, validation_split=0.25, seed=7, progress=False,
              early_stopping=nncore.EarlyStopping("val_loss", patience=50))
    m1, o1, s1 = setup()
    h1 = nncore.fit(m1, X, y, optimizer=o1, schedule=s1, epochs=10, **kw)

    path = tmp_path / "run.npz"
    m2, o2, s2 = setup()
    nncore.fit(m2, X, y, optimizer=o2, schedule=s2, epochs=5, checkpoint=path, **kw)
    m3, o3, s3 = setup()  # a fresh process would build the same objects, then resume
    h3 = nncore.fit(m3, X, y, optimizer=o3, schedule=s3, epochs=10, resume=path, **kw)

    np.testing.assert_array_equal(_params(m1), _params(m3))
    for (name, a), (_, b) in zip(m1.named_buffers(), m3.named_buffers()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert h1.history == h3.history and h1.best_epoch == h3.best_epoch
    assert s1.get_last_lr() == s3.get_last_lr()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_names_epoch_and_step_and_keeps_a_finite_model(rng):
    X, y = _blobs(rng, n=64)
    X[37] = np.inf  # one poisoned row: the batch holding it (shuffle off) has a non-finite loss
    model = nncore.MLP([5, 8, 3], batchnorm=True, seed=0)
    before = model.state_dict()
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, step 3 \(batch 3 of the epoch\)"):
        nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                   epochs=2, batch_size=16, shuffle=False, progress=False)
    state = model.state_dict()
    assert all(np.all(np.isfinite(v)) for v in state.values())
    # two steps were taken (the parameters moved) and the bad batch left the running statistics alone
    assert not np.array_equal(state["0.weight"], before["0.weight"])
    assert int(state["1.num_batches_tracked"]) == 2


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_diverging_parameters_are_rolled_back(rng):
    # lr = 1e38: the first update overflows the float32 parameters to inf, the next loss is not finite, and
    # fit puts back the parameters of before that update (the last finite state)
    X, y = _blobs(rng, n=32)
    t = np.eye(3, dtype=np.float32)[y]
    model = nncore.MLP([5, 3], seed=0)
    before = _params(model)
    with pytest.raises(FloatingPointError, match="epoch 1, step 2 .*restored to their values before it"):
        nncore.fit(model, X * 1e3, t, loss=nncore.MSELoss(), optimizer=optim.SGD(model.parameters(), lr=1e38),
                   epochs=3, batch_size=16, progress=False)
    np.testing.assert_array_equal(_params(model), before)


def test_schedules_tick_per_step_or_per_epoch(rng):
    X, y = _blobs(rng, n=64)
    model = nncore.MLP([5, 3], seed=0)
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = schedules.ExponentialLR(opt, gamma=0.5, interval="step")
    hist = nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=opt, schedule=sched, epochs=3,
                      batch_size=16, progress=False)
    assert hist["lr"] == [1.0, 0.5**4, 0.5**8]  # lr at the start of each epoch, 4 steps per epoch
    model = nncore.MLP([5, 3], seed=0)
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = schedules.StepLR(opt, step_size=2, gamma=0.1)
    hist = nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=opt, schedule=sched, epochs=5,
                      batch_size=16, progress=False)
    assert hist["lr"] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01], rel=1e-12)


def test_reduce_on_plateau_gets_the_monitored_metric(rng):
    X, y = _blobs(rng, n=64)
    model = nncore.MLP([5, 3], seed=0)
    # gradient ascent: the validation loss only grows, so every epoch after the first is a plateau epoch
    opt = optim.SGD(model.parameters(), lr=0.1, maximize=True)
    sched = schedules.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    hist = nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=opt, schedule=sched, epochs=4,
                      batch_size=64, validation_split=0.25, progress=False)
    assert all(b > a for a, b in zip(hist["val_loss"], hist["val_loss"][1:]))
    assert hist["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025], rel=1e-12)


def test_callbacks_see_the_logs_and_can_stop(rng):
    X, y = _blobs(rng, n=64)
    seen = []

    class Stopper:
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))
            return epoch == 2

    model = nncore.MLP([5, 3], seed=0)
    hist = nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                      epochs=10, batch_size=16, callbacks=[Stopper()], progress=False)
    assert hist.epochs == 2
    assert seen == [(1, ["accuracy", "loss", "lr"]), (2, ["accuracy", "loss", "lr"])]


def test_regression_and_binary_tasks(rng):
    X = rng.standard_normal((128, 4)).astype(np.float32)
    w = rng.standard_normal((4, 1)).astype(np.float32)
    t = X @ w
    model = nncore.MLP([4, 1], seed=0)
    hist = nncore.fit(model, X, t, loss=nncore.MSELoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                      epochs=30, batch_size=32, progress=False)
    assert "accuracy" not in hist and hist["loss"][-1] < 1e-3
    np.testing.assert_allclose(model[0].weight.data, w, atol=0.02)
    yb = (t[:, 0] > 0).astype(np.float32)[:, None]
    model = nncore.MLP([4, 1], seed=0)
    hist = nncore.fit(model, X, yb, loss=nncore.BCEWithLogitsLoss(), optimizer=optim.Adam(model.parameters(), lr=0.05),
                      epochs=20, batch_size=32, progress=False)
    assert hist["accuracy"][-1] > 0.9


def test_evaluate_and_predict_restore_the_mode(rng):
    X, y = _blobs(rng, n=50)
    model = nncore.MLP([5, 7, 3], dropout=0.5, batchnorm=True, seed=0)
    model.train()
    out = nncore.predict(model, X, batch_size=16)
    assert out.shape == (50, 3) and model.training
    model.eval()
    np.testing.assert_allclose(out, model(X), rtol=1e-6, atol=1e-6)  # batched eval == one eval pass
    model.train()
    metrics = nncore.evaluate(model, X, y, loss=nncore.CrossEntropyLoss(), batch_size=7)
    assert model.training and set(metrics) == {"loss", "accuracy"}
    assert metrics["accuracy"] == np.mean(out.argmax(1) == y)


def test_progress_bar_only_on_a_terminal(rng, capsys, monkeypatch):
    X, y = _blobs(rng, n=32)
    model = nncore.MLP([5, 3], seed=0)
    kw = dict(loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2,
              batch_size=8)
    nncore.fit(model, X, y, **kw)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    nncore.fit(model, X, y, **kw)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss" in err


@pytest.mark.parametrize("kw,err,match", [
    (dict(epochs=-1), ValueError, "epochs must be an integer >= 0"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (dict(validation_split=1.0), ValueError, r"validation_split must be in \[0, 1\)"),
    (dict(early_stopping=nncore.EarlyStopping("val_loss")), ValueError, "no validation data"),
    (dict(early_stopping="yes"), TypeError, "early_stopping must be an EarlyStopping"),
    (dict(clip_grad_norm=-1.0), ValueError, "clip_grad_norm must be a positive number"),
    (dict(loss="mse"), TypeError, "loss must be an nncore loss"),
    (dict(optimizer=None), TypeError, "optimizer must be an nncore.optim optimizer"),
    (dict(validation_data=(np.zeros((3, 5)),)), ValueError, "validation_data must be a pair"),
    (dict(validation_split=0.2, validation_data=(np.zeros((3, 5)), np.zeros(3))), ValueError, "either"),
])
def test_fit_rejects_bad_arguments(rng, kw, err, match):
    X, y = _blobs(rng, n=20)
    model = nncore.MLP([5, 3], seed=0)
    args = dict(loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1,
                progress=False)
    args.update(kw)
    with pytest.raises(err, match=match):
        nncore.fit(model, X, y, **args)


def test_fit_rejects_bad_data(rng):
    X, y = _blobs(rng, n=20)
    model = nncore.MLP([5, 3], seed=0)
    kw = dict(loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1,
              progress=False)
    with pytest.raises(ValueError, match="y has 19 rows but X has 20"):
        nncore.fit(model, X, y[:19], **kw)
    with pytest.raises(ValueError, match="integer class indices"):
        nncore.fit(model, X, y + 0.5, **kw)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 5\)"):
        nncore.fit(model, X[:, :4], y, **kw)
    assert math.isfinite(nncore.evaluate(model, X, y, loss=nncore.CrossEntropyLoss())["loss"])


# ---- regressions found in review -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_first_step_leaves_parameters_and_dropout_counters_alone(rng):
    X, y = _blobs(rng, n=32)
    model = nncore.MLP([5, 8, 3], dropout=0.5, seed=0)
    model[0].weight.data[0, 0] = np.nan
    before = _params(model)
    with pytest.raises(FloatingPointError, match="epoch 1, step 1") as e:
        nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                   epochs=1, batch_size=16, progress=False)
    assert "restored" not in str(e.value)  # no update happened, nothing to restore
    np.testing.assert_array_equal(_params(model), before)  # (NaN compares equal here)
    assert model[2].counter == 0


def test_a_run_ended_by_early_stopping_stays_ended_on_resume(rng, tmp_path):
    X, y = _blobs(rng, n=60)
    path = tmp_path / "ck.npz"

    def run(epochs, resume=None):
        model = nncore.MLP([5, 3], seed=0)
        hist = nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(),
                          optimizer=optim.SGD(model.parameters(), lr=0.1, maximize=True), epochs=epochs,
                          batch_size=20, early_stopping=nncore.EarlyStopping("loss", patience=1,
                                                                             restore_best_weights=False),
                          checkpoint=None if resume else path, resume=resume, progress=False)
        return model, hist

    m1, h1 = run(6)  # gradient ascent: the loss never improves after epoch 1, stop after epoch 2
    assert h1.stopped_epoch == 2
    m2, h2 = run(10, resume=path)
    assert h2.epochs == 2 and h2.stopped_epoch == 2
    np.testing.assert_array_equal(_params(m1), _params(m2))


def test_batchnorm_model_with_a_one_row_last_batch_trains(rng):
    X, y = _blobs(rng, n=33)
    model = nncore.MLP([5, 8, 3], batchnorm=True, seed=0)
    nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
               epochs=2, batch_size=16, progress=False)  # 16 + 16 + 1: the single row joins the second batch
    assert int(model[1].num_batches_tracked) == 4
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(X[:1])
    assert int(model[1].num_batches_tracked) == 4  # a rejected batch is not counted


def test_fit_evaluate_predict_restore_each_modules_mode(rng):
    X, y = _blobs(rng, n=40)
    model = nncore.MLP([5, 8, 3], batchnorm=True, dropout=0.2, seed=0)
    model[1].eval()  # a frozen BatchNorm inside a model in training mode
    expected = [m.training for m in model.modules()]
    loss = nncore.CrossEntropyLoss()
    nncore.evaluate(model, X, y, loss=loss)
    nncore.predict(model, X)
    nncore.fit(model, X, y, loss=loss, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1, progress=False)
    assert [m.training for m in model.modules()] == expected


def test_multi_label_bce_accuracy_counts_outputs(rng):
    X = rng.standard_normal((30, 4)).astype(np.float32)
    Y = (rng.random((30, 3)) < 0.5).astype(np.float32)
    model = nncore.MLP([4, 3], seed=0)
    out = nncore.predict(model, X)
    metrics = nncore.evaluate(model, X, Y, loss=nncore.BCEWithLogitsLoss(), batch_size=7)
    assert metrics["accuracy"] == np.mean((out > 0) == (Y > 0.5))


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_fit_and_evaluate_need_a_mean_loss(rng, reduction):
    X, y = _blobs(rng, n=20)
    model = nncore.MLP([5, 3], seed=0)
    loss = nncore.CrossEntropyLoss(reduction=reduction)
    with pytest.raises(ValueError, match="need reduction='mean'"):
        nncore.fit(model, X, y, loss=loss, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1,
                   progress=False)
    with pytest.raises(ValueError, match="need reduction='mean'"):
        nncore.evaluate(model, X, y, loss=loss)


def test_resume_with_another_seed_is_refused(rng, tmp_path):
    X, y = _blobs(rng, n=20)
    path = tmp_path / "ck.npz"
    model = nncore.MLP([5, 3], seed=0)
    kw = dict(loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1), progress=False)
    nncore.fit(model, X, y, epochs=1, seed=1, checkpoint=path, **kw)
    with pytest.raises(ValueError, match="trained with seed=1, fit was given seed=2"):
        nncore.fit(model, X, y, epochs=2, seed=2, resume=path, **kw)


def test_schedule_of_another_optimizer_is_refused(rng):
    X, y = _blobs(rng, n=20)
    model = nncore.MLP([5, 3], seed=0)
    other = optim.SGD(nncore.MLP([5, 3], seed=1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        nncore.fit(model, X, y, loss=nncore.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                   schedule=schedules.StepLR(other, 1), epochs=1, progress=False)


def test_evaluate_and_predict_argument_checks(rng):
    X, y = _blobs(rng, n=10)
    model = nncore.MLP([5, 4, 3], batchnorm=True, seed=0)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            nncore.evaluate(model, X, y, loss=nncore.CrossEntropyLoss(), batch_size=bad)
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            nncore.predict(model, X, batch_size=bad)
    assert nncore.predict(model, X[:0]).shape == (0, 3)
