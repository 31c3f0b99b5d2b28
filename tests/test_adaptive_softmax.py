"""nn.AdaptiveLogSoftmaxWithLoss against an independent NumPy implementation of the adaptive
softmax (full log-probabilities from the same weights), in float64, with gradcheck and
PyTorch's argument and target checks."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp

nn = bp.nn


def _np_log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _np_full_log_prob(m, x):
    """log p(c | x) for every class, from the module's weights, written from the definition."""
    w = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    head = x @ w["head.weight"].T + (w["head.bias"] if "head.bias" in w else 0)
    head_lp = _np_log_softmax(head)
    short = m.cutoffs[0]
    parts = [head_lp[:, :short]]
    for i in range(len(m.cutoffs) - 1):
        z = (x @ w[f"tail.{i}.0.weight"].T) @ w[f"tail.{i}.1.weight"].T
        parts.append(_np_log_softmax(z) + head_lp[:, short + i:short + i + 1])
    return np.concatenate(parts, 1)


@pytest.mark.parametrize("head_bias", [False, True])
def test_forward_log_prob_and_predict_match_the_definition(head_bias):
    bp.manual_seed(0)
    m = nn.AdaptiveLogSoftmaxWithLoss(12, 30, [5, 11, 20], div_value=2.0, head_bias=head_bias).double()
    assert [tuple(p.shape) for p in m.parameters()] == (
        [(8, 12)] + ([(8,)] if head_bias else []) + [(6, 12), (6, 6), (3, 12), (9, 3), (1, 12), (10, 1)])
    x = np.random.default_rng(1).normal(size=(9, 12))
    t = np.array([0, 4, 5, 10, 11, 19, 20, 29, 3])
    full = _np_full_log_prob(m, x)
    np.testing.assert_allclose(np.exp(full).sum(1), 1.0, rtol=1e-12)
    xt = bp.tensor(x, dtype=bp.float64)
    out, loss = m(xt, bp.tensor(t))
    np.testing.assert_allclose(out.detach().numpy(), full[np.arange(9), t], rtol=1e-12)
    assert abs(loss.item() + full[np.arange(9), t].mean()) < 1e-12
    np.testing.assert_allclose(m.log_prob(xt).detach().numpy(), full, rtol=1e-12)
    np.testing.assert_array_equal(m.predict(xt).numpy(), full.argmax(1))
    # unbatched: a 1-D input with a 0-D target
    o1, l1 = m(xt[2], bp.tensor(t[2]))
    assert o1.dim() == 0 and abs(o1.item() - full[2, t[2]]) < 1e-12 and abs(l1.item() + full[2, t[2]]) < 1e-12
    assert m.predict(xt[3]).item() == full[3].argmax()


def test_gradients_by_gradcheck():
    bp.manual_seed(1)
    m = nn.AdaptiveLogSoftmaxWithLoss(6, 10, [3, 6], div_value=1.5).double()
    x = bp.tensor(np.random.default_rng(2).normal(size=(5, 6)), dtype=bp.float64, requires_grad=True)
    t = bp.tensor([0, 3, 7, 9, 2])
    assert bp.autograd.gradcheck(lambda x: m(x, t).output, (x,))
    params = list(m.parameters())
    loss = m(x, t).loss
    grads = bp.autograd.grad(loss, params)
    # the rows of cluster 1 (targets 7 and 9) reach its projection; an unused cluster would get 0
    assert float(grads[-1].abs().sum()) > 0


def test_arguments_and_targets_are_checked():
    with pytest.raises(ValueError, match="cutoffs should be a sequence of unique"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 10, [5, 3])
    with pytest.raises(ValueError, match="cutoffs should be a sequence of unique"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 10, [5, 10])
    with pytest.raises(ValueError, match="length larger than 0"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 10, [])
    m = nn.AdaptiveLogSoftmaxWithLoss(8, 10, [4])
    with pytest.raises(RuntimeError, match=r"Target values should be in \[0, 9\]"):
        m(bp.randn(2, 8), bp.tensor([1, 10]))
    with pytest.raises(RuntimeError, match="same size in the batch dimension"):
        m(bp.randn(3, 8), bp.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        m(bp.randn(2, 8), bp.tensor([[1, 2]]))
