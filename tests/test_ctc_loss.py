"""F.ctc_loss / nn.CTCLoss against a brute-force reference: the probability of a label sequence
is the sum, over every frame-wise path that collapses to it (merge repeats, drop blanks), of the
path's probability; plus f64 gradchecks and PyTorch's conventions for reductions, impossible
alignments and target formats."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import backprop_rs as bp

F = bp.nn.functional


def _collapse(path, blank):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def _brute_nll(logp: np.ndarray, target, blank: int) -> float:
    # logp: [T, C] log-probabilities of one sample (its first input_length frames)
    t_len, c = logp.shape
    total = 0.0
    for path in itertools.product(range(c), repeat=t_len):
        if _collapse(path, blank) == list(target):
            total += math.exp(sum(logp[t, k] for t, k in enumerate(path)))
    return math.inf if total == 0 else -math.log(total)


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("blank", [0, 2])
def test_ctc_matches_the_sum_over_alignments(blank):
    rng = np.random.default_rng(blank)
    t_max, n, c = 5, 4, 3
    logp = _log_softmax(rng.normal(size=(t_max, n, c)), 2)
    labels = [k for k in range(c) if k != blank]
    targets = np.full((n, 3), labels[0])
    targets[0, :3] = [labels[0], labels[1], labels[0]]
    targets[1, :2] = [labels[1], labels[1]]  # a repeat: needs a blank between
    targets[3, :1] = [labels[1]]
    in_len, tg_len = [5, 4, 3, 2], [3, 2, 0, 1]
    want = np.array([_brute_nll(logp[:in_len[i], i], targets[i, :tg_len[i]], blank) for i in range(n)])
    for dtype, tol in [(bp.float64, 1e-10), (bp.float32, 2e-5)]:
        got = F.ctc_loss(bp.tensor(logp, dtype=dtype), bp.tensor(targets), in_len, tg_len, blank=blank,
                         reduction="none")
        np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)
    mean = F.ctc_loss(bp.tensor(logp), bp.tensor(targets), bp.tensor(in_len), bp.tensor(tg_len), blank=blank)
    np.testing.assert_allclose(mean.item(), np.mean(want / np.maximum(tg_len, 1)), rtol=1e-10)
    total = F.ctc_loss(bp.tensor(logp), bp.tensor(targets), in_len, tg_len, blank=blank, reduction="sum")
    np.testing.assert_allclose(total.item(), want.sum(), rtol=1e-10)


def test_ctc_impossible_alignments_are_inf_or_zero():
    rng = np.random.default_rng(1)
    logp = _log_softmax(rng.normal(size=(4, 3, 4)), 2)
    targets = np.array([[2, 2, 0], [1, 3, 1], [3, 0, 0]])
    in_len, tg_len = [2, 1, 4], [2, 3, 1]  # [2, 2] needs 3 frames; three labels need 3
    got = F.ctc_loss(bp.tensor(logp), bp.tensor(targets), in_len, tg_len, reduction="none").numpy()
    assert np.isinf(got[:2]).all() and np.isfinite(got[2])
    x = bp.tensor(logp, requires_grad=True)
    z = F.ctc_loss(x, bp.tensor(targets), in_len, tg_len, reduction="none", zero_infinity=True)
    np.testing.assert_allclose(z.detach().numpy()[:2], 0.0)
    np.testing.assert_allclose(z.detach().numpy()[2], got[2], rtol=1e-12)
    z.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all() and not g[:, :2].any() and g[:, 2].any()


def test_ctc_flat_targets_unbatched_and_the_module():
    rng = np.random.default_rng(4)
    logp = _log_softmax(rng.normal(size=(5, 2, 4)), 2)
    targets = np.array([[1, 2, 3], [3, 1, 0]])
    flat = np.array([1, 2, 3, 3, 1])
    a = F.ctc_loss(bp.tensor(logp), bp.tensor(targets), [5, 4], [3, 2], reduction="none").numpy()
    b = F.ctc_loss(bp.tensor(logp), bp.tensor(flat), [5, 4], [3, 2], reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)
    one = F.ctc_loss(bp.tensor(logp[:, 1]), bp.tensor([3, 1]), [4], [2], reduction="none")
    assert one.shape == ()
    np.testing.assert_allclose(one.item(), a[1], rtol=1e-12)
    mod = bp.nn.CTCLoss(reduction="sum")
    np.testing.assert_allclose(mod(bp.tensor(logp), bp.tensor(targets), [5, 4], [3, 2]).item(), a.sum(), rtol=1e-12)


def test_ctc_gradcheck():
    rng = np.random.default_rng(2)
    logits = bp.tensor(rng.normal(size=(6, 2, 4)), requires_grad=True)
    targets = bp.tensor([[1, 1, 2], [3, 2, 0]])

    def f(z):
        return F.ctc_loss(z.log_softmax(2), targets, [6, 5], [3, 2])

    assert bp.autograd.gradcheck(f, (logits,))
    # and directly in the log-probabilities (the true derivative; see the docstring)
    lp = bp.tensor(_log_softmax(rng.normal(size=(4, 1, 3)), 2), requires_grad=True)
    assert bp.autograd.gradcheck(lambda v: F.ctc_loss(v, bp.tensor([[1, 2]]), [4], [2]), (lp,))


def test_ctc_errors_name_the_problem():
    lp = bp.randn(4, 2, 3).log_softmax(2)
    t = bp.tensor([[1, 2], [2, 1]])
    with pytest.raises(RuntimeError, match="input_lengths"):
        F.ctc_loss(lp, t, [5, 4], [2, 2])
    with pytest.raises(RuntimeError, match="blank"):
        F.ctc_loss(lp, t, [4, 4], [2, 2], blank=3)
    with pytest.raises(RuntimeError, match="label"):
        F.ctc_loss(lp, bp.tensor([[1, 7], [2, 1]]), [4, 4], [2, 2])
    with pytest.raises(ValueError, match="reduction"):
        F.ctc_loss(lp, t, [4, 4], [2, 2], reduction="avg")


def test_ctc_on_the_gpu_matches_the_cpu():
    from conftest import gpu_or_skip

    gpu_or_skip()
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(7, 3, 5)).astype(np.float32)
    targets = np.array([[1, 2, 2], [4, 0, 0], [3, 1, 0]])
    res = []
    for dev in ("cpu", "gpu"):
        z = bp.tensor(logits, device=dev, requires_grad=True)
        loss = F.ctc_loss(z.log_softmax(2), bp.tensor(targets, device=dev), [7, 5, 4], [3, 1, 2], blank=0)
        loss.backward()
        res.append((loss.item(), z.grad.cpu().numpy()))
    np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-5)
    np.testing.assert_allclose(res[1][1], res[0][1], atol=1e-5)
