"""The second sweep of PyTorch's everyday surface (math_ops.py, stacking.py, promotion queries):
what the op table (test_ops.py: forward vs NumPy in four dtypes, gradcheck, GPU) cannot say —
dtype rules, tuples, errors, in-place forms — each against NumPy or PyTorch's documented rule."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp


def arr(t):
    return t.detach().float().numpy() if t.dtype in (bp.float16, bp.bfloat16) else t.detach().numpy()


def test_prod_dtypes_empty_and_gradient_through_zeros():
    assert bp.prod(bp.tensor([2, 3, 4])).dtype == bp.int64
    assert bp.prod(bp.tensor([True, True])).item() == 1 and bp.prod(bp.tensor([True])).dtype == bp.int64
    assert bp.prod(bp.tensor([1.5, 2.0]), dtype=bp.float64).dtype == bp.float64
    assert bp.prod(bp.zeros(0)).item() == 1.0 and bp.zeros(2, 0).prod(1).tolist() == [1.0, 1.0]
    h = bp.tensor([1.5, 2.5, 3.0]).half()
    assert h.prod().dtype == bp.float16 and h.prod().item() == np.float16(11.25)
    x = bp.tensor([2.0, 0.0, 3.0, 4.0], requires_grad=True)
    x.prod().backward()
    # d/dx_i prod = prod of the others: only the zero's slot is non-zero
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 24.0, 0.0, 0.0])


def test_nan_reductions_and_nanquantile():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [4.0, 5.0, 6.0]])
    t = bp.tensor(x)
    np.testing.assert_array_equal(arr(bp.nansum(t, 1)), np.nansum(x, 1))
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanmean(x, 1)
    np.testing.assert_array_equal(arr(bp.nanmean(t, 1)), want)
    with pytest.warns(RuntimeWarning):
        want_q = np.nanquantile(x, 0.4, axis=1)
    np.testing.assert_allclose(arr(bp.nanquantile(t, 0.4, dim=1)), want_q)
    q = bp.quantile(t, 0.5, dim=1)
    assert np.isnan(arr(q)[0]) and arr(q)[2] == 5.0  # a NaN in the row gives NaN
    qs = bp.tensor([0.1, 0.9], dtype=bp.float64)
    np.testing.assert_allclose(arr(bp.quantile(t[2], qs)), np.quantile(x[2], [0.1, 0.9]))
    assert bp.quantile(bp.randn(4, 5), bp.tensor([0.2, 0.5, 0.7]), dim=1, keepdim=True).shape == (3, 4, 1)
    with pytest.raises(RuntimeError, match="range \\[0, 1\\]"):
        bp.quantile(t, 1.5)
    with pytest.raises(RuntimeError, match="float or double"):
        bp.quantile(bp.tensor([1, 2]), 0.5)
    with pytest.raises(RuntimeError, match="same dtype"):
        bp.quantile(t, bp.tensor([0.5]))
    np.testing.assert_allclose(arr(bp.quantile(t[2], 0.5, interpolation="nearest")), 5.0)


def test_aminmax_var_mean_std_mean():
    x = np.random.default_rng(0).normal(size=(3, 5))
    t = bp.tensor(x)
    mm = bp.aminmax(t, dim=1)
    np.testing.assert_array_equal(arr(mm.min), x.min(1))
    np.testing.assert_array_equal(arr(mm.max), x.max(1))
    lo, hi = t.aminmax()
    assert lo.item() == x.min() and hi.item() == x.max()
    v, m = bp.var_mean(t, 1, correction=0)
    np.testing.assert_allclose(arr(v), x.var(1))
    np.testing.assert_allclose(arr(m), x.mean(1))
    s, m2 = bp.std_mean(t, keepdim=True)
    assert s.shape == (1, 1) and m2.shape == (1, 1)
    np.testing.assert_allclose(s.item(), x.std(ddof=1))


def test_elementwise_queries_against_numpy():
    x = np.array([-2.0, -0.0, 0.0, 1.5, np.inf, -np.inf, np.nan])
    t = bp.tensor(x)
    np.testing.assert_array_equal(bp.signbit(t).numpy()[:6], np.signbit(x)[:6])
    np.testing.assert_array_equal(bp.isposinf(t).numpy(), np.isposinf(x))
    np.testing.assert_array_equal(bp.isneginf(t).numpy(), np.isneginf(x))
    assert bp.isreal(t).all().item()
    y = np.array([1.0, -1.0, -0.0, 0.0, 2.0, -3.0, 1.0])
    np.testing.assert_array_equal(arr(bp.copysign(t, bp.tensor(y))), np.copysign(x, y))
    np.testing.assert_array_equal(arr(bp.heaviside(t, bp.tensor(0.5, dtype=bp.float64)))[:6],
                                  np.heaviside(x, 0.5)[:6])
    assert bp.float_power(bp.tensor([2, 3]), 2).dtype == bp.float64
    np.testing.assert_array_equal(bp.logical_xor(bp.tensor([0, 1, 2]), bp.tensor([0, 0, 3])).numpy(),
                                  [False, True, False])
    np.testing.assert_array_equal(bp.isin(bp.tensor([1, 5, 3, 7]), bp.tensor([3, 1])).numpy(),
                                  np.isin([1, 5, 3, 7], [3, 1]))
    np.testing.assert_array_equal(bp.isin(bp.tensor([1.0, 2.5]), [2.5], invert=True).numpy(), [True, False])
    assert bp.positive(t) is t
    with pytest.raises(TypeError):
        bp.positive(bp.tensor([True]))
    np.testing.assert_allclose(arr(bp.arccos(bp.tensor([0.3]))), np.arccos([0.3]), rtol=1e-6)
    np.testing.assert_allclose(arr(bp.tensor([0.3]).arctanh()), np.arctanh([0.3]), rtol=1e-6)
    big = bp.tensor([1e30, -1e30])
    np.testing.assert_allclose(arr(bp.asinh(big)), np.arcsinh([1e30, -1e30]), rtol=1e-6)
    np.testing.assert_allclose(arr(bp.acosh(bp.tensor([1e30]))), np.arccosh([1e30]), rtol=1e-6)
    assert np.isnan(bp.acosh(bp.tensor([0.5])).item())
    xl = bp.xlogy(bp.tensor([0.0, 0.0]), bp.tensor([0.0, float("nan")]))
    assert xl[0].item() == 0.0 and np.isnan(xl[1].item())


def test_promotion_queries_follow_pytorchs_table():
    assert bp.promote_types(bp.uint8, bp.int8) == bp.int16
    assert bp.promote_types(bp.float16, bp.bfloat16) == bp.float32
    assert bp.promote_types(bp.int32, bp.float16) == bp.float16
    assert bp.result_type(bp.tensor([1, 2]), 1.5) == bp.float32
    assert bp.result_type(bp.tensor([1, 2], dtype=bp.int32), 7) == bp.int32
    assert bp.result_type(bp.tensor([1.0]).half(), bp.tensor(2.0, dtype=bp.float64)) == bp.float16
    assert bp.result_type(bp.tensor([1], dtype=bp.uint8), bp.tensor([1], dtype=bp.int8)) == bp.int16
    assert bp.can_cast(bp.int64, bp.float32) and not bp.can_cast(bp.float32, bp.int64)
    assert not bp.can_cast(bp.int32, bp.bool) and bp.can_cast(bp.bool, bp.uint8)


def test_stacking_and_splitting_against_numpy():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0, 12.0).reshape(2, 3)
    ta, tb = bp.tensor(a), bp.tensor(b)
    for f, g in [(bp.hstack, np.hstack), (bp.vstack, np.vstack), (bp.dstack, np.dstack),
                 (bp.column_stack, np.column_stack), (bp.row_stack, np.vstack)]:
        np.testing.assert_array_equal(f([ta, tb]).numpy(), g([a, b]))
    assert bp.atleast_1d(bp.tensor(1.0)).shape == (1,)
    assert [t.shape for t in bp.atleast_2d(bp.tensor(1.0), bp.ones(3))] == [(1, 1), (1, 3)]
    assert bp.atleast_3d(bp.ones(2, 3)).shape == (2, 3, 1) and bp.atleast_3d(bp.ones(4)).shape == (1, 4, 1)
    x = np.arange(10.0)
    for ios in (3, [2, 5], [-3, 20], 1):
        got = [t.numpy() for t in bp.tensor_split(bp.tensor(x), ios)]
        want = np.array_split(x, ios) if isinstance(ios, int) else np.split(x, [min(max(i if i >= 0 else 10 + i, 0), 10) for i in ios])
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    m = np.arange(24.0).reshape(2, 4, 3)
    tm = bp.tensor(m)
    for f, g in [(bp.hsplit, np.hsplit), (bp.vsplit, np.vsplit)]:
        n = 2
        assert all(np.array_equal(p.numpy(), q) for p, q in zip(f(tm, n), g(m, n)))
    assert all(np.array_equal(p.numpy(), q) for p, q in zip(bp.dsplit(tm, 3), np.dsplit(m, 3)))
    with pytest.raises(RuntimeError, match="not divisible"):
        bp.hsplit(tm, 3)
    assert tm.tensor_split(2, dim=1)[1].shape == (2, 2, 3)


def test_broadcasting_and_builders():
    assert tuple(bp.broadcast_shapes((2, 1), (3,), (1, 1, 1))) == (1, 2, 3)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        bp.broadcast_shapes((2,), (3,))
    p, q = bp.broadcast_tensors(bp.ones(3, 1), bp.zeros(4))
    assert p.shape == q.shape == (3, 4)
    cp = bp.cartesian_prod(bp.tensor([1, 2]), bp.tensor([3, 4, 5]))
    np.testing.assert_array_equal(cp.numpy(), [[i, j] for i in (1, 2) for j in (3, 4, 5)])
    for off in (-1, 0, 2):
        np.testing.assert_array_equal(bp.tril_indices(4, 3, off).numpy(), np.stack(np.tril_indices(4, off, 3)))
        np.testing.assert_array_equal(bp.triu_indices(3, 5, off).numpy(), np.stack(np.triu_indices(3, off, 5)))
    np.testing.assert_array_equal(bp.diagflat(bp.tensor([[1, 2], [3, 4]])).numpy(), np.diagflat([[1, 2], [3, 4]]))
    d = bp.diag_embed(bp.tensor([[float("inf"), 1.0]]))
    assert d[0, 0, 1].item() == 0.0  # zeros off the diagonal even next to inf
    np.testing.assert_array_equal(bp.block_diag(bp.tensor(1), bp.tensor([2, 3])).numpy(), [[1, 0, 0], [0, 2, 3]])
    assert bp.chain_matmul(bp.ones(2, 3), bp.ones(3, 4), bp.ones(4, 1)).tolist() == [[12.0], [12.0]]


def test_index_forms_in_place_and_out_of_place():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3))
    t = bp.tensor(x)
    idx = bp.tensor([0, 2, 0])
    src = rng.normal(size=(3, 3))
    r = t.clone()
    assert r.index_add_(0, idx, bp.tensor(src), alpha=2.0) is r
    want = x.copy()
    np.add.at(want, [0, 2, 0], 2.0 * src)
    np.testing.assert_allclose(r.numpy(), want)
    s = t.clone()
    s.scatter_add_(0, bp.tensor([[1, 0, 3]]), bp.tensor(src[:1]))
    want = x.copy()
    want[[1, 0, 3], [0, 1, 2]] += src[0]
    np.testing.assert_allclose(s.numpy(), want)
    c = t.clone()
    c.index_copy_(0, bp.tensor([3, 1]), bp.tensor(src[:2]))
    want = x.copy()
    want[[3, 1]] = src[:2]
    np.testing.assert_array_equal(c.numpy(), want)
    mask = x > 0
    ms = bp.masked_scatter(t, bp.tensor(mask), bp.arange(12.0, dtype=bp.float64))
    want = x.copy()
    want[mask] = np.arange(12.0)[: mask.sum()]
    np.testing.assert_array_equal(ms.numpy(), want)
    with pytest.raises(RuntimeError, match="at least"):
        t.masked_scatter(bp.ones(4, 3, dtype=bp.bool), bp.zeros(2, dtype=bp.float64))
    np.testing.assert_array_equal(bp.take(t, bp.tensor([-1, 0])).numpy(), x.reshape(-1)[[-1, 0]])
    # gradients of the masked copy reach the source in order
    src_t = bp.ones(5, requires_grad=True)
    bp.masked_scatter(bp.zeros(4), bp.tensor([True, False, True, True]), src_t).mul(bp.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(src_t.grad.numpy(), [1.0, 3.0, 4.0, 0.0, 0.0])


def test_unfold_windows_and_their_gradient():
    x = bp.arange(6.0, requires_grad=True)
    w = x.unfold(0, 3, 2)
    np.testing.assert_array_equal(w.detach().numpy(), [[0, 1, 2], [2, 3, 4]])
    w.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 2, 1, 1, 0])  # the overlap counts twice
    with pytest.raises(RuntimeError, match="maximum size"):
        x.unfold(0, 7, 1)
    assert bp.tensor(3.0).unfold(0, 1, 1).shape == (1,)


def test_top_level_view_names():
    t = bp.randn(2, 3, 4)
    assert bp.swapaxes(t, 0, 2).shape == (4, 3, 2) and bp.swapdims(t, 0, 1).shape == (3, 2, 4)
    assert bp.movedim(t, 0, -1).shape == (3, 4, 2) and bp.moveaxis(t, [0, 1], [1, 0]).shape == (3, 2, 4)
    assert bp.ravel(t).shape == (24,) and bp.unflatten(bp.ravel(t), 0, (6, 4)).shape == (6, 4)
    assert bp.select(t, 1, 2).shape == (2, 4) and bp.narrow_copy(t, 2, 1, 2).shape == (2, 3, 2)
    assert bp.not_equal(t, t).sum().item() == 0 and bp.greater(t, t - 1).all().item()


# ------------------------------------------------------------------ random state, checkpointing, init


def test_rng_state_round_trips_and_refuses_foreign_states():
    s = bp.get_rng_state()
    a = bp.randn(5)
    bp.set_rng_state(s)
    assert bp.equal(a, bp.randn(5))
    with bp.random.fork_rng():
        bp.rand(3)
    after_fork = bp.randn(2)
    bp.set_rng_state(s)
    bp.randn(5)
    assert bp.equal(after_fork, bp.randn(2))  # fork_rng put the stream back
    with pytest.raises(RuntimeError, match="get_rng_state"):
        bp.set_rng_state(bp.zeros(5056, dtype=bp.uint8))
    with pytest.raises(ValueError, match="all zeros"):
        bp.set_rng_state(bp.cat([s[:8], bp.zeros(32, dtype=bp.uint8)]))
    bp.manual_seed(123)
    assert bp.initial_seed() == 123


def _mlp():
    bp.manual_seed(0)
    return bp.nn.Sequential(bp.nn.Linear(4, 8), bp.nn.Tanh(), bp.nn.Dropout(0.4), bp.nn.Linear(8, 3))


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpoint_gives_the_same_gradients_with_dropout_replayed(reentrant):
    from backprop_rs.utils.checkpoint import checkpoint, checkpoint_sequential

    m = _mlp()
    x = bp.randn(5, 4, requires_grad=True)
    bp.manual_seed(9)
    (m(x) ** 2).sum().backward()
    want = [p.grad.clone() for p in m.parameters()] + [x.grad.clone()]
    for run in (lambda: checkpoint(m, x, use_reentrant=reentrant),
                lambda: checkpoint_sequential(m, 2, x, use_reentrant=reentrant)):
        m.zero_grad()
        x.grad = None
        bp.manual_seed(9)
        (run() ** 2).sum().backward()
        got = [p.grad for p in m.parameters()] + [x.grad]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_checkpoint_inputs_without_grad():
    from backprop_rs.utils.checkpoint import checkpoint

    m = _mlp().eval()
    x = bp.randn(2, 4)
    checkpoint(m, x, use_reentrant=False).sum().backward()
    assert all(p.grad is not None for p in m.parameters())  # reaches the parameters inside
    m.zero_grad()
    with pytest.warns(UserWarning, match="None of the inputs"):
        out = checkpoint(m, x, use_reentrant=True)
    assert not out.requires_grad  # PyTorch's reentrant variant: no gradients
    with pytest.warns(UserWarning, match="use_reentrant"):
        checkpoint(m, x)


def test_trunc_normal_and_orthogonal_init():
    import math

    bp.manual_seed(0)
    w = bp.nn.init.trunc_normal_(bp.empty(400, 500), mean=0.1, std=0.5, a=-0.5, b=0.4)
    a = w.numpy().astype(np.float64)
    assert a.min() >= -0.5 and a.max() <= 0.4
    # moments of the truncated normal (closed form)
    al, be = (-0.5 - 0.1) / 0.5, (0.4 - 0.1) / 0.5
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    zz = cdf(be) - cdf(al)
    mean = 0.1 + 0.5 * (phi(al) - phi(be)) / zz
    var = 0.25 * (1 + (al * phi(al) - be * phi(be)) / zz - ((phi(al) - phi(be)) / zz) ** 2)
    assert abs(a.mean() - mean) < 5 * math.sqrt(var / a.size)
    assert abs(a.var() - var) / var < 0.02
    q = bp.nn.init.orthogonal_(bp.empty(3, 7), gain=2.0).numpy()
    np.testing.assert_allclose(q @ q.T, 4.0 * np.eye(3), atol=1e-5)


def test_in_place_draws_follow_their_distributions():
    bp.manual_seed(3)
    n = 200_000
    e = bp.empty(n, dtype=bp.float64).exponential_(2.0).numpy()
    assert e.min() >= 0 and abs(e.mean() - 0.5) < 5 * 0.5 / np.sqrt(n)
    g = bp.empty(n).geometric_(0.25).numpy()
    assert g.min() >= 1 and np.all(g == np.round(g)) and abs(g.mean() - 4.0) < 5 * np.sqrt(12.0 / n)
    ln = np.log(bp.empty(n, dtype=bp.float64).log_normal_(0.5, 0.25).numpy())
    assert abs(ln.mean() - 0.5) < 5 * 0.25 / np.sqrt(n) and abs(ln.std() - 0.25) < 0.01
    r = bp.empty(n, dtype=bp.int64).random_(3, 7).numpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}
    c = bp.empty(n, dtype=bp.float64).cauchy_(1.0, 2.0).numpy()
    assert abs(np.median(c) - 1.0) < 0.05  # the median is the location
    z = bp.normal(bp.full((n,), 3.0), 0.5).numpy()
    assert abs(z.mean() - 3.0) < 5 * 0.5 / np.sqrt(n)
    mu = bp.tensor([1.0, 2.0], requires_grad=True)
    bp.normal(mu, 1.0).sum().backward()
    np.testing.assert_array_equal(mu.grad.numpy(), [1.0, 1.0])  # reparameterised
    assert bp.normal(0.0, 1.0, size=(2, 3)).shape == (2, 3)
    ri = bp.randint_like(bp.zeros(4, 4, dtype=bp.int32), 2, 5)
    assert ri.dtype == bp.int32 and ri.min().item() >= 2 and ri.max().item() <= 4


def test_gumbel_softmax_hard_is_one_hot_with_the_soft_gradient():
    bp.manual_seed(4)
    logits = bp.randn(6, 5, requires_grad=True)
    bp.manual_seed(5)
    y = bp.nn.functional.gumbel_softmax(logits, tau=0.5, hard=True)
    assert set(np.unique(y.detach().numpy())) <= {0.0, 1.0} and bp.equal(y.sum(-1), bp.ones(6))
    w = bp.randn(6, 5)
    (y * w).sum().backward()
    g_hard = logits.grad.clone()
    logits.grad = None
    bp.manual_seed(5)  # the same noise
    soft = bp.nn.functional.gumbel_softmax(logits, tau=0.5)
    (soft * w).sum().backward()
    np.testing.assert_allclose(g_hard.numpy(), logits.grad.numpy(), atol=1e-6)
    # the soft sample is a distribution per row
    np.testing.assert_allclose(soft.detach().sum(-1).numpy(), np.ones(6), rtol=1e-6)


def test_special_functions_against_their_definitions():
    x = np.array([0.0, 0.25, 1.0, 3.0])
    np.testing.assert_allclose(bp.special.entr(bp.tensor(x)).numpy(), -x * np.log(np.where(x > 0, x, 1.0)))
    assert bp.special.entr(bp.tensor([-1.0])).item() == float("-inf")
    y = np.array([-0.5, 0.0, 2.0, 1.0])
    np.testing.assert_allclose(bp.special.xlog1py(bp.tensor(x), bp.tensor(y)).numpy(), x * np.log1p(y))
    np.testing.assert_allclose(bp.special.expit(bp.tensor(y)).numpy(), 1 / (1 + np.exp(-y)), rtol=1e-6)
    np.testing.assert_allclose(bp.special.round(bp.tensor([1.2345, -2.5]), decimals=2).numpy(), [1.23, -2.5])
    assert bp.erfinv(bp.tensor([1.0, -1.0, 2.0])).tolist()[:2] == [float("inf"), float("-inf")]
    assert np.isnan(bp.erfinv(bp.tensor([2.0])).item())
    t = bp.tensor([0.1, 0.2])
    assert t.erfinv_() is t


def test_three_d_layers():
    bp.manual_seed(0)
    conv = bp.nn.Conv3d(3, 4, (3, 1, 3), padding="same", bias=False)
    x = bp.randn(2, 3, 4, 5, 6)
    y = conv(x)
    assert y.shape == (2, 4, 4, 5, 6)
    same = bp.nn.functional.conv3d(x, conv.weight, None, padding=(1, 0, 1))
    np.testing.assert_allclose(y.detach().numpy(), same.detach().numpy(), rtol=1e-6, atol=1e-6)
    assert bp.nn.Conv3d(3, 2, 2, stride=2)(bp.randn(3, 4, 4, 4)).shape == (2, 2, 2, 2)  # unbatched
    assert bp.nn.MaxPool3d(2)(x).shape == (2, 3, 2, 2, 3)
    assert bp.nn.AvgPool3d((2, 1, 2), divisor_override=1)(bp.ones(1, 1, 2, 2, 2)).flatten().tolist() == [4.0, 4.0]
    assert bp.nn.AdaptiveAvgPool3d((1, None, 2))(x).shape == (2, 3, 1, 5, 2)
    pooled, idx = bp.nn.functional.max_pool3d(x, 2, return_indices=True)  # values checked in test_pool3d_indices
    assert pooled.shape == idx.shape == (2, 3, 2, 2, 3) and idx.dtype == bp.int64
    with bp.autocast("cpu"):
        assert conv(x).dtype == bp.bfloat16  # conv3d is on the CPU lower-precision list
        assert bp.nn.functional.avg_pool3d(x.bfloat16(), 2).dtype == bp.float32  # and avg_pool3d on the float32 one


def test_integer_maths_histogram_and_jit():
    a = np.array([1, -6, 12, 7])
    b = np.array([4, 4, 8, 3])
    ta, tb = bp.tensor(a), bp.tensor(b)
    np.testing.assert_array_equal((ta << 2).numpy(), a << 2)
    np.testing.assert_array_equal((ta >> 1).numpy(), a >> 1)  # arithmetic, as NumPy's and PyTorch's
    np.testing.assert_array_equal(bp.bitwise_right_shift(ta, tb).numpy(), a >> b)
    np.testing.assert_array_equal(bp.bitwise_xor(ta, tb).numpy(), a ^ b)
    np.testing.assert_array_equal(bp.bitwise_not(ta).numpy(), ~a)
    np.testing.assert_array_equal(bp.gcd(ta, tb).numpy(), np.gcd(a, b))
    np.testing.assert_array_equal(bp.lcm(ta, tb).numpy(), np.lcm(a, b))
    # a floating operand on either side is PyTorch's error, not NumPy's UFuncTypeError
    with pytest.raises(RuntimeError, match="gcd_cpu.*not implemented"):
        bp.gcd(ta, bp.tensor([2.0, 3.0, 4.0, 5.0]))
    with pytest.raises(RuntimeError, match="lcm_cpu.*not implemented"):
        ta.lcm(bp.tensor([2.0, 3.0, 4.0, 5.0]))
    with pytest.raises(TypeError, match="not float"):
        bp.gcd(ta, 2.5)
    with pytest.raises(RuntimeError, match="not implemented"):
        bp.bitwise_left_shift(bp.ones(2), 1)
    x = np.random.default_rng(0).normal(size=500)
    h, e = bp.histogram(bp.tensor(x), 7, range=(-2.0, 2.0))
    wh, we = np.histogram(x, 7, range=(-2.0, 2.0))
    np.testing.assert_array_equal(h.numpy(), wh)
    np.testing.assert_allclose(e.numpy(), we, rtol=1e-6)
    m = bp.nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="TorchScript"):
        bp.jit._warned[0] = False
        assert bp.jit.script(m) is m
    assert bp.jit.trace(m, bp.ones(1, 2)) is m and not bp.jit.is_scripting()
    assert bp.jit.fork(lambda v: v + 1, 1).wait() == 2 and not isinstance(m, bp.jit.ScriptModule)
    with pytest.raises(RuntimeError, match="safetensors"):
        bp.jit.save(m, "x.pt")


def test_swa_utils_against_the_reference_recurrences():
    from backprop_rs.optim import swa_utils as S

    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.BatchNorm1d(4), bp.nn.Linear(4, 1))
    swa = S.AveragedModel(model)
    ema = S.AveragedModel(model, multi_avg_fn=S.get_ema_multi_avg_fn(0.8))
    ema2 = S.AveragedModel(model, avg_fn=S.get_ema_avg_fn(0.8))
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    sched = S.SWALR(opt, swa_lr=0.02, anneal_epochs=4, anneal_strategy="cos")
    history, lrs = [], []
    for _ in range(6):
        model(bp.randn(8, 3)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
        history.append([p.detach().numpy().copy() for p in model.parameters()])
        for avg in (swa, ema, ema2):
            avg.update_parameters(model)
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    for i, p in enumerate(swa.module.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), np.mean([h[i] for h in history], 0), rtol=1e-5, atol=1e-6)
    for avg in (ema, ema2):
        for i, p in enumerate(avg.module.parameters()):
            want = history[0][i]
            for h in history[1:]:
                want = 0.8 * want + 0.2 * h[i]
            np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert swa.n_averaged.item() == 6
    # the cosine anneal from 0.1 to 0.02 over 4 epochs, then held
    alphas = [(1 - np.cos(np.pi * min(1.0, k / 4))) / 2 for k in range(1, 7)]
    np.testing.assert_allclose(lrs, [0.02 * a + 0.1 * (1 - a) for a in alphas], rtol=1e-12)
    batches = [bp.randn(8, 3) for _ in range(3)]
    S.update_bn(batches, swa)
    feats = np.concatenate([swa.module[0](b).detach().numpy() for b in batches])
    np.testing.assert_allclose(swa.module[1].running_mean.numpy(), feats.mean(0), rtol=1e-5, atol=1e-6)
    assert swa.module[1].momentum == 0.1


def test_flat_and_diagonal_writes_index_reduce_and_init_helpers():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4))
    t = bp.tensor(x)
    idx = np.array([0, 5, 11, 5])
    src = np.array([1.0, 2.0, 3.0, 4.0])
    got = bp.put(t, bp.tensor(idx), bp.tensor(src), accumulate=True).numpy()
    want = x.copy().reshape(-1)
    np.add.at(want, idx, src)
    np.testing.assert_allclose(got, want.reshape(3, 4))
    r = t.clone()
    r.put_(bp.tensor([-1]), bp.tensor([9.0]))
    assert r[2, 3].item() == 9.0
    red = bp.index_reduce(t, 0, bp.tensor([0, 2, 0]), bp.tensor(x[:3] * 2), "amax", include_self=False)
    want = x.copy()
    want[0] = np.maximum(2 * x[0], 2 * x[2])
    want[2] = 2 * x[1]
    np.testing.assert_allclose(red.numpy(), want)
    for shape, wrap in [((5, 3), True), ((5, 3), False), ((3, 5), False), ((3, 3, 3), False)]:
        z = bp.zeros(*shape)
        z.fill_diagonal_(2.0, wrap=wrap)
        a = np.zeros(shape)
        np.fill_diagonal(a, 2.0, wrap=wrap)
        np.testing.assert_array_equal(z.numpy(), a)
    s = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(bp.tensor(s).sum_to_size(3, 1).numpy(), s.sum((0, 2)).reshape(3, 1))
    with pytest.raises(RuntimeError, match="not expandable"):
        bp.tensor(s).sum_to_size(2, 2)
    nm = np.array([[3.0, 1.0, 2.0, np.nan], [np.nan, 5.0, 4.0, 1.0], [np.nan] * 4])
    med = np.nanmedian(nm[:2], 1)
    np.testing.assert_array_equal(bp.nanmedian(bp.tensor(nm), 1).values.numpy()[:2], med)
    assert np.isnan(bp.nanmedian(bp.tensor(nm), 1).values[2].item())
    np.testing.assert_array_equal(bp.msort(bp.tensor(x)).numpy(), np.sort(x, 0))
    assert bp.ones(2, 3).mH.shape == (3, 2) and bp.ones(2, 3).H.shape == (3, 2)
    with pytest.raises(RuntimeError, match="only supported on matrices"):
        bp.ones(2, 2, 2).H  # noqa: B018
    np.testing.assert_array_equal(bp.nn.init.eye_(bp.empty(2, 3)).numpy(), np.eye(2, 3))
    w = bp.nn.init.dirac_(bp.empty(4, 2, 3, 3), groups=2)
    img = bp.tensor(rng.normal(size=(1, 4, 5, 5)), dtype=bp.float32)
    y = bp.nn.functional.conv2d(img, w, padding=1, groups=2)
    np.testing.assert_allclose(y.numpy(), img.numpy(), atol=1e-6)  # the identity convolution
    sp = bp.nn.init.sparse_(bp.empty(10, 4), 0.3).numpy()
    assert ((sp == 0).sum(0) == 3).all()
