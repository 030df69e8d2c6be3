"""The MLP training step of bench/bench_train_step.py written out by hand: NumPy/CuPy (naive) and JAX.

The network, for sizes (d_0, d_1, ..., d_L): per hidden layer Linear -> BatchNorm1d -> ReLU -> Dropout(p),
then a Linear output layer; softmax cross-entropy (mean over the batch); Adam. Row vectors, weights stored
(in_features, out_features) as nncore stores them. One step on the batch (x, y):

    z = h W + b;  mu, var = batch mean and biased variance of z;  zhat = (z - mu) / sqrt(var + eps)
    a = gamma zhat + beta;  r = max(a, 0);  h' = r * keep / (1 - p)       (keep: uniform >= p)
    logits = h W_out + b_out;  loss = mean_i(logsumexp(logits_i) - logits_i[y_i])
    running_mean <- (1 - 0.1) running_mean + 0.1 mu;  running_var <- (1 - 0.1) running_var + 0.1 var n / (n - 1)

then the gradient of the loss with respect to every parameter (not to x), and the Adam update with bias
correction (torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8). Both implementations start from
``init_params`` (nncore.MLP's initialisation: He-normal hidden weights, Xavier-normal output weights, zero
biases, gamma 1, beta 0) and expose what bench/bench_train_step.py checks: ``eval_output()`` (the eval-mode
forward: running statistics, no dropout), ``weights()`` (the parameters and running statistics as NumPy) and
``first_masks_loss()`` (the training loss of the current parameters under the first step's dropout masks).
"""

from __future__ import annotations

from functools import partial

import numpy as np

BN_EPS = 1e-5
MOMENTUM = 0.1
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def init_params(sizes, seed):
    """[W, b, gamma, beta] per hidden layer, then [W_out, b_out]: float32 NumPy arrays, W of shape (in, out)."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        params += [rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in), np.zeros(n_out), np.ones(n_out),
                   np.zeros(n_out)]
    n_in, n_out = sizes[-2:]
    params += [rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out)), np.zeros(n_out)]
    return [a.astype(np.float32) for a in params]


def _layers(params):
    """The hidden layers' (W, b, gamma, beta) and the output layer's (W, b) of a flat parameter list."""
    return [tuple(params[i:i + 4]) for i in range(0, len(params) - 2, 4)], tuple(params[-2:])


class NaiveMLP:
    """The step as a textbook writes it, against an array module ``xp`` (numpy, cupy, or the CUDA simulator's
    stand-in): every parameter a separate array, every operation a separate array expression, the backward
    derived by hand. There is nothing to zero: the gradients are new arrays each step."""

    def __init__(self, xp, sizes, x, y, *, p, lr, seed=0):
        self.xp, self.x, self.y, self.p, self.lr, self.seed = xp, x, y, p, lr, seed
        self.params = [xp.asarray(a) for a in init_params(sizes, seed)]
        self.m = [xp.zeros_like(a) for a in self.params]
        self.v = [xp.zeros_like(a) for a in self.params]
        self.t = 0
        self.running_mean = [xp.zeros(d, dtype=xp.float32) for d in sizes[1:-1]]
        self.running_var = [xp.ones(d, dtype=xp.float32) for d in sizes[1:-1]]
        self.rng = xp.random.default_rng(seed)  # the dropout masks

    def step(self):
        """Forward, loss, backward, Adam update; returns the loss (of the parameters before the update)."""
        loss, g, saved = self._forward()
        self._adam(self._backward(g, saved))
        return loss

    def first_masks_loss(self):
        """The training loss of the current parameters under the first step's dropout masks (the generator
        restarted from its seed), as a float; it moves the running statistics as any training forward does."""
        self.rng = self.xp.random.default_rng(self.seed)
        return float(_to_numpy(self._forward()[0]))

    def _forward(self):
        """The training forward and the loss: (loss, d loss / d logits, what the backward needs)."""
        xp, n = self.xp, self.x.shape[0]
        hidden, (w_out, b_out) = _layers(self.params)
        h, saved = self.x, []
        for i, (w, b, gamma, beta) in enumerate(hidden):
            z = h @ w + b
            mean = z.mean(axis=0)
            zc = z - mean
            var = (zc * zc).mean(axis=0)
            invstd = 1.0 / xp.sqrt(var + BN_EPS)
            zhat = zc * invstd
            a = zhat * gamma + beta
            keep = (self.rng.random(a.shape, dtype=xp.float32) >= self.p).astype(xp.float32) * (1.0 / (1.0 - self.p))
            saved.append((h, zhat, invstd, a, keep))
            h = xp.maximum(a, 0) * keep
            self.running_mean[i] = (1 - MOMENTUM) * self.running_mean[i] + MOMENTUM * mean
            self.running_var[i] = (1 - MOMENTUM) * self.running_var[i] + MOMENTUM * var * (n / (n - 1))
        saved.append(h)
        logits = h @ w_out + b_out

        # softmax cross-entropy, mean over the rows, and its gradient
        m = logits.max(axis=1, keepdims=True)
        e = xp.exp(logits - m)
        s = e.sum(axis=1, keepdims=True)
        rows = xp.arange(n)
        loss = (xp.log(s[:, 0]) + m[:, 0] - logits[rows, self.y]).mean()
        g = e / s
        g[rows, self.y] -= 1
        g /= n
        return loss, g, saved

    def _backward(self, g, saved):
        """The gradients of every parameter, in the order of ``params``, from d loss / d logits."""
        hidden, (w_out, _) = _layers(self.params)
        *saved, h = saved
        grads = [None] * len(self.params)
        grads[-2], grads[-1] = h.T @ g, g.sum(axis=0)
        dh = g @ w_out.T
        for i in reversed(range(len(hidden))):
            h_in, zhat, invstd, a, keep = saved[i]
            w, _, gamma, _ = hidden[i]
            da = dh * keep * (a > 0)  # through dropout and ReLU
            dzhat = da * gamma
            dz = invstd * (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0))  # through batch norm
            grads[4 * i:4 * i + 4] = [h_in.T @ dz, dz.sum(axis=0), (da * zhat).sum(axis=0), da.sum(axis=0)]
            if i:  # the first layer's input gradient (the data's) is not needed
                dh = dz @ w.T
        return grads

    def _adam(self, grads):
        (b1, b2), xp = BETAS, self.xp
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / c1) / (xp.sqrt(v / c2) + ADAM_EPS)

    def eval_output(self):
        """The eval-mode forward of x (running statistics, no dropout), as NumPy."""
        xp = self.xp
        hidden, (w_out, b_out) = _layers(self.params)
        h = self.x
        for (w, b, gamma, beta), mean, var in zip(hidden, self.running_mean, self.running_var):
            h = xp.maximum((h @ w + b - mean) / xp.sqrt(var + BN_EPS) * gamma + beta, 0)
        return _to_numpy(h @ w_out + b_out)

    def weights(self):
        """[(W, b, gamma, beta, running_mean, running_var) per hidden layer] and (W_out, b_out), as NumPy."""
        hidden, out = _layers([_to_numpy(a) for a in self.params])
        stats = zip(self.running_mean, self.running_var)
        return [layer + (_to_numpy(mean), _to_numpy(var)) for layer, (mean, var) in zip(hidden, stats)], out


def _to_numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


class JaxMLP:
    """The step in JAX: the parameters a pytree, one jitted function per step (value_and_grad of the loss
    with batch-statistics batch norm and jax.random dropout, the batch statistics returned as aux for the
    running averages, then Adam written out), with the parameters, Adam state, running statistics and PRNG
    key donated so XLA updates them in place."""

    def __init__(self, sizes, x, y, *, p, lr, seed=0):
        import jax
        import jax.numpy as jnp

        self.x, self.y = jnp.asarray(x), jnp.asarray(y)
        hidden, out = _layers([jnp.asarray(a) for a in init_params(sizes, seed)])
        params = {"hidden": hidden, "out": out}
        m, v = (jax.tree_util.tree_map(jnp.zeros_like, params) for _ in range(2))
        running = [(jnp.zeros(d, jnp.float32), jnp.ones(d, jnp.float32)) for d in sizes[1:-1]]
        key = jax.random.key(seed)
        self.state = (params, (m, v, jnp.zeros((), jnp.float32)), running, key)
        self.first_key = jax.random.split(key)[1]  # the first step's dropout key (see _jax_step)
        self._step = jax.jit(partial(_jax_step, p=p, lr=lr), donate_argnums=(0, 1, 2, 3))
        self._loss = jax.jit(partial(_jax_loss, p=p))
        self._eval = jax.jit(_jax_eval)

    def step(self):
        *self.state, loss = self._step(*self.state, self.x, self.y)
        return loss

    def first_masks_loss(self):
        """The training loss of the current parameters under the first step's dropout masks, as a float."""
        return float(self._loss(self.state[0], self.x, self.y, self.first_key)[0])

    def eval_output(self):
        params, _, running, _ = self.state
        return np.asarray(self._eval(params, running, self.x))

    def weights(self):
        params, _, running, _ = self.state
        hidden = [tuple(np.asarray(a) for a in layer + stats) for layer, stats in zip(params["hidden"], running)]
        return hidden, tuple(np.asarray(a) for a in params["out"])


