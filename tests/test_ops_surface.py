"""The everyday PyTorch surface of issue 13 beyond the op table: PyTorch's documented semantics
(rounding half to even, fmod/remainder signs, integer division by zero, NaN in sorts and
medians, stable sorts, norms and their gradient at zero, views), the binding's object identity
(`AccumulateGrad.variable is p`, unique GPU `data_ptr`), and the top-level names. References are
NumPy or values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp
from conftest import gpu_or_skip

DEVICES = ["cpu", "gpu"]


def _dev(device):
    if device == "gpu":
        gpu_or_skip()
    return device


# ------------------------------------------------------------------ rounding and remainders


@pytest.mark.parametrize("device", DEVICES)
def test_round_is_half_to_even_and_int_rounding_is_identity(device):
    d = _dev(device)
    x = bp.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 3.7, -3.2], device=d)
    np.testing.assert_array_equal(x.round().cpu().numpy(), np.round(x.cpu().numpy()))
    assert str(x.round().cpu().numpy()[3]) == "-0.0"
    i = bp.tensor([3, -4, 5], device=d)
    for name in ("floor", "ceil", "round", "trunc"):
        r = getattr(i, name)()
        assert r.dtype == bp.int64, name
        assert r.cpu().tolist() == [3, -4, 5]


@pytest.mark.parametrize("device", DEVICES)
def test_fmod_and_remainder_signs_match_numpy(device):
    d = _dev(device)
    a = np.array([5.5, -5.5, 5.5, -5.5, 0.0, 3.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 1.5, 1.5], np.float32)
    ta, tb = bp.tensor(a, device=d), bp.tensor(b, device=d)
    np.testing.assert_allclose(ta.fmod(tb).cpu().numpy(), np.fmod(a, b))
    np.testing.assert_allclose(ta.remainder(tb).cpu().numpy(), np.remainder(a, b))
    np.testing.assert_allclose((ta % tb).cpu().numpy(), np.remainder(a, b))
    np.testing.assert_allclose((7.0 % tb).cpu().numpy(), np.remainder(7.0, b))
    ia = np.array([7, -7, 7, -7, 0, -9223372036854775807], np.int64)
    ib = np.array([3, 3, -3, -3, 5, 10], np.int64)
    ti, tj = bp.tensor(ia, device=d), bp.tensor(ib, device=d)
    assert ti.fmod(tj).cpu().tolist() == np.fmod(ia, ib).tolist()
    assert ti.remainder(tj).cpu().tolist() == np.remainder(ia, ib).tolist()
    assert (ti % 4).dtype == bp.int64


@pytest.mark.parametrize("device", DEVICES)
def test_integer_remainder_by_zero_raises_like_pytorch(device):
    d = _dev(device)
    t = bp.tensor([1, 2, 3], device=d)
    for f in (lambda: t.fmod(0), lambda: t % bp.tensor([1, 0, 1], device=d), lambda: t.remainder_(0)):
        with pytest.raises(ZeroDivisionError, match="ZeroDivisionError"):
            f()
    with pytest.raises(RuntimeError):  # PyTorch raises RuntimeError("ZeroDivisionError")
        t.fmod(0)
    assert t.cpu().tolist() == [1, 2, 3]
    # floats divide by zero into NaN, as in PyTorch
    assert math.isnan(bp.tensor([1.0], device=d).fmod(0.0).item())


@pytest.mark.parametrize("device", DEVICES)
def test_unary_special_values(device):
    d = _dev(device)
    x = bp.tensor([-1.0, -2.0, 0.0, float("inf"), float("nan")], device=d)
    l1p = x.log1p().cpu().numpy()
    assert l1p[0] == -np.inf and np.isnan(l1p[1]) and l1p[2] == 0 and l1p[3] == np.inf and np.isnan(l1p[4])
    assert np.isnan(bp.tensor([2.0, -1.5], device=d).asin().cpu().numpy()).all()
    assert np.isnan(bp.tensor([2.0], device=d).acos().cpu().numpy()).all()
    lg = bp.tensor([0.0, -1.0, 8.0, 1000.0], device=d)
    np.testing.assert_allclose(lg.log2().cpu().numpy(), [-np.inf, np.nan, 3.0, np.log2(1000.0)], rtol=1e-6)
    np.testing.assert_allclose(lg.log10().cpu().numpy(), [-np.inf, np.nan, np.log10(8.0), 3.0], rtol=1e-6)
    big = bp.tensor([-89.0, -30.0, 1e-8, 30.0, 89.0], device=d)
    np.testing.assert_allclose(big.sinh().cpu().numpy(), np.sinh(np.array([-89.0, -30.0, 1e-8, 30.0, 89.0], np.float32).astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(big.cosh().cpu().numpy(), np.cosh(np.array([-89.0, -30.0, 1e-8, 30.0, 89.0], np.float32).astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(bp.tensor([1e-7], device=d).expm1().cpu().numpy(), [1e-7], rtol=1e-6)
    y = bp.tensor([0.0, -0.0, 1.0, -1.0], device=d)
    xx = bp.tensor([-0.0, -1.0, 0.0, float("-inf")], device=d)
    np.testing.assert_allclose(y.atan2(xx).cpu().numpy(), np.arctan2([0.0, -0.0, 1.0, -1.0], [-0.0, -1.0, 0.0, -np.inf]), rtol=1e-6)
    assert bp.tensor([3, 4]).atan2(bp.tensor([4, 3])).dtype == bp.float32
    np.testing.assert_allclose(bp.tensor([-2.7, 2.7]).frac().numpy(), [-0.7, 0.7], rtol=1e-6)


# ------------------------------------------------------------------ where, masks, views


@pytest.mark.parametrize("device", DEVICES)
def test_where_with_two_numbers(device):
    d = _dev(device)
    c = bp.tensor([True, False, True], device=d)
    r = bp.where(c, 1.0, 0.0)
    assert r.dtype == bp.float32 and r.device.type == d and r.cpu().tolist() == [1.0, 0.0, 1.0]
    assert bp.where(c, 1, 0).dtype == bp.int64
    x = bp.tensor([1.0, 2.0, 3.0], dtype=bp.float64)
    assert bp.where(c.cpu(), x, 0.0).dtype == bp.float64


def test_masked_fill_tensor_value_gets_gradient_and_inplace_forms():
    x = bp.tensor([[1.0, -2.0], [3.0, -4.0]], requires_grad=True)
    v = bp.tensor(5.0, requires_grad=True)
    y = x.masked_fill(x < 0, v)
    assert y.tolist() == [[1.0, 5.0], [3.0, 5.0]]
    (y * bp.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0], [3.0, 0.0]]
    assert v.grad.item() == 6.0
    z = bp.zeros(2, 3)
    assert z.masked_fill_(bp.tensor([True, False, True]), 2).tolist() == [[2.0, 0.0, 2.0]] * 2
    assert z.index_fill_(0, bp.tensor([1]), -1.0).tolist() == [[2.0, 0.0, 2.0], [-1.0, -1.0, -1.0]]
    with pytest.raises(TypeError, match="boolean"):
        z.masked_fill(bp.tensor([1, 0, 1]), 0.0)
    m = bp.ones(3, 3).tril_(-1)
    assert m.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert bp.ones(2, 2, dtype=bp.bool).triu().tolist() == [[True, True], [False, True]]


def test_diagonal_is_a_view():
    x = bp.zeros(3, 4)
    dg = x.diagonal(1)
    assert dg.shape == (3,) and dg.stride() == (5,)
    dg.fill_(7.0)
    assert x.numpy()[[0, 1, 2], [1, 2, 3]].tolist() == [7.0, 7.0, 7.0]
    assert dg.data_ptr() == x.data_ptr() + 4
    assert x.diagonal(-5).shape == (0,)
    with pytest.raises(ValueError, match="identical"):
        x.diagonal(0, 1, 1)
    assert bp.ones(2, 3, 3).diagonal(0, 1, 2).shape == (2, 3)
    t = bp.tensor([[1, 2], [3, 4]])
    assert t.trace().item() == 5 and t.trace().dtype == bp.int64


def test_flip_roll_tile_repeat_interleave_meshgrid():
    a = np.arange(24).reshape(2, 3, 4)
    t = bp.tensor(a)
    assert t.flip(0, 2).tolist() == np.flip(a, (0, 2)).tolist()
    assert t.roll(-7).tolist() == np.roll(a, -7).tolist()
    assert t.roll((1, 5), (1, 2)).tolist() == np.roll(a, (1, 5), (1, 2)).tolist()
    assert t.tile((2,)).tolist() == np.tile(a, 2).tolist()
    assert t.repeat_interleave(bp.tensor([2, 0, 1]), dim=1).tolist() == np.repeat(a, [2, 0, 1], axis=1).tolist()
    assert bp.tensor([1, 2]).repeat_interleave(3, output_size=6).tolist() == [1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        t.roll((1, 2), (0,))
    x, y = np.arange(3), np.arange(4) * 10
    for ix in ("ij", "xy"):
        got = bp.meshgrid(bp.tensor(x), bp.tensor(y), indexing=ix)
        want = np.meshgrid(x, y, indexing=ix)
        assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert [g.shape for g in bp.meshgrid([bp.tensor(x), bp.tensor(y)])] == [(3, 4), (3, 4)]


def test_closeness():
    a = bp.tensor([1.0, float("nan"), float("inf"), 2.0])
    b = bp.tensor([1.0 + 1e-7, float("nan"), float("inf"), 2.1])
    assert a.isclose(b).tolist() == [True, False, True, False]
    assert bp.isclose(a, b, equal_nan=True).tolist() == [True, True, True, False]
    assert not bp.allclose(a, b) and bp.allclose(a[:1], b[:1])
    assert bp.equal(bp.tensor([1, 2]), bp.tensor([1, 2])) and not bp.equal(bp.tensor([1, 2]), bp.tensor([1, 2, 3]))
    assert bp.tensor([1, 2]).isclose(bp.tensor([1, 3]), atol=1.0).tolist() == [True, True]
    assert bp.tensor([float("nan"), float("inf"), 1.0]).nan_to_num().tolist() == [0.0, float(np.finfo(np.float32).max), 1.0]
    assert bp.tensor([float("-inf")], dtype=bp.float64).nan_to_num().item() == np.finfo(np.float64).min


# ------------------------------------------------------------------ scans and sorting


def test_cumsum_cumprod_dtypes_and_zero_gradients():
    assert bp.tensor([True, True, False]).cumsum(0).tolist() == [1, 2, 2]
    assert bp.tensor([1, 2, 3]).cumsum(0).dtype == bp.int64
    assert bp.tensor([1, 2, 3]).cumsum(0, dtype=bp.float64).dtype == bp.float64
    x = bp.tensor([2.0, 0.0, 3.0, 0.0, 5.0], dtype=bp.float64, requires_grad=True)
    x.cumprod(0).sum().backward()
    # d/dx_i sum_k prod_{j<=k} x_j by hand: d/dx0 = 1 + x1 (1 + ...) = 1, d/dx1 = x0 (1 + x2 +
    # x2 x3 + x2 x3 x4) = 2 * 4 = 8, and every later one has the factor x1 = 0
    assert x.grad.tolist() == [1.0, 8.0, 0.0, 0.0, 0.0]
    assert bp.autograd.gradcheck(lambda t: t.cumprod(0), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_sort_is_stable_and_puts_nan_last(device):
    d = _dev(device)
    x = bp.tensor([3.0, float("nan"), 1.0, 3.0, -1.0, 1.0], device=d)
    v, i = x.sort()
    assert i.cpu().tolist() == [4, 2, 5, 0, 3, 1] and np.isnan(v.cpu().numpy()[-1])
    v, i = x.sort(descending=True, stable=True)
    assert i.cpu().tolist() == [1, 0, 3, 2, 5, 4]
    assert x.argsort().device.type == d
    assert x.topk(2).indices.cpu().tolist() == [1, 0]
    assert x.topk(2, largest=False).values.cpu().tolist() == [-1.0, 1.0]
    k = bp.tensor([[5.0, 1.0, 4.0, 2.0]], device=d).kthvalue(2, 1)
    assert k.values.cpu().tolist() == [2.0] and k.indices.cpu().tolist() == [3]
    with pytest.raises(ValueError, match="out of range"):
        x.topk(7)
    assert bp.tensor([4, 1, 3], device=d).sort().values.cpu().tolist() == [1, 3, 4]


def test_gpu_sort_kernel_matches_the_cpu_without_reading_back():
    from conftest import gpu_or_skip

    gpu_or_skip()
    rng = np.random.default_rng(12)
    for shape, dim in (((6, 1000), 1), ((300, 3), 0), ((2, 5, 7), 1), ((3, 1500), 1)):
        x = rng.integers(-5, 6, size=shape).astype(np.float32)
        x.flat[::11] = np.nan
        x.flat[1::13] = -0.0
        g = bp.tensor(x, device="gpu")
        for desc in (False, True):
            before = bp.gpu.counters()["readbacks"]
            gi = g.argsort(dim=dim, descending=desc)
            values = g.sort(dim=dim, descending=desc).values
            top = g.topk(2, dim=dim).indices
            # rows up to 1024 are ordered on the device; longer ones go through the CPU
            assert (bp.gpu.counters()["readbacks"] - before == 0) == (shape[dim] <= 1024)
            c = bp.tensor(x)
            np.testing.assert_array_equal(gi.cpu().numpy(), c.argsort(dim=dim, descending=desc).numpy())
            np.testing.assert_array_equal(values.cpu().numpy(), c.sort(dim=dim, descending=desc).values.numpy())
            np.testing.assert_array_equal(top.cpu().numpy(), c.topk(2, dim=dim).indices.numpy())
    ints = rng.integers(-1000, 1000, size=(4, 333))
    np.testing.assert_array_equal(bp.tensor(ints, device="gpu").argsort(dim=1).cpu().numpy(),
                                  np.argsort(ints, axis=1, kind="stable"))


def test_median_is_the_lower_one_and_nan_propagates():
    x = bp.tensor([[4.0, 1.0, 3.0, 2.0], [1.0, float("nan"), 0.0, float("nan")]])
    m = x.median(1)
    assert m.values.tolist()[0] == 2.0 and m.indices.tolist()[0] == 3
    assert np.isnan(m.values.tolist()[1]) and m.indices.tolist()[1] == 1
    assert x[0].median().item() == 2.0
    assert bp.tensor([3, 1, 2, 5]).median().item() == 2
    g = bp.tensor([4.0, 1.0, 3.0, 2.0], requires_grad=True)
    g.median().backward()
    assert g.grad.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert x.median(1, keepdim=True).values.shape == (2, 1)


def test_searchsorted_and_bucketize():
    s = bp.tensor([1.0, 3.0, 5.0, 7.0, 9.0])
    v = bp.tensor([[3.0, 6.0, 9.0], [3.0, 6.0, 9.0]])
    assert bp.searchsorted(s, v).tolist() == [[1, 3, 4]] * 2
    assert bp.searchsorted(s, v, right=True).tolist() == [[2, 3, 5]] * 2
    assert bp.searchsorted(s, v, side="right").tolist() == [[2, 3, 5]] * 2
    rows = bp.tensor([[1.0, 3.0, 5.0, 7.0, 9.0], [2.0, 4.0, 6.0, 8.0, 10.0]])
    assert bp.searchsorted(rows, v).tolist() == [[1, 3, 4], [1, 2, 4]]
    unsorted = bp.tensor([5.0, 1.0, 3.0])
    assert bp.searchsorted(unsorted, bp.tensor([2.0]), sorter=unsorted.argsort()).tolist() == [1]
    assert bp.bucketize(bp.tensor([0.0, 3.0, 10.0]), s).tolist() == [0, 1, 5]
    assert bp.bucketize(3.0, s, right=True).item() == 2
    with pytest.raises(ValueError):
        bp.searchsorted(s, v, side="middle")


# ------------------------------------------------------------------ norms


def test_vector_and_matrix_norms_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    t = bp.tensor(a, dtype=bp.float64)
    for o in (2, 1, 3, 0.5, math.inf, -math.inf, 0):
        np.testing.assert_allclose(bp.linalg.vector_norm(t, o).item(), np.linalg.norm(a.ravel(), o), rtol=1e-12)
        np.testing.assert_allclose(bp.linalg.vector_norm(t, o, dim=1).numpy(), np.linalg.norm(a, o, axis=1), rtol=1e-12)
    for o in ("fro", 1, -1, math.inf, -math.inf):
        np.testing.assert_allclose(bp.linalg.matrix_norm(t, o).item(), np.linalg.norm(a, o), rtol=1e-12)
        np.testing.assert_allclose(bp.linalg.norm(t, o).item(), np.linalg.norm(a, o), rtol=1e-12)
    np.testing.assert_allclose(bp.linalg.norm(t).item(), np.linalg.norm(a), rtol=1e-12)
    np.testing.assert_allclose(bp.linalg.norm(t, dim=0).numpy(), np.linalg.norm(a, axis=0), rtol=1e-12)
    np.testing.assert_allclose(t.norm().item(), np.linalg.norm(a), rtol=1e-12)
    np.testing.assert_allclose(t.norm(1, dim=1, keepdim=True).numpy(), np.linalg.norm(a, 1, axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(bp.norm(t, "fro", dim=(0, 1)).item(), np.linalg.norm(a), rtol=1e-12)
    b = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(bp.linalg.matrix_norm(bp.tensor(b), 1, keepdim=True).numpy(), np.linalg.norm(b, 1, axis=(1, 2), keepdims=True), rtol=1e-6)
    for o in ("nuc", 2, -2):  # from the singular values
        np.testing.assert_allclose(bp.linalg.matrix_norm(t, o).item(), np.linalg.norm(a, o), rtol=1e-10)
        np.testing.assert_allclose(bp.linalg.matrix_norm(bp.tensor(b), o, dim=(2, 1), keepdim=True).numpy(),
                                   np.linalg.norm(np.swapaxes(b, 1, 2), o, axis=(1, 2), keepdims=True), rtol=1e-6)
    # the legacy Tensor.norm / bp.norm with p='nuc': the last two dims, or `dim`
    np.testing.assert_allclose(t.norm(p="nuc").item(), np.linalg.norm(a, "nuc"), rtol=1e-10)
    np.testing.assert_allclose(bp.norm(bp.tensor(b), p="nuc").numpy(), np.linalg.norm(b, "nuc", axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(bp.tensor(b).norm("nuc", dim=(0, 2), keepdim=True).numpy(),
                               np.linalg.norm(b, "nuc", axis=(0, 2), keepdims=True), rtol=1e-6)
    with pytest.raises(TypeError, match="floating point"):
        bp.linalg.vector_norm(bp.tensor([1, 2]))


def test_two_norm_gradient_is_zero_at_zero():
    x = bp.zeros(3, dtype=bp.float64, requires_grad=True)
    x.norm().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    y = bp.tensor([3.0, 4.0], dtype=bp.float64, requires_grad=True)
    assert bp.autograd.gradcheck(lambda t: bp.linalg.vector_norm(t), [y])
    assert bp.autograd.gradcheck(lambda t: bp.linalg.matrix_norm(t.reshape(1, 2), 1), [y])


# ------------------------------------------------------------------ the binding's identities


def _accumulate_grad_variables(root):
    seen, keep, out, stack = set(), [], [], [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        keep.append(fn)  # alive, so no id is reused during the walk
        if fn.name() == "AccumulateGrad":
            out.append(fn.variable)
        stack.extend(f for f, _ in fn.next_functions)
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_accumulate_grad_variable_is_the_parameter_object(device):
    d = _dev(device)
    model = bp.nn.Sequential(bp.nn.Linear(3, 4), bp.nn.ReLU(), bp.nn.Linear(4, 2)).to(d)
    loss = model(bp.randn(5, 3, device=d)).sum()
    found = _accumulate_grad_variables(loss)
    params = list(model.parameters())
    assert len(found) == len(params)
    assert {id(v) for v in found} == {id(p) for p in params}
    for v in found:
        assert any(v is p for p in params)
    # the same object on every access, for every way of making a leaf
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    w = bp.ones(2).requires_grad_()
    z = bp.zeros(2)
    z.requires_grad = True
    y = (x * w + z).sum()
    got = _accumulate_grad_variables(y)
    assert {id(v) for v in got} == {id(x), id(w), id(z)}
    fn = (x * 2).grad_fn.next_functions[0][0]
    assert fn.variable is fn.variable is x
    # an object re-pointed with .data is found for graphs built after
    x.data = bp.tensor([5.0, 6.0])
    assert (x * 2).grad_fn.next_functions[0][0].variable is x


def test_gpu_data_ptr_is_unique_and_counts_offsets():
    gpu_or_skip()
    a = bp.zeros(4, 3, device="gpu")
    b = bp.zeros(4, 3, device="gpu")
    assert a.data_ptr() != 0 and b.data_ptr() != 0 and a.data_ptr() != b.data_ptr()
    assert a.data_ptr() == a.data_ptr() == a.view(12).data_ptr()
    assert a[1].data_ptr() == a.data_ptr() + 3 * 4
    assert a[:, 2].data_ptr() == a.data_ptr() + 8
    # ranges of live buffers do not overlap
    lo, hi = sorted([(a.data_ptr(), a.data_ptr() + a.nbytes), (b.data_ptr(), b.data_ptr() + b.nbytes)])
    assert lo[1] <= hi[0]
    assert a.clone().data_ptr() != a.data_ptr()


def test_top_level_names():
    for name in ("atan2", "fmod", "remainder", "frac", "clamp_min", "clamp_max", "tril", "triu", "diagonal", "diag",
                 "trace", "outer", "bmm", "addmm", "baddbmm", "flip", "roll", "tile", "repeat_interleave",
                 "take_along_dim", "masked_fill", "masked_select", "index_fill", "isnan", "isinf", "isfinite",
                 "nan_to_num", "isclose", "allclose", "equal", "lerp", "cumsum", "cumprod", "sort", "argsort", "topk",
                 "kthvalue", "median", "searchsorted", "bucketize", "meshgrid", "norm", "log1p", "expm1", "log2",
                 "log10", "tan", "asin", "acos", "atan", "sinh", "cosh", "floor", "ceil", "round", "trunc"):
        assert callable(getattr(bp, name)), name
    assert callable(bp.linalg.norm) and callable(bp.linalg.vector_norm) and callable(bp.linalg.matrix_norm)


def test_edge_cases_are_errors_not_crashes():
    assert bp.take_along_dim(bp.tensor(3.0), bp.tensor(0)).item() == 3.0
    with pytest.raises((MemoryError, ValueError)):
        bp.tensor([1.0]).repeat_interleave(2**62)
    with pytest.raises(ValueError, match="negative"):
        bp.tensor([1.0, 2.0]).repeat_interleave(bp.tensor([1, -1]))
    with pytest.raises(IndexError):
        bp.ones(2, 2).flip(2)
    with pytest.raises(ValueError, match="multiple times"):
        bp.ones(2, 2).flip(0, 0)
    with pytest.raises(ValueError, match="index out of range"):
        bp.ones(2, 3).index_fill(1, bp.tensor([3]), 0.0)
    with pytest.raises(ValueError, match="k"):
        bp.ones(3).kthvalue(4)
    with pytest.raises(ValueError):
        bp.ones(1, 1, 1).diag()
    assert bp.ones(3).diag(1).shape == (4, 4) and bp.ones(4, 4).diag(-1).shape == (3,)
    assert bp.ones(0).sort().values.shape == (0,)
    assert bp.tensor(2.0).sort().values.item() == 2.0
    assert bp.ones(2, 0).cumsum(1).shape == (2, 0)
