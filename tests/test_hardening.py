"""Regression tests for the defects a property-based fuzz of the public API found: each case
behaves as PyTorch documents it (checked against NumPy or a hand-computed reference) or raises
an ordinary Python exception, never a PanicException or an abort."""

import math

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F


def test_inplace_into_expanded_view_is_refused():
    x = bp.zeros(1, 3).expand(4, 3)
    for write in (lambda: x.add_(1), lambda: x.copy_(bp.ones(4, 3)), lambda: x.fill_(2.0), lambda: x.__setitem__(slice(None), 5.0)):
        with pytest.raises(ValueError, match="more than one element"):
            write()


def test_clamp_follows_pytorch():
    x = bp.tensor([1.0, 2.0, 3.0, float("nan")])
    # min > max: every element becomes max; NaN stays NaN
    np.testing.assert_array_equal(x.clamp(3, 1).numpy(), [1.0, 1.0, 1.0, np.nan])
    # an int tensor with float bounds is promoted
    r = bp.tensor([1, 2, 3]).clamp(0.5, 2.5)
    assert r.dtype == bp.float32
    np.testing.assert_allclose(r.numpy(), [1.0, 2.0, 2.5])
    # ... so the in-place form cannot keep the int dtype
    with pytest.raises(TypeError, match="can't be cast"):
        bp.tensor([1, 2, 3]).clamp_(0.5, 2.5)
    # int bounds keep ints
    assert bp.tensor([1, 5, 9]).clamp(2, 6).tolist() == [2, 5, 6]
    # a NaN bound gives NaN
    assert math.isnan(bp.tensor([1.0]).clamp(min=float("nan")).item())
    # tensor bounds broadcast
    lo = bp.tensor([0.0, 2.0, 4.0])
    np.testing.assert_allclose(bp.tensor([1.0, 1.0, 5.0]).clamp(lo, 4.5).numpy(), [1.0, 2.0, 4.5])
    with pytest.raises(ValueError):
        bp.tensor([1.0]).clamp()


def test_clamp_gradient_is_one_inside_and_zero_outside():
    x = bp.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=bp.float64, requires_grad=True)
    x.clamp(-1, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_bitwise_ops_on_integers_and_bools():
    a, b = np.array([6, 3, -8, 12]), np.array([3, 5, 7, -1])
    ta, tb = bp.tensor(a), bp.tensor(b)
    np.testing.assert_array_equal((ta & tb).numpy(), a & b)
    np.testing.assert_array_equal((ta | tb).numpy(), a | b)
    np.testing.assert_array_equal((ta ^ tb).numpy(), a ^ b)
    np.testing.assert_array_equal((~ta).numpy(), ~a)
    np.testing.assert_array_equal((ta & 6).numpy(), a & 6)
    m, n = np.array([True, False, True]), np.array([True, True, False])
    np.testing.assert_array_equal((bp.tensor(m) & bp.tensor(n)).numpy(), m & n)
    np.testing.assert_array_equal((bp.tensor(m) ^ bp.tensor(n)).numpy(), m ^ n)
    for op in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y):
        with pytest.raises(TypeError):
            op(bp.tensor([1.0]), bp.tensor([2.0]))
    with pytest.raises(TypeError):
        ~bp.tensor([1.0])
    t = bp.tensor([5, 6])
    t &= 4
    assert t.tolist() == [4, 4]


def test_bool_subtraction_and_negation_are_refused():
    with pytest.raises(TypeError, match="logical_xor"):
        bp.tensor([True]) - bp.tensor([False])
    with pytest.raises(TypeError, match="logical_not"):
        -bp.tensor([True])


def test_logsumexp_of_bool_and_int_promotes_to_float():
    ref = float(np.log(np.exp(1.0) + np.exp(0.0)))
    assert bp.tensor([True, False]).logsumexp(0).item() == pytest.approx(ref, rel=1e-6)
    assert bp.tensor([1, 0]).logsumexp(0).item() == pytest.approx(ref, rel=1e-6)
    assert bp.zeros(2, 0).logsumexp(1).tolist() == [-math.inf, -math.inf]


