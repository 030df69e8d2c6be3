"""One training step of an MLP, float32: forward, loss, backward, optimizer update, every provider.

The network, for sizes (d_0, d_1, ..., d_L): Linear -> BatchNorm1d -> ReLU -> Dropout(0.2) for each hidden
layer, then Linear; softmax cross-entropy (mean over the batch); Adam(lr=1e-3). One call is the step a user
writes, on one fixed batch (x, y):

    nncore      loss = loss_fn.forward(model(x), y); model.backward(loss_fn.backward(), need_input_grad=False);
                opt.step(); opt.zero_grad()  -- nncore.MLP(sizes, dropout=0.2, batchnorm=True),
                nncore.CrossEntropyLoss, nncore.optim.Adam; on the GPU the model moved with model.to("cuda")
                and the batch as CuPy arrays (the loss stays a device array: nothing waits for the GPU)
    torch       opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()  -- torch.nn.Sequential
                of the same layers, torch.nn.CrossEntropyLoss, torch.optim.Adam (eager; TF32 off on the GPU)
    numpy/cupy  the step written out by hand on separate parameter arrays (bench/_mlp.py NaiveMLP): the naive
                baseline, and the readable statement of what every provider computes
    jax         one jax.jit of value_and_grad of the loss plus a hand-written Adam, the parameters a pytree,
                state donated (bench/_mlp.py JaxMLP)

No provider computes the gradient of the input data. The floor is the step's GEMM flops over the sgemm rate:
forward 2 N sum(d_i d_{i+1}), backward twice that, minus the first layer's input gradient that no one
computes. Targets: 784-1024-1024-10 at batch 256 (GEMM-bound: nncore-cpu at most 0.85x torch-cpu's time) and
64-128-10 at batch 64 (per-call overhead: at most 0.35x) (issue 3); on a GPU nncore-cuda faster than
torch-cuda at 784-1024-1024-10, batch 256 and 4096 (issue 4).

Scaling: 784-1024-1024-10 over batch 32 .. 4096, and 784-W-W-10 over W = 128 .. 4096 at batch 256
(params "batch" and "width", the hidden size; "inputs" and "layers" tell the 64-128-10 target apart from the
sweeps), where the GEMMs take over from per-layer overhead.

Checks, after timing, of each provider's own trained model: (a) its eval-mode output (running statistics, no
dropout) matches a float64 NumPy evaluation (kernels/reference.py) of its own weights and running statistics;
(b) the training loss went down: the loss of the current parameters under the first step's dropout masks (the
provider's generator restarted from the seed it began with) is below the first step's loss, recorded in the
step. One Adam step already lowers it (the first update follows the gradient of exactly that loss), so the
check holds under --benchmark-disable, where the step runs once, and fails if the update does not descend.

    pytest bench/bench_train_step.py --benchmark-only --benchmark-group-by=group [--bench-preset=full]
"""

from __future__ import annotations

import numpy as np

import nncore
from bench._mlp import BN_EPS, JaxMLP, NaiveMLP
from bench.conftest import shapes
from kernels import reference as ref

DROPOUT = 0.2
LR = 1e-3
SEED = 0  # initial weights and dropout streams

MNIST_MLP = (784, 1024, 1024, 10)
TARGETS = [(MNIST_MLP, 256), ((64, 128, 10), 64)]  # issue 3's CPU targets; the first is issue 4's too
BATCH_SWEEP = [(MNIST_MLP, 1 << k) for k in range(5, 13)]  # batch 32 .. 4096
WIDTH_SWEEP = [((784, w, w, 10), 256) for w in (1 << k for k in range(7, 13))]  # width 128 .. 4096


def shape_name(shape):
    """``((784, 1024, 1024, 10), 256)`` -> ``"784-1024-1024-10-b256"``."""
    sizes, n = shape
    return "-".join(map(str, sizes)) + f"-b{n}"


def _unique(shape_list):
    return list(dict.fromkeys(shape_list))


TRAIN_SHAPES = shapes(
    tiny=[((8, 16, 3), 5), ((7, 19, 13, 3), 6)],
    quick=_unique(TARGETS + [(MNIST_MLP, 32), (MNIST_MLP, 4096), ((784, 128, 128, 10), 256),
                             ((784, 4096, 4096, 10), 256)]),
    full=_unique(TARGETS + BATCH_SWEEP + WIDTH_SWEEP),
    ids=shape_name,
)


def flops(sizes, n):
    """The step's GEMM flops: forward, and backward's two GEMMs per layer less the first layer's dx."""
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 2 * n * (3 * macs - sizes[0] * sizes[1])


def eval_oracle(hidden, out, x):
    """The eval-mode forward in float64 from plain arrays: per hidden layer (W (in, out), b, gamma, beta,
    running_mean, running_var) a Linear, BatchNorm1d with the running statistics and ReLU (dropout is the
    identity in eval mode), then the output layer's (W, b)."""
    h = x
    for w, b, gamma, beta, mean, var in hidden:
        z = ref.batchnorm_forward_eval(ref.linear_forward(h, w, b), gamma, beta, mean, var, eps=BN_EPS)
        h = ref.activation(z, "relu")
    return ref.linear_forward(h, *out)


