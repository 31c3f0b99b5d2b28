"""Tensor.scatter / scatter_ / index_put / index_put_ against NumPy loops written from PyTorch's
documented formulas, their gradients through gradcheck, and their argument checks."""

import numpy as np
import pytest

import backprop_rs as bp


def np_scatter(a, dim, index, src):
    out = a.copy()
    for pos in np.ndindex(index.shape):
        tgt = list(pos)
        tgt[dim] = index[pos]
        out[tuple(tgt)] = src[pos] if isinstance(src, np.ndarray) else src
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_matches_the_formula(dim):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5))
    d = dim % 2
    ishape = (3, 4)
    # distinct targets per line so that "which write wins" does not matter
    index = np.stack([rng.permutation(a.shape[d])[: ishape[d]] for _ in range(ishape[1 - d])], axis=1 - d)
    src = rng.standard_normal((4, 5))  # larger than index: only its leading block is used
    want = np_scatter(a, d, index, src)
    got = bp.tensor(a).scatter(dim, bp.tensor(index), bp.tensor(src)).numpy()
    np.testing.assert_array_equal(got, want)
    t = bp.tensor(a)
    assert t.scatter_(dim, bp.tensor(index), 2.5) is t
    np.testing.assert_array_equal(t.numpy(), np_scatter(a, d, index, 2.5))
    added = bp.tensor(a).scatter(dim, bp.tensor(index), bp.tensor(src), reduce="add").numpy()
    want_add = a.copy()
    for pos in np.ndindex(index.shape):
        tgt = list(pos)
        tgt[d] = index[pos]
        want_add[tuple(tgt)] += src[pos]
    np.testing.assert_allclose(added, want_add, rtol=1e-12)


def test_scatter_gradients():
    rng = np.random.default_rng(4)
    a = bp.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    s = bp.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    idx = bp.tensor([[0, 1, 2, 0], [2, 0, 1, 1]])
    assert bp.autograd.gradcheck(lambda x, y: x.scatter(0, idx, y), (a, s))
    # the overwritten positions of self get no gradient; src gets the output's gradient
    out = a.scatter(0, idx, s)
    out.backward(bp.ones(3, 4))
    g = a.grad.numpy()
    hit = np.zeros((3, 4), bool)
    for (i, j), r in np.ndenumerate(idx.numpy()):
        hit[r, j] = True
    np.testing.assert_array_equal(g, np.where(hit, 0.0, 1.0))
    np.testing.assert_array_equal(s.grad.numpy(), np.ones((2, 4)))


def test_index_put_accumulates_repeated_positions():
    t = bp.zeros(3, 4, dtype=bp.float64)
    rows, cols = bp.tensor([0, 0, 2, 0]), bp.tensor([1, 1, 3, 1])
    vals = bp.tensor([1.0, 2.0, 3.0, 4.0], dtype=bp.float64)
    assert t.index_put_((rows, cols), vals, accumulate=True) is t
    want = np.zeros((3, 4))
    np.add.at(want, (rows.numpy(), cols.numpy()), vals.numpy())
    np.testing.assert_array_equal(t.numpy(), want)
    # without accumulate: an assignment, and the out-of-place form leaves self alone
    base = bp.zeros(3, 4)
    out = base.index_put((bp.tensor([1, 2]),), bp.tensor(5.0))
    assert base.numpy().sum() == 0 and out.numpy()[1:].tolist() == [[5.0] * 4] * 2
    assert bp.index_put(base, (bp.tensor([0]), bp.tensor([0])), bp.tensor(1.0)).numpy()[0, 0] == 1.0


@pytest.mark.parametrize("call", [
    lambda: bp.zeros(3, 4).scatter(0, bp.tensor([[0.0]]), bp.ones(1, 1)),  # float index
    lambda: bp.zeros(3, 4).scatter(0, bp.tensor([[3]]), bp.ones(1, 1)),  # out of range
    lambda: bp.zeros(3, 4).scatter(0, bp.tensor([0]), bp.ones(1)),  # rank mismatch
    lambda: bp.zeros(3, 4).scatter(2, bp.tensor([[0]]), bp.ones(1, 1)),  # bad dim
    lambda: bp.zeros(3, 4).scatter(0, bp.tensor([[0, 1, 2, 0, 1]]), bp.ones(1, 5)),  # index wider than self
    lambda: bp.zeros(3, 4).scatter(0, bp.tensor([[0, 1]]), bp.ones(1, 1)),  # src smaller than index
])
def test_scatter_refuses_what_pytorch_refuses(call):
    with pytest.raises((RuntimeError, IndexError)):
        call()
