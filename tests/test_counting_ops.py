"""unique / unique_consecutive / mode / bincount / histc / count_nonzero against references written
in plain Python (sets, Counter, groupby, loops) from PyTorch's documented semantics; mode's
gradient against finite differences."""

import collections
import itertools

import numpy as np
import pytest

import backprop_rs as bp


def ref_unique(flat):
    vals = sorted(set(flat))
    where = {v: k for k, v in enumerate(vals)}
    counts = collections.Counter(flat)
    return vals, [where[v] for v in flat], [counts[v] for v in vals]


@pytest.mark.parametrize("dtype", [bp.float32, bp.float64, bp.int64, bp.bool])
def test_unique_flat_matches_a_set(dtype):
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, size=(4, 5))
    t = bp.tensor(a).to(dtype)
    flat = t.numpy().reshape(-1).tolist()
    vals, inv, cnt = ref_unique(flat)
    out = bp.unique(t)
    assert isinstance(out, bp.Tensor) and out.dtype == dtype and out.numpy().tolist() == vals
    out, inverse, counts = t.unique(return_inverse=True, return_counts=True)
    assert inverse.dtype == bp.int64 and counts.dtype == bp.int64
    assert tuple(inverse.shape) == (4, 5)
    assert inverse.numpy().reshape(-1).tolist() == inv and counts.numpy().tolist() == cnt
    # the tuple holds what was asked for, in PyTorch's order
    only_inv = bp.unique(t, return_inverse=True)
    assert isinstance(only_inv, tuple) and len(only_inv) == 2 and only_inv[1].shape == (4, 5)
    only_cnt = bp.unique(t, sorted=False, return_counts=True)
    assert len(only_cnt) == 2 and only_cnt[1].numpy().tolist() == cnt
    # the output rebuilds the input
    np.testing.assert_array_equal(out.numpy()[inverse.numpy()], t.numpy())


def test_unique_dim_takes_distinct_slices_in_lexicographic_order():
    a = np.array([[1, 0, 2], [0, 5, 1], [1, 0, 2], [0, 5, 0], [0, 5, 1]])
    rows = [tuple(r) for r in a.tolist()]
    want = sorted(set(rows))
    out, inv, cnt = bp.unique(bp.tensor(a), dim=0, return_inverse=True, return_counts=True)
    assert [tuple(r) for r in out.numpy().tolist()] == want
    assert inv.numpy().tolist() == [want.index(r) for r in rows] and tuple(inv.shape) == (5,)
    assert cnt.numpy().tolist() == [rows.count(r) for r in want]
    # along dim 1: the distinct columns
    cols = bp.unique(bp.tensor(a.T.copy()), dim=1)
    assert [tuple(c) for c in cols.numpy().T.tolist()] == want
    with pytest.raises(IndexError):
        bp.unique(bp.tensor(a), dim=2)


def test_unique_has_no_gradient_and_keeps_nans_apart():
    x = bp.tensor([2.0, 1.0, 2.0], requires_grad=True)
    assert not x.unique().requires_grad
    nan = bp.tensor([float("nan"), 1.0, float("nan")])
    assert bp.unique(nan).shape == (3,)  # each NaN is distinct, as in PyTorch
    e, ei, ec = bp.unique(bp.zeros(0), return_inverse=True, return_counts=True)
    assert e.shape == (0,) and ei.shape == (0,) and ec.shape == (0,)


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_consecutive_matches_groupby(dim):
    a = np.array([[1, 1, 2], [1, 1, 2], [3, 1, 2], [1, 1, 2], [1, 1, 2]])
    t = bp.tensor(a)
    out, inv, cnt = bp.unique_consecutive(t, return_inverse=True, return_counts=True, dim=dim)
    if dim is None:
        items = a.reshape(-1).tolist()
    else:
        items = [tuple(s) for s in np.moveaxis(a, dim, 0).reshape(a.shape[dim], -1).tolist()]
    groups = [(k, len(list(g))) for k, g in itertools.groupby(items)]
    want_inv = [i for i, (_, n) in enumerate(groups) for _ in range(n)]
    assert cnt.numpy().tolist() == [n for _, n in groups]
    if dim is None:
        assert out.numpy().tolist() == [k for k, _ in groups]
        assert inv.numpy().reshape(-1).tolist() == want_inv and tuple(inv.shape) == a.shape
    else:
        got = np.moveaxis(out.numpy(), dim, 0).reshape(len(groups), -1)
        assert [tuple(r) for r in got.tolist()] == [k for k, _ in groups]
        assert inv.numpy().tolist() == want_inv
    assert isinstance(t.unique_consecutive(), bp.Tensor)


def ref_mode(row):
    c = collections.Counter(row)
    top = max(c.values())
    v = min(k for k, n in c.items() if n == top)
    return v, max(i for i, x in enumerate(row) if x == v)


@pytest.mark.parametrize("dim,keepdim", [(-1, False), (0, True), (1, False)])
def test_mode_matches_counter(dim, keepdim):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(6, 7)).astype(np.float64)
    res = bp.mode(bp.tensor(a), dim, keepdim)
    assert type(res) is type(bp.tensor(a).sort())  # the one (values, indices) namedtuple
    vals, idx = res
    assert res.values is vals and res.indices is idx and idx.dtype == bp.int64
    moved = np.moveaxis(a, dim, -1)
    want = [ref_mode(r) for r in moved.reshape(-1, moved.shape[-1]).tolist()]
    shape = moved.shape[:-1]
    wv = np.array([w[0] for w in want]).reshape(shape)
    wi = np.array([w[1] for w in want]).reshape(shape)
    if keepdim:
        wv, wi = np.expand_dims(wv, dim), np.expand_dims(wi, dim)
    np.testing.assert_array_equal(vals.numpy(), wv)
    np.testing.assert_array_equal(idx.numpy(), wi)
    assert bp.tensor(a).mode(dim, keepdim).values.shape == vals.shape


