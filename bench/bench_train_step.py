"""One training step of an MLP (forward, loss, backward, optimizer update), nncore against PyTorch eager.

Both sides run the same network, float32, on the CPU with their default thread settings:

    Linear -> BatchNorm1d -> ReLU -> Dropout(0.2) for each hidden layer, then Linear; CrossEntropyLoss; Adam

and the step a user writes by hand:

    nncore:  logits = model(xb); loss = loss_fn(logits, yb); model.backward(loss_fn.backward(),
             need_input_grad=False); opt.step(); opt.zero_grad()
    torch:   opt.zero_grad(); loss = loss_fn(model(xb), yb); loss.backward(); opt.step()

(torch does not compute the gradient of the input data either: xb does not require grad.)

Shapes (the issue's targets): 784-1024-1024-10 at batch 256 (GEMM-bound: nncore must take at most 0.85x
torch's time) and 64-128-10 at batch 64 (per-call overhead: at most 0.35x). The floor reported is the
step's GEMM flops over the sgemm rate measured in the same run (forward 2 N sum(in*out), backward twice
that, minus the first layer's input gradient that neither side computes).

After timing, the trained nncore model is checked: its eval-mode output must match a float64 NumPy
evaluation of the same weights and running statistics.
"""

import numpy as np
import pytest

import nncore
from bench.conftest import torch_or_skip

CASES = [((784, 1024, 1024, 10), 256), ((64, 128, 10), 64)]
IDS = ["784-1024-1024-10-b256", "64-128-10-b64"]
DROPOUT = 0.2


def _flops(sizes, n):
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 2 * n * (3 * macs - sizes[0] * sizes[1])


def _data(sizes, n):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], n)


def _rounds(sizes):
    return 30 if sizes[1] >= 1024 else 2000


def _eval_oracle(model, x):
    """The eval-mode forward of MLP(batchnorm=True) in float64 NumPy, from the model's state dict."""
    sd = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    h = x.astype(np.float64)
    layers = model.layers
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind == "Linear":
            h = h @ sd[f"{i}.weight"] + sd[f"{i}.bias"]
        elif kind == "BatchNorm1d":
            h = (h - sd[f"{i}.running_mean"]) / np.sqrt(sd[f"{i}.running_var"] + layer.eps) * sd[f"{i}.weight"] \
                + sd[f"{i}.bias"]
        elif kind == "ReLU":
            h = np.maximum(h, 0.0)
    return h


@pytest.mark.parametrize("sizes,n", CASES, ids=IDS)
def test_train_step_nncore(benchmark, report, sizes, n):
    benchmark.group = f"train-step {IDS[CASES.index((sizes, n))]}"
    x, y = _data(sizes, n)
    model = nncore.MLP(sizes, dropout=DROPOUT, batchnorm=True, seed=0)
    loss_fn = nncore.CrossEntropyLoss()
    opt = nncore.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step()
        opt.zero_grad()

    for _ in range(3):  # compile and allocate outside the timing
        step()
    benchmark.pedantic(step, rounds=_rounds(sizes), warmup_rounds=2)
    report(benchmark, flops=_flops(sizes, n))
    model.eval()
    out = model(x)
    ref = _eval_oracle(model, x)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


@pytest.mark.parametrize("sizes,n", CASES, ids=IDS)
def test_train_step_torch(benchmark, report, sizes, n):
    torch = torch_or_skip()
    benchmark.group = f"train-step {IDS[CASES.index((sizes, n))]}"
    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.BatchNorm1d(b), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT)]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = (torch.from_numpy(a) for a in _data(sizes, n))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    benchmark.pedantic(step, rounds=_rounds(sizes), warmup_rounds=2)
    report(benchmark, flops=_flops(sizes, n))
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