def _jax_loss(params, x, y, key, p):
    import jax
    import jax.numpy as jnp

    h, stats = x, []
    for (w, b, gamma, beta), k in zip(params["hidden"], jax.random.split(key, len(params["hidden"]))):
        z = h @ w + b
        mean = z.mean(axis=0)
        var = jnp.mean(jnp.square(z - mean), axis=0)
        a = (z - mean) * jax.lax.rsqrt(var + BN_EPS) * gamma + beta
        keep = jax.random.bernoulli(k, 1.0 - p, a.shape)
        h = jnp.where(keep, jax.nn.relu(a) / (1.0 - p), 0.0)
        stats.append((mean, var))
    w_out, b_out = params["out"]
    logits = h @ w_out + b_out
    loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])
    return loss, stats


def _jax_step(params, adam, running, key, x, y, *, p, lr):
    import jax
    import jax.numpy as jnp

    key, sub = jax.random.split(key)
    (loss, stats), grads = jax.value_and_grad(_jax_loss, has_aux=True)(params, x, y, sub, p)
    (b1, b2), (m, v, t) = BETAS, adam
    t = t + 1
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1**t, 1 - b2**t
    params = jax.tree_util.tree_map(lambda q, m, v: q - lr * (m / c1) / (jnp.sqrt(v / c2) + ADAM_EPS), params, m, v)
    n = x.shape[0]
    running = [((1 - MOMENTUM) * rm + MOMENTUM * mean, (1 - MOMENTUM) * rv + MOMENTUM * var * (n / (n - 1)))
               for (rm, rv), (mean, var) in zip(running, stats)]
    return params, (m, v, t), running, key, loss


def _jax_eval(params, running, x):
    import jax

    h = x
    for (w, b, gamma, beta), (mean, var) in zip(params["hidden"], running):
        h = jax.nn.relu((h @ w + b - mean) * jax.lax.rsqrt(var + BN_EPS) * gamma + beta)
    w_out, b_out = params["out"]
    return h @ w_out + b_out