@pytest.mark.parametrize("shape,dim", [((0, 3), 0), ((0, 3), 1), ((2, 0), 1), ((2, 0), 0), ((0,), 0)])
def test_any_all_var_std_with_dims_on_empty_tensors(shape, dim):
    x = np.zeros(shape, dtype=np.float32)
    t = bp.from_numpy(x)
    np.testing.assert_array_equal(t.any(dim).numpy(), x.any(axis=dim))
    np.testing.assert_array_equal(t.all(dim).numpy(), x.all(axis=dim))
    assert t.any(dim).dtype == bp.bool
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = x.var(axis=dim, ddof=1) if x.shape[dim] > 0 else np.full(np.delete(np.array(shape), dim), np.nan)
    assert t.var(dim).shape == ref.shape
    assert t.std(dim).shape == ref.shape
    np.testing.assert_array_equal(np.isnan(t.var(dim).numpy()), np.isnan(ref))


def test_var_std_with_fewer_elements_than_the_correction_are_nan():
    assert math.isnan(bp.tensor([1.0]).var().item())
    assert math.isnan(bp.tensor([1.0]).std(0).item())
    # PyTorch divides by max(0, n - correction): a positive sum over 0 is inf, never negative
    assert bp.tensor([1.0, 2.0]).var(correction=2).item() == math.inf
    assert bp.tensor([1.0, 2.0]).var(correction=3).item() == math.inf
    # correction 0 on one element is a real 0
    assert bp.tensor([1.0]).var(correction=0).item() == 0.0


def test_float_to_int64_conversion_of_unrepresentable_values():
    # x86's conversion (what PyTorch gives on x86): NaN, infinities and out-of-range -> INT64_MIN
    r = bp.tensor([float("nan"), float("inf"), -float("inf"), 3e20, -3e20, 2.9, -2.9]).long().tolist()
    assert r == [-(2**63)] * 5 + [2, -2]


def test_linspace_int64_truncates_bounds_first():
    # PyTorch converts start/end to the integer dtype before stepping
    assert bp.linspace(0.5, 10.7, 5, dtype=bp.int64).tolist() == [0, 2, 5, 7, 10]
    assert bp.linspace(-3.9, 3.9, 3, dtype=bp.int64).tolist() == [-3, 0, 3]


def test_sum_with_dtype_converts_before_summing():
    big = bp.tensor([2**62, 2**62, 2**62])
    assert big.sum(dtype=bp.float64).item() == pytest.approx(3 * 2.0**62)
    assert bp.tensor([True, True]).sum(dtype=bp.float32).dtype == bp.float32


def test_int64_values_keep_all_bits():
    v = 2**60 + 1
    t = bp.tensor([v])
    assert t.item() == v
    assert int(t) == v
    assert (t + 2).item() == v + 2
    assert (t * 1).tolist() == [v]
    assert bp.full((2,), v, dtype=bp.int64).tolist() == [v, v]


def test_linear_refuses_a_bias_that_does_not_fit_the_output():
    x, w = bp.ones(2, 3), bp.ones(4, 3)
    for bias in (bp.ones(5), bp.ones(3, 4), bp.ones(2, 1, 4)):
        with pytest.raises(ValueError):
            F.linear(x, w, bias)
    np.testing.assert_allclose(F.linear(x, w, bp.ones(4)).numpy(), np.full((2, 4), 4.0))


def test_complex_operands_raise_type_error():
    t = bp.ones(2)
    with pytest.raises(TypeError):
        t + 1j
    for method in ("add", "sub", "mul", "div", "maximum", "eq", "lt", "pow", "matmul"):
        with pytest.raises(TypeError):
            getattr(t, method)(1j)
    with pytest.raises(TypeError):
        t.fill_(1j)
    with pytest.raises(TypeError):
        t.clamp(1j)


