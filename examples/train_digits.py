"""Train a small MLP on scikit-learn's handwritten digits using only the compiled kernels.

    python examples/train_digits.py [--epochs 30] [--hidden 128] [--seed 0]

This is the kernel layer composed by hand, the way nncore's training loop composes it: one fused
linear + ReLU kernel, inverted dropout from the counter-based generator, the fused softmax cross-entropy,
and a single Adam update over one flat buffer that holds every parameter (the gradients live in a second
flat buffer with the same layout, so the optimizer step is one kernel call).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import kernels as K


def load_digits_split(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data.astype(np.float32), data.target, test_size=0.25, stratify=data.target, random_state=seed
    )
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6  # fitted on the training split only
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


class FlatMLP:
    """in -> hidden (ReLU, dropout) -> classes; parameters and gradients are views of two flat buffers."""

    def __init__(self, n_in, n_hidden, n_out, rng):
        shapes = [(n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,)]
        sizes = [int(np.prod(s)) for s in shapes]
        self.flat = np.zeros(sum(sizes), np.float32)
        self.grad = np.zeros_like(self.flat)
        offsets = np.cumsum([0] + sizes)
        views = lambda buf: [buf[a:b].reshape(s) for a, b, s in zip(offsets, offsets[1:], shapes)]  # noqa: E731
        self.w1, self.b1, self.w2, self.b2 = views(self.flat)
        self.dw1, self.db1, self.dw2, self.db2 = views(self.grad)
        # He initialisation for the ReLU layer, Xavier for the output layer
        self.w1[...] = rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)
        self.w2[...] = rng.standard_normal((n_hidden, n_out)) * np.sqrt(1.0 / n_hidden)

    def forward(self, x, *, p_drop=0.0, seed=0, counter=0):
        h = K.linear_forward(x, self.w1, self.b1, "relu")
        hd = K.dropout_forward(h, p_drop, seed, counter) if p_drop else h
        logits = K.linear_forward(hd, self.w2, self.b2)
        return logits, (x, h, hd, logits)

    def backward(self, dlogits, saved, *, p_drop=0.0, seed=0, counter=0):
        x, h, hd, logits = saved
        # weight and bias gradients are written straight into their views of the flat gradient buffer
        dhd, _, _ = K.linear_backward(dlogits, hd, self.w2, logits, out_dw=self.dw2, out_db=self.db2)
        dh = K.dropout_backward(dhd, p_drop, seed, counter) if p_drop else dhd
        K.linear_backward(dh, x, self.w1, h, "relu", out_dw=self.dw1, out_db=self.db1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x_tr, y_tr, x_te, y_te = load_digits_split(args.seed)
    model = FlatMLP(x_tr.shape[1], args.hidden, 10, rng)
    exp_avg, exp_avg_sq = np.zeros_like(model.flat), np.zeros_like(model.flat)
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_tr))
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            step += 1
            kw = dict(p_drop=args.dropout, seed=args.seed, counter=step)
            logits, saved = model.forward(x_tr[idx], **kw)
            loss, dlogits = K.softmax_cross_entropy(logits, y_tr[idx])
            model.backward(dlogits, saved, **kw)
            K.adam_update(model.flat, model.grad, exp_avg, exp_avg_sq, step=step, lr=args.lr)
            total += float(loss) * len(idx)
        test_logits, _ = model.forward(x_te)
        acc = float((test_logits.argmax(axis=1) == y_te).mean())
        print(f"epoch {epoch:3d}  train loss {total / len(x_tr):.4f}  test accuracy {acc:.2%}")
    print(f"trained in {time.perf_counter() - t0:.1f} s (JIT compilation included); test accuracy {acc:.2%}")
    return acc


if __name__ == "__main__":
    main()
