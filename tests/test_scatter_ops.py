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


# ------------------------------------------------------------------ scatter_reduce


def np_scatter_reduce(a, dim, index, src, reduce, include_self):
    """PyTorch's documented rule, element by element: gather every contributor of each target
    (self's value when include_self, then the src values in order) and reduce them."""
    groups = {pos: ([a[pos]] if include_self else []) for pos in np.ndindex(a.shape)}
    for pos in np.ndindex(index.shape):
        tgt = list(pos)
        tgt[dim] = index[pos]
        groups[tuple(tgt)].append(src[pos])
    out = a.copy()
    for pos, vals in groups.items():
        if not vals:  # include_self=False and nothing lands: self's value stays
            continue
        if reduce == "sum":
            out[pos] = sum(vals[1:], vals[0])
        elif reduce == "prod":
            r = vals[0]
            for v in vals[1:]:
                r = r * v
            out[pos] = r
        elif reduce == "mean":
            total = sum(vals[1:], vals[0])
            out[pos] = total / len(vals) if a.dtype.kind == "f" else total // len(vals)
        elif reduce == "amax":
            out[pos] = max(vals)
        else:
            out[pos] = min(vals)
    return out


REDUCES = ["sum", "prod", "mean", "amax", "amin"]


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_reduce_matches_the_rule(reduce, include_self, dim):
    rng = np.random.default_rng(10)
    a = rng.standard_normal((4, 5))
    src = rng.standard_normal((6, 5)) if dim == 0 else rng.standard_normal((4, 7))
    ishape = (5, 4) if dim == 0 else (3, 6)  # smaller than src: its leading block is used
    index = rng.integers(0, a.shape[dim], size=ishape)
    got = bp.tensor(a).scatter_reduce(dim, bp.tensor(index), bp.tensor(src), reduce, include_self=include_self)
    want = np_scatter_reduce(a, dim, index, src, reduce, include_self)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-15)
    same = bp.scatter_reduce(bp.tensor(a), dim, bp.tensor(index), bp.tensor(src), reduce, include_self=include_self)
    np.testing.assert_array_equal(same.numpy(), got.numpy())
    t = bp.tensor(a)
    assert t.scatter_reduce_(dim, bp.tensor(index), bp.tensor(src), reduce, include_self=include_self) is t
    np.testing.assert_array_equal(t.numpy(), got.numpy())


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_reduce_integers(reduce, include_self):
    rng = np.random.default_rng(11)
    a = rng.integers(-9, 10, size=(3, 4))
    src = rng.integers(-9, 10, size=(5, 4))
    index = rng.integers(0, 3, size=(5, 4))
    got = bp.tensor(a).scatter_reduce(0, bp.tensor(index), bp.tensor(src), reduce, include_self=include_self)
    assert got.dtype == bp.int64
    np.testing.assert_array_equal(got.numpy(), np_scatter_reduce(a, 0, index, src, reduce, include_self))


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", REDUCES)
def test_scatter_reduce_gradients(reduce, include_self):
    rng = np.random.default_rng(12)
    # distinct values (no ties) and away from zero, where every rule is smooth
    a = bp.tensor(rng.permutation(12).reshape(3, 4) * 0.25 + 0.5, dtype=bp.float64, requires_grad=True)
    s = bp.tensor(rng.permutation(20).reshape(5, 4) * 0.3 + 0.6, dtype=bp.float64, requires_grad=True)
    idx = bp.tensor(rng.integers(0, 2, size=(5, 4)))  # row 2 of self gets nothing
    assert bp.autograd.gradcheck(
        lambda x, y: x.scatter_reduce(0, idx, y, reduce, include_self=include_self), (a, s))


