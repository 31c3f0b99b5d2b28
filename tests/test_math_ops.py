"""hypot, the in-place clamp_min_/clamp_max_/frac_/hypot_, cummax/cummin, logcumsumexp, diff, cross
and cdist against NumPy (np.hypot, np.logaddexp.accumulate, np.diff, np.cross) or loops written
from PyTorch's documented semantics, and their gradients through gradcheck."""

import math

import numpy as np
import pytest

import backprop_rs as bp

gradcheck = bp.autograd.gradcheck


def leaf(a):
    return bp.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def test_hypot_matches_numpy_without_overflow():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(bp.hypot(bp.tensor(a), bp.tensor(b)).numpy(), np.hypot(a, b), rtol=1e-15)
    big = np.array([3e200, 1e-300, 0.0, np.inf, 5.0])
    other = np.array([4e200, 1e-300, 0.0, np.nan, -np.inf])
    np.testing.assert_allclose(bp.tensor(big).hypot(bp.tensor(other)).numpy(), np.hypot(big, other), rtol=1e-15)
    f = np.array([3e30, 2e-30], np.float32)  # squares overflow / underflow in float32
    got = bp.tensor(f).hypot(bp.tensor(f)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.hypot(f, f), rtol=1e-6)
    x, y = leaf(a), leaf(b)
    assert gradcheck(lambda p, q: bp.hypot(p, q), (x, y))
    t = bp.tensor(a)
    assert t.hypot_(bp.tensor(b)) is t
    np.testing.assert_allclose(t.numpy(), np.hypot(a, b), rtol=1e-15)
    with pytest.raises(RuntimeError):
        bp.hypot(bp.tensor([1, 2]), bp.tensor([3, 4]))


def test_inplace_clamps_and_frac():
    a = np.array([-2.5, -0.5, 0.25, 1.75, 3.0])
    t = bp.tensor(a)
    assert t.clamp_min_(0.0) is t
    np.testing.assert_array_equal(t.numpy(), np.maximum(a, 0.0))
    t = bp.tensor(a)
    t.clamp_max_(1.0)
    np.testing.assert_array_equal(t.numpy(), np.minimum(a, 1.0))
    t = bp.tensor(a)
    t.frac_()
    np.testing.assert_array_equal(t.numpy(), a - np.trunc(a))
    # on a non-leaf the gradient sees the in-place op
    x = leaf(a)
    y = x * 1.0
    y.clamp_min_(0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (a > 0).astype(float))
    with pytest.raises(RuntimeError):
        leaf(a).clamp_min_(0.0)  # a leaf that requires grad, as in PyTorch


def ref_cum(row, largest):
    vals, idx = [], []
    best, at = None, 0
    for i, x in enumerate(row):
        if best is None or math.isnan(x) or (not math.isnan(best) and (x >= best if largest else x <= best)):
            best, at = x, i
        vals.append(best)
        idx.append(at)
    return vals, idx


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin_match_a_loop(largest, dim):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(5, 6)).astype(np.float64)  # many ties: the later index wins
    a[2, 3] = np.nan
    res = (bp.cummax if largest else bp.cummin)(bp.tensor(a), dim)
    assert type(res) is type(bp.tensor(a).sort()) and res.indices.dtype == bp.int64
    m = np.moveaxis(a, dim, -1)
    want = [ref_cum(r, largest) for r in m.reshape(-1, m.shape[-1]).tolist()]
    wv = np.moveaxis(np.array([w[0] for w in want]).reshape(m.shape), -1, dim)
    wi = np.moveaxis(np.array([w[1] for w in want]).reshape(m.shape), -1, dim)
    np.testing.assert_array_equal(res.values.numpy(), wv)
    np.testing.assert_array_equal(res.indices.numpy(), wi)
    method = bp.tensor(a).cummax(dim) if largest else bp.tensor(a).cummin(dim)
    np.testing.assert_array_equal(method.indices.numpy(), wi)


def test_cummax_gradient_goes_to_the_attaining_positions():
    a = np.array([[0.3, 1.2, -0.5, 2.0, 1.1], [0.1, -0.7, 0.4, -1.0, 0.9]])
    assert gradcheck(lambda x: bp.cummax(x, 1).values, (leaf(a),))
    assert gradcheck(lambda x: x.cummin(0).values, (leaf(a),))
    x = leaf([1.0, 3.0, 2.0, 3.0])
    bp.cummax(x, 0).values.sum().backward()
    # values [1, 3, 3, 3] from positions [0, 1, 1, 3]: the tie at 3 takes over
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 0.0, 1.0])