def test_random_fill_arguments_are_checked():
    with pytest.raises(ValueError, match="from"):
        bp.ones(2).uniform_(1.0, 0.0)
    with pytest.raises(ValueError, match="std"):
        bp.ones(2).normal_(0.0, -1.0)
    with pytest.raises(TypeError):
        bp.ones(2, dtype=bp.int64).uniform_()
    t = bp.empty(1000).uniform_(-2.0, -1.0)
    assert -2.0 <= t.min().item() and t.max().item() < -1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.adaptive_avg_pool2d(bp.randn(1, 4, 8, 7), 10**12),
        lambda: bp.randperm(2**40),
        lambda: bp.zeros(2**40, 2**30),
        lambda: bp.ones(1).expand(2**62).contiguous(),
        lambda: bp.arange(10**14),
        lambda: bp.eye(2**33, 2**33),
        lambda: bp.ones(3).repeat(2**62, 2**3),
    ],
)
def test_huge_sizes_raise_instead_of_aborting(call):
    with pytest.raises((MemoryError, ValueError, RuntimeError)):
        call()


def test_adaptive_pool_on_empty_input_raises_quickly():
    with pytest.raises(ValueError):
        F.adaptive_avg_pool2d(bp.randn(1, 4, 0, 7), 10**9)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.unbind(),
        lambda t: t.chunk(1),
        lambda t: t.split(1),
        lambda t: t.size(0),
        lambda t: t.unflatten(0, (1,)),
        lambda t: t[0],
    ],
)
def test_zero_dim_tensors_raise_ordinary_errors(call):
    with pytest.raises((IndexError, ValueError, RuntimeError)):
        call(bp.tensor(1.0))


def test_avg_pool_with_padding_on_a_narrow_input():
    # PyTorch accepts kernel 3, padding 1 on a width-1 input (count_include_pad averages zeros)
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 4, 1)
    y = F.avg_pool2d(bp.from_numpy(x), 3, padding=1).numpy()
    padded = np.pad(x[0, 0], 1)
    ref = np.array([[padded[r:r + 3, 0:3].sum() / 9 for c in range(1)] for r in range(0, 4, 3)])
    np.testing.assert_allclose(y[0, 0], ref, rtol=1e-6)


def test_split_and_chunk_follow_pytorch():
    t = bp.arange(7)
    assert [p.tolist() for p in t.split(3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [p.tolist() for p in t.split([2, 5])] == [[0, 1], [2, 3, 4, 5, 6]]
    with pytest.raises(ValueError):
        t.split([2, 2])
    assert [len(p) for p in t.chunk(3)] == [3, 3, 1]
    with pytest.raises(ValueError):
        t.chunk(0)
    assert [p.shape for p in bp.zeros(0, 2).split(2)] == [(0, 2)]


def test_repeat_matches_numpy_tile():
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(bp.tensor(x).repeat(2, 1, 3).numpy(), np.tile(x, (2, 1, 3)))
    with pytest.raises(ValueError):
        bp.tensor(x).repeat(2)
    with pytest.raises(ValueError):
        bp.tensor(x).repeat(-1, 2)


def test_module_to_keeps_parameter_identity_and_tied_weights():
    emb = bp.nn.Embedding(10, 4)
    head = bp.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # weight tying, as GPT models do
    model = bp.nn.ModuleList([emb, head])
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    w = emb.weight
    model.double()
    assert emb.weight is w and head.weight is w
    assert w.dtype == bp.float64 and w.requires_grad and w.is_leaf
    # the optimiser made before the move updates the moved parameter
    (head(emb(bp.tensor([1, 2]))) ** 2).sum().backward()
    before = w.detach().clone().numpy()
    opt.step()
    assert not np.allclose(before, w.detach().numpy())
    model.float()
    assert emb.weight is w and w.dtype == bp.float32


def test_module_to_moves_gradients_too():
    lin = bp.nn.Linear(3, 2)
    lin(bp.ones(1, 3)).sum().backward()
    g = lin.weight.grad.numpy().copy()
    lin.double()
    assert lin.weight.grad.dtype == bp.float64
    np.testing.assert_allclose(lin.weight.grad.numpy(), g)


def test_data_setter_swaps_the_held_tensor():
    p = bp.nn.Parameter(bp.ones(2))
    p.data = bp.zeros(3, dtype=bp.float64)
    assert p.shape == (3,) and p.dtype == bp.float64 and p.requires_grad and p.is_leaf
    with pytest.raises(TypeError):
        p.data = bp.zeros(3, dtype=bp.int64)