def test_scatter_reduce_extremum_gradient_is_split_among_ties():
    a = bp.tensor([[2.0, 0.0]], dtype=bp.float64, requires_grad=True)
    s = bp.tensor([[2.0, 1.0], [2.0, 1.0], [1.0, 0.5]], dtype=bp.float64, requires_grad=True)
    idx = bp.zeros(3, 2, dtype=bp.int64)
    out = a.scatter_reduce(0, idx, s, "amax")
    out.backward(bp.tensor([[6.0, 4.0]], dtype=bp.float64))
    # column 0: self and two src rows share the max 2 -> 2 each; column 1: two src rows tie at 1
    np.testing.assert_array_equal(a.grad.numpy(), [[2.0, 0.0]])
    np.testing.assert_array_equal(s.grad.numpy(), [[2.0, 2.0], [2.0, 2.0], [0.0, 0.0]])
    a.grad = None
    s.grad = None
    a.scatter_reduce(0, idx, s, "amax", include_self=False).backward(bp.tensor([[6.0, 4.0]], dtype=bp.float64))
    np.testing.assert_array_equal(a.grad.numpy(), [[0.0, 0.0]])  # self takes no part
    np.testing.assert_array_equal(s.grad.numpy(), [[3.0, 2.0], [3.0, 2.0], [0.0, 0.0]])


def test_scatter_reduce_prod_gradient_with_zeros():
    # one zero in a group: only the zero gets a gradient (the product of the others); two: none
    a = bp.tensor([[3.0, 2.0, 5.0]], dtype=bp.float64, requires_grad=True)
    s = bp.tensor([[0.0, 0.0, 4.0], [2.0, 0.0, 0.5]], dtype=bp.float64, requires_grad=True)
    idx = bp.zeros(2, 3, dtype=bp.int64)
    a.scatter_reduce(0, idx, s, "prod").sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [[0.0, 0.0, 2.0]])
    np.testing.assert_allclose(s.grad.numpy(), [[6.0, 0.0, 2.5], [0.0, 0.0, 20.0]])


@pytest.mark.parametrize("call", [
    lambda: bp.zeros(3).scatter_reduce(0, bp.tensor([0]), bp.ones(1), "max"),  # not a reduce name
    lambda: bp.zeros(3).scatter_reduce(0, bp.tensor([0]), bp.ones(1, dtype=bp.float64), "sum"),  # dtypes
    lambda: bp.zeros(3).scatter_reduce(0, bp.tensor([3]), bp.ones(1), "amax"),  # out of range
    lambda: bp.zeros(3).scatter_reduce(0, bp.tensor([0.0]), bp.ones(1), "sum"),  # float index
])
def test_scatter_reduce_refuses_what_pytorch_refuses(call):
    with pytest.raises((RuntimeError, IndexError)):
        call()


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("transposed_index", [False, True])
def test_large_scatter_add_and_gather_match_numpy_in_index_order(dim, transposed_index):
    """Large enough for the kernels' parallel paths (blocks of the leading dims on two threads),
    with an index smaller than the tensor in every dim, many repeated targets and a strided
    source: float32 sums must equal NumPy's unbuffered np.add.at bit for bit, since each element
    takes its contributions in index order whatever the split."""
    rng = np.random.default_rng(11 + dim)
    base = rng.standard_normal((7, 50, 310)).astype(np.float32)
    ishape = (6, 40, 300)
    size = base.shape[dim]
    if transposed_index:  # a non-contiguous index view
        index_np = rng.integers(0, size, ishape[::-1]).transpose(2, 1, 0)
        index = bp.tensor(np.ascontiguousarray(index_np.transpose(2, 1, 0))).permute(2, 1, 0)
    else:
        index_np = rng.integers(0, size, ishape)
        index = bp.tensor(index_np)
    src_full = rng.standard_normal((6, 41, 600)).astype(np.float32)
    src_np = src_full[:, :40, ::2]  # strided, and larger than the index
    src = bp.tensor(src_full)[:, :40, ::2]
    grid = list(np.ix_(*[np.arange(n) for n in ishape]))
    grid[dim] = index_np
    want = base.copy()
    np.add.at(want, tuple(grid), src_np[:, :, :300])
    got = bp.tensor(base).scatter_add(dim, index, src[:, :, :300]).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bp.tensor(base).gather(dim, index).numpy(), base[tuple(grid)])


@pytest.mark.parametrize("bad", [50, -1])
def test_large_index_out_of_range_is_named(bad):
    index = np.zeros((6, 40, 300), np.int64)
    index[5, 39, 299] = bad  # the last one, after a clean vectorised scan of the rest
    t = bp.zeros((7, 50, 310))
    for call in (lambda: t.gather(1, bp.tensor(index)), lambda: t.scatter_add(1, bp.tensor(index), bp.ones(6, 40, 300))):
        with pytest.raises(IndexError, match=str(bad)):
            call()