@pytest.mark.parametrize("dim", [0, 1])
def test_logcumsumexp_matches_numpy(dim):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((7, 9)) * 30
    a[0, 0], a[3, 2] = -1000.0, 800.0  # overflow and tiny terms next to big ones
    got = bp.tensor(a).logcumsumexp(dim).numpy()
    np.testing.assert_allclose(got, np.logaddexp.accumulate(a, axis=dim), rtol=1e-13, atol=1e-13)
    f = bp.logcumsumexp(bp.tensor(a, dtype=bp.float32), dim).numpy()
    np.testing.assert_allclose(f, np.logaddexp.accumulate(a, axis=dim), rtol=1e-5, atol=1e-4)
    inf = bp.tensor([-np.inf, -np.inf, 0.0, np.inf, 1.0]).logcumsumexp(0).numpy()
    np.testing.assert_array_equal(inf, np.logaddexp.accumulate([-np.inf, -np.inf, 0.0, np.inf, 1.0]))
    assert gradcheck(lambda x: bp.logcumsumexp(x, dim), (leaf(rng.standard_normal((4, 5))),))
    with pytest.raises(RuntimeError):
        bp.logcumsumexp(bp.tensor([1, 2]), 0)


@pytest.mark.parametrize("n,dim", [(1, -1), (2, 0), (3, 1), (0, 1)])
def test_diff_matches_numpy(n, dim):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5))
    np.testing.assert_allclose(bp.diff(bp.tensor(a), n, dim).numpy(), np.diff(a, n, axis=dim), rtol=1e-14)
    pre = rng.standard_normal((4, 5))
    pre = np.take(pre, [0], axis=dim)
    got = bp.tensor(a).diff(n, dim, prepend=bp.tensor(pre), append=2.0).numpy()
    np.testing.assert_allclose(got, np.diff(a, n, axis=dim, prepend=pre, append=2.0), rtol=1e-14)
    b = np.array([True, True, False, True])
    np.testing.assert_array_equal(bp.tensor(b).diff().numpy(), np.diff(b))
    assert gradcheck(lambda x: bp.diff(x, 2, dim), (leaf(a),))


def test_cross_matches_numpy():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    np.testing.assert_allclose(bp.cross(bp.tensor(a), bp.tensor(b), dim=1).numpy(), np.cross(a, b), rtol=1e-14)
    np.testing.assert_allclose(bp.linalg.cross(bp.tensor(a), bp.tensor(b)).numpy(), np.cross(a, b), rtol=1e-14)
    c, d = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    # without dim: the first dim of size 3 (here dim 0)
    np.testing.assert_allclose(bp.tensor(c).cross(bp.tensor(d)).numpy(), np.cross(c, d, axis=0), rtol=1e-14)
    assert gradcheck(lambda x, y: bp.cross(x, y, dim=-1), (leaf(a), leaf(b)))
    with pytest.raises(RuntimeError):
        bp.cross(bp.ones(4, 2), bp.ones(4, 2))


def ref_cdist(x, y, p):
    out = np.zeros(x.shape[:-1] + (y.shape[-2],))
    for idx in np.ndindex(out.shape):
        *batch, i, j = idx
        diff = np.abs(x[tuple(batch) + (i,)] - y[tuple(batch) + (j,)])
        if p == 0:
            out[idx] = np.count_nonzero(diff)
        elif p == np.inf:
            out[idx] = diff.max()
        else:
            out[idx] = (diff ** p).sum() ** (1 / p)
    return out


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.0, float("inf")])
def test_cdist_matches_a_loop(p):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3))
    got = bp.cdist(bp.tensor(x), bp.tensor(y), p=p)
    assert tuple(got.shape) == (2, 4, 5)
    np.testing.assert_allclose(got.numpy(), ref_cdist(x, y, p), rtol=1e-12)
    if p in (1.0, 2.0, 3.0):
        assert gradcheck(lambda a, b: bp.cdist(a, b, p), (leaf(x), leaf(y)))


def test_cdist_gradient_is_zero_where_rows_coincide_and_bad_input_raises():
    x = leaf([[0.0, 1.0], [2.0, 2.0]])
    y = bp.tensor([[0.0, 1.0]], dtype=bp.float64)
    bp.cdist(x, y).sum().backward()
    g = x.grad.numpy()
    assert np.all(np.isfinite(g)) and g[0].tolist() == [0.0, 0.0]
    with pytest.raises(RuntimeError):
        bp.cdist(bp.ones(2, 3), bp.ones(2, 4))
    with pytest.raises(RuntimeError):
        bp.cdist(bp.ones(2, 3), bp.ones(2, 3), p=-1)
