"""The course's worked examples (DESIGN.md section 5) through the public nncore API.

The slides mix logarithm bases (natural log for the negative log-likelihoods, base 10 for the
cross-entropies, base 2 for the entropies: a loss in nats is divided by ln(b) for base b) and show values
truncated, or in places rounded, to the digits printed. So each value is checked at the slide's precision:
the exact result, truncated or rounded to the shown number of decimals, must give the shown number. Two
cross-entropies on the slides were worked out from the probabilities as printed (three decimals) rather
than the exact softmax; those are checked both ways.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nncore import CrossEntropyLoss, NLLLoss
from nncore import functional as F


def assert_as_shown(value, shown, decimals):
    """``value`` truncated or rounded to ``decimals`` places is the ``shown`` number."""
    scale = 10**decimals
    truncated = math.floor(value * scale + 1e-9) / scale
    rounded = round(value * scale) / scale
    assert math.isclose(truncated, shown) or math.isclose(rounded, shown), \
        f"{value!r} is shown as {shown} with {decimals} decimals: truncated {truncated}, rounded {rounded}"


def test_the_check_itself_is_strict():
    assert_as_shown(0.00484, 0.004, 3)  # truncated
    assert_as_shown(0.14393, 0.144, 3)  # rounded
    with pytest.raises(AssertionError):
        assert_as_shown(0.5782, 0.579, 3)
    with pytest.raises(AssertionError):
        assert_as_shown(0.0048, 0.006, 3)


def test_softmax_of_1_2_5_6():
    p = F.softmax(np.array([1.0, 2.0, 5.0, 6.0]))
    for value, shown in zip(p, [0.004, 0.013, 0.264, 0.717]):
        assert_as_shown(float(value), shown, 3)


@pytest.mark.parametrize("logits,shown", [
    ([1.0, 2.0, 0.5, 6.0], [5.02, 5.52, 0.02]),
    ([1.0, 2.0, 5.0, 6.0], [5.33, 1.33, 0.33]),
])
def test_negative_log_likelihood_of_classes_1_3_4_in_nats(logits, shown):
    x = np.tile(np.array(logits), (3, 1))
    classes = np.array([1, 3, 4]) - 1  # the slides count classes from 1
    per_row = CrossEntropyLoss(reduction="none")(x, classes)
    via_nll = NLLLoss(reduction="none")(F.log_softmax(x), classes)
    via_functional = F.cross_entropy(x, classes, reduction="none")
    for values in (per_row, via_nll, via_functional):
        for value, s in zip(values, shown):
            assert_as_shown(float(value), s, 2)


def test_cross_entropy_in_base_10_with_soft_and_one_hot_targets():
    logits = np.array([[1.0, 2.0, 5.0, 6.0]])
    soft = np.array([[0.0, 0.25, 0.0, 0.75]])
    ln10 = math.log(10)
    # with the exact softmax the soft-target value is 0.5782, within one unit of the slide's last digit
    # (its 0.579 comes from the printed probabilities, below)
    e = [math.exp(v) for v in logits[0]]
    exact = -(0.25 * math.log10(e[1] / sum(e)) + 0.75 * math.log10(e[3] / sum(e)))
    soft_exact = CrossEntropyLoss()(logits, soft) / ln10
    assert soft_exact == pytest.approx(exact, rel=1e-12)
    assert abs(soft_exact - 0.579) < 1e-3
    assert float(F.cross_entropy(logits, soft)) / ln10 == pytest.approx(exact, rel=1e-12)
    one_hot = CrossEntropyLoss()(logits, np.array([3])) / ln10
    assert_as_shown(one_hot, 0.144, 3)
    assert_as_shown(CrossEntropyLoss()(logits, np.eye(4)[[3]]) / ln10, 0.144, 3)
    # the slide's arithmetic, from the probabilities as printed: -sum_c t_c log10(p_c) is an NLL sum whose
    # class weights are the soft target
    printed = np.log(np.array([[0.004, 0.013, 0.264, 0.717]] * 2))
    from_printed = NLLLoss(weight=soft[0], reduction="sum")(printed, np.array([1, 3])) / ln10
    assert_as_shown(from_printed, 0.579, 3)
    assert_as_shown(NLLLoss()(printed[:1], np.array([3])) / ln10, 0.144, 3)


@pytest.mark.parametrize("p,shown,decimals", [(0.775, 0.3677, 4), (0.936, 0.095, 3)])
def test_minus_log2_of_a_probability(p, shown, decimals):
    logp = np.log(np.array([[p, 1.0 - p]]))
    assert_as_shown(NLLLoss()(logp, np.array([0])) / math.log(2), shown, decimals)


def test_entropy_of_the_three_containers_in_bits():
    containers = np.array([[26, 4], [14, 16], [1, 29]]) / 30
    shown = [0.5665, 0.9968, 0.2108]
    for p, s in zip(containers, shown):
        h = F.entropy(p, base=2)
        assert type(h) is float
        assert_as_shown(h, s, 4)
    batch = F.entropy(containers, base=2)
    assert batch.shape == (3,)
    for h, s in zip(batch, shown):
        assert_as_shown(float(h), s, 4)
    # the same along axis 0, and in nats (the default base): bits * ln 2
    assert np.allclose(F.entropy(containers.T, base=2, axis=0), batch, rtol=1e-15, atol=0)
    assert np.allclose(F.entropy(containers), batch * math.log(2), rtol=1e-14, atol=0)


def test_entropy_special_cases():
    assert F.entropy([0.25] * 4, base=2) == pytest.approx(2.0, rel=1e-15)
    assert F.entropy([0.5, 0.5], base=2) == pytest.approx(1.0, rel=1e-15)
    assert F.entropy([0.0, 1.0, 0.0], base=2) == 0.0  # 0 log 0 = 0, not NaN
    assert F.entropy([0.1] * 10, base=10) == pytest.approx(1.0, rel=1e-14)
    assert F.entropy([0.25] * 4, base=np.int64(2)) == pytest.approx(2.0, rel=1e-15)  # a NumPy integer base


@pytest.mark.parametrize("p,base,match", [
    ([0.5, 0.5], 1, "base must be a positive number other than 1, got 1"),
    ([0.5, 0.5], 0, "base must be a positive number other than 1, got 0"),
    ([0.5, 0.5], -2.0, r"base must be a positive number other than 1, got -2\.0"),
    ([0.5, 0.5], "2", "base must be a positive number other than 1, got '2'"),
    (0.5, 2, "entropy needs a probability vector, got a scalar"),
    ([1.2, -0.2], 2, "probabilities must be finite and non-negative"),
    ([np.nan, 1.0], 2, "probabilities must be finite and non-negative"),
    ([0.5, 0.6], 2, "probabilities must sum to 1 along axis -1"),
    ([[0.5, 0.5], [0.3, 0.3]], 2, "probabilities must sum to 1 along axis -1"),
])
def test_entropy_errors(p, base, match):
    with pytest.raises(ValueError, match=match):
        F.entropy(p, base=base)


def test_toy_network_gradients_by_chain_rule_and_finite_differences():
    """z = w2^2 (2 x w1 + w0), L = y - z, at w = (w0, w1, w2) = (1, 3, 2), x = 1, y = 38."""
    x, y = 1.0, 38.0

    def loss(w0, w1, w2):
        return y - w2**2 * (2 * x * w1 + w0)

    w = (1.0, 3.0, 2.0)
    w0, w1, w2 = w
    # forward, keeping the intermediate values
    u = 2 * x * w1 + w0  # 7
    s = w2**2  # 4
    z = s * u  # 28
    L = y - z
    assert (u, s, z, L) == (7.0, 4.0, 28.0, 10.0)
    # backward: dL/dz = -1, then through z = s u and on to the weights
    dz = -1.0
    du, ds = dz * s, dz * u
    grad = (du * 1.0, du * 2 * x, ds * 2 * w2)
    assert grad == (-4.0, -8.0, -28.0)
    h = 1e-6
    for i in range(3):
        plus = list(w)
        minus = list(w)
        plus[i] += h
        minus[i] -= h
        fd = (loss(*plus) - loss(*minus)) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-8)