def test_mode_ties_take_the_smallest_value_and_gradient_flows_to_it():
    v, i = bp.tensor([3, 1, 3, 1, 2]).mode()
    assert v.item() == 1 and i.item() == 3
    x = bp.tensor(np.array([[0.5, 0.25, 0.5, 0.75], [1.0, 1.0, 2.0, 2.0]]), requires_grad=True)
    out = x.mode(1)
    out.values.backward(bp.tensor([2.0, 3.0], dtype=bp.float64))
    want = np.zeros((2, 4))
    want[0, 2], want[1, 1] = 2.0, 3.0
    np.testing.assert_array_equal(x.grad.numpy(), want)
    s = bp.tensor(5.0).mode()
    assert s.values.item() == 5.0 and s.indices.item() == 0
    with pytest.raises(IndexError):
        bp.zeros(2, 0).mode(1)


def test_bincount_matches_numpy():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 6, size=20)
    w = rng.standard_normal(20)
    got = bp.bincount(bp.tensor(a))
    assert got.dtype == bp.int64
    np.testing.assert_array_equal(got.numpy(), np.bincount(a))
    np.testing.assert_array_equal(bp.tensor(a).bincount(minlength=10).numpy(), np.bincount(a, minlength=10))
    wt = bp.tensor(w, requires_grad=True)
    got = bp.bincount(bp.tensor(a), wt)
    assert got.dtype == bp.float64
    np.testing.assert_allclose(got.detach().numpy(), np.bincount(a, w), rtol=1e-12)
    assert bp.bincount(bp.tensor(a), bp.tensor(w, dtype=bp.float32)).dtype == bp.float32
    assert bp.bincount(bp.tensor(a), bp.tensor(a)).dtype == bp.float64  # integer weights: float64
    got.backward(bp.arange(6).double())
    np.testing.assert_array_equal(wt.grad.numpy(), a.astype(np.float64))  # d out[a[i]] / d w[i] = 1
    assert bp.bincount(bp.zeros(0, dtype=bp.int64)).shape == (0,)
    for bad in (lambda: bp.bincount(bp.tensor([-1, 2])), lambda: bp.bincount(bp.tensor([[1]])),
                lambda: bp.bincount(bp.tensor([1.0])), lambda: bp.bincount(bp.tensor([1]), bp.ones(2))):
        with pytest.raises(RuntimeError):
            bad()


def ref_histc(a, bins, lo, hi):
    if lo == hi:
        lo, hi = min(a), max(a)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    out = [0] * bins
    for x in a:
        if lo <= x <= hi:
            out[min(int((x - lo) * bins / (hi - lo)), bins - 1)] += 1
    return out


@pytest.mark.parametrize("bins,lo,hi", [(7, 0, 0), (5, -1.0, 1.0), (4, 0.3, 0.3)])
def test_histc_matches_a_loop(bins, lo, hi):
    rng = np.random.default_rng(3)
    a = rng.uniform(-1.5, 1.5, size=50).round(3)
    a[:3] = [-1.0, 1.0, 0.0]  # the ends of the range count (the top one in the last bin)
    got = bp.histc(bp.tensor(a), bins=bins, min=lo, max=hi)
    assert got.dtype == bp.float64
    np.testing.assert_array_equal(got.numpy(), ref_histc(a.tolist(), bins, lo, hi))
    assert bp.tensor([2.0, 2.0]).histc(4).numpy().tolist() == [0.0, 0.0, 2.0, 0.0]  # constant: widened by 1
    assert bp.tensor(a, dtype=bp.float32).histc(3, -1, 1).dtype == bp.float32
    with pytest.raises(RuntimeError):
        bp.histc(bp.tensor(a), 3, 1.0, -1.0)
    with pytest.raises(RuntimeError):
        bp.histc(bp.tensor([1, 2]))


def test_count_nonzero():
    a = np.array([[0, 1, 2], [0, 0, 3.5]])
    t = bp.tensor(a)
    assert bp.count_nonzero(t).item() == 3 and bp.count_nonzero(t).dtype == bp.int64
    np.testing.assert_array_equal(t.count_nonzero(0).numpy(), np.count_nonzero(a, axis=0))
    np.testing.assert_array_equal(bp.count_nonzero(t, dim=(0, 1)).numpy(), 3)
    with pytest.raises(RuntimeError):
        bp.count_nonzero(t, (1, -1))


def test_gpu_tensors_round_trip_and_match_the_cpu():
    from conftest import gpu_or_skip

    gpu_or_skip()
    a = np.array([[1.0, 5.0, 2.0, 5.0], [3.0, 3.0, 0.0, 1.0]], np.float32)
    c, g = bp.tensor(a), bp.tensor(a).to("gpu")
    for f in (lambda t: t.unique(return_inverse=True, return_counts=True), lambda t: t.unique(dim=1),
              lambda t: t.unique_consecutive(return_counts=True, dim=1), lambda t: t.mode(1),
              lambda t: t.cummax(1), lambda t: (t.histc(4),), lambda t: (bp.count_nonzero(t, 1),),
              lambda t: (t.scatter_reduce(0, bp.tensor([[1, 0, 1, 0]]).to(t.device), t[:1] * 2, "amax"),)):
        for x, y in zip(f(c), f(g)):
            assert y.device.type == "gpu"
            np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())