# ---- the step on each provider: an object with step() (returns the loss), and for the checks eval_output(),
# ---- weights() (as eval_oracle takes them) and first_masks_loss()


class NncoreMLP:
    """nncore's MLP, CrossEntropyLoss and Adam on the provider's device."""

    def __init__(self, provider, sizes, x, y):
        self.provider = provider
        self.model = nncore.MLP(sizes, dropout=DROPOUT, batchnorm=True, seed=SEED).to(provider.device)
        self.model.manual_seed(SEED)  # the dropout streams, counters at 0: first_masks_loss restarts them here
        self.loss_fn = nncore.CrossEntropyLoss()
        self.opt = nncore.optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y = provider.asarray(x), provider.asarray(y)

    def step(self):
        loss = self.loss_fn.forward(self.model(self.x), self.y)  # on the GPU a 0-d device array: no wait
        self.model.backward(self.loss_fn.backward(), need_input_grad=False)
        self.opt.step()
        self.opt.zero_grad()
        return loss

    def eval_output(self):
        self.model.eval()
        out = self.provider.to_numpy(self.model(self.x))
        self.model.train()
        return out

    def weights(self):
        state = {k: self.provider.to_numpy(v) for k, v in self.model.state_dict().items()}
        linears = [i for i, layer in enumerate(self.model.layers) if isinstance(layer, nncore.Linear)]
        hidden = []
        for i in linears[:-1]:
            assert isinstance(self.model.layers[i + 1], nncore.BatchNorm1d)
            hidden.append(tuple(state[f"{i}.{k}"] for k in ("weight", "bias")) + tuple(
                state[f"{i + 1}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")))
        return hidden, (state[f"{linears[-1]}.weight"], state[f"{linears[-1]}.bias"])

    def first_masks_loss(self):
        self.model.manual_seed(SEED)
        return float(self.loss_fn(self.model(self.x), self.y))


class TorchMLP:
    """torch.nn.Sequential of the same layers, CrossEntropyLoss and torch.optim.Adam, eager, on the device."""

    def __init__(self, provider, sizes, x, y):
        import torch

        self.torch, self.provider = torch, provider
        if provider.device == "cuda":  # full float32 GEMMs, as nncore's
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(SEED)
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [torch.nn.Linear(a, b), torch.nn.BatchNorm1d(b), torch.nn.ReLU(), torch.nn.Dropout(DROPOUT)]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        self.model = torch.nn.Sequential(*layers).to(provider.torch_device)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.x, self.y = provider.asarray(x), provider.asarray(y)
        torch.manual_seed(SEED)  # the first step's dropout masks come from here: first_masks_loss restarts it

    def step(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def eval_output(self):
        self.model.eval()
        with self.torch.no_grad():
            out = self.provider.to_numpy(self.model(self.x))
        self.model.train()
        return out

    def weights(self):
        layers, numpy = list(self.model), self.provider.to_numpy
        hidden = [(numpy(lin.weight).T, numpy(lin.bias), numpy(bn.weight), numpy(bn.bias), numpy(bn.running_mean),
                   numpy(bn.running_var)) for lin, bn in zip(layers[0:-1:4], layers[1:-1:4])]
        return hidden, (numpy(layers[-1].weight).T, numpy(layers[-1].bias))

    def first_masks_loss(self):
        self.torch.manual_seed(SEED)
        with self.torch.no_grad():
            return float(self.loss_fn(self.model(self.x), self.y))


def build(provider, sizes, x, y):
    """The training step of ``provider`` on the batch (x, y), NumPy arrays, copied onto the provider."""
    if provider.library == "nncore":
        return NncoreMLP(provider, sizes, x, y)
    if provider.library == "torch":
        return TorchMLP(provider, sizes, x, y)
    if provider.library in ("numpy", "cupy"):
        return NaiveMLP(provider.xp, sizes, provider.asarray(x), provider.asarray(y), p=DROPOUT, lr=LR, seed=SEED)
    # JAX is 32-bit unless x64 is enabled: int32 labels
    return JaxMLP(sizes, provider.asarray(x), provider.asarray(y.astype(np.int32)), p=DROPOUT, lr=LR, seed=SEED)


@TRAIN_SHAPES
def test_train_step(measure, provider, shape):
    sizes, n = shape
    rng = np.random.default_rng()
    x = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=n)
    run = build(provider, sizes, x, y)
    first_loss = []

    def step():
        loss = run.step()
        if not first_loss:  # the first call (never a timed one): reading the loss may wait for the device
            first_loss.append(float(provider.to_numpy(loss)))
        return loss

    def check(loss):
        assert np.isfinite(loss), loss
        expected = eval_oracle(*run.weights(), x)
        tol = provider.rtol
        np.testing.assert_allclose(run.eval_output(), expected, rtol=tol, atol=tol * np.abs(expected).max())
        after = run.first_masks_loss()  # after the eval check: it moves the running statistics
        assert after < first_loss[0] * (1 - 1e-4), f"the training loss did not fall: {first_loss[0]} -> {after}"

    measure(step, op="train-step f32", shape=shape_name(shape), check=check, flops=flops(sizes, n),
            params={"batch": n, "width": sizes[1], "inputs": sizes[0], "layers": len(sizes) - 1})
