"""The torch.* top-level names of ``namespace.py``: each against NumPy (or, for the renamed
nn.functional forms, against the F function they map to with PyTorch's argument order), with
gradients checked in float64 where PyTorch has them."""

import itertools
import math
import warnings

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F
from backprop_rs.autograd import gradcheck, gradgradcheck

from conftest import gpu_or_skip


def t64(a, requires_grad=False):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=bp.float64, requires_grad=requires_grad)


def close(a, b, tol=1e-10):
    np.testing.assert_allclose(a.detach().numpy() if isinstance(a, bp.Tensor) else a, b, rtol=tol, atol=tol)


def test_constants_are_pythons():
    assert bp.pi == math.pi and bp.e == math.e and bp.inf == math.inf and math.isnan(bp.nan)
    assert bp.newaxis is None
    assert bp.ones(2, 3)[:, bp.newaxis].shape == (2, 1, 3)


# ------------------------------------------------------------------ renamed nn.functional forms


def test_batch_and_instance_norm_take_atens_argument_order(rng):
    x = t64(rng.standard_normal((4, 3, 5)))
    w, b = t64(rng.standard_normal(3)), t64(rng.standard_normal(3))
    rm, rv = t64(rng.standard_normal(3)), t64(rng.random(3) + 0.5)
    close(bp.batch_norm(x, w, b, rm, rv, False, 0.1, 1e-5, True), F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5).numpy())
    # the eval-mode value by hand: (x - mean) / sqrt(var + eps) * w + b
    ref = (x.numpy() - rm.numpy()[:, None]) / np.sqrt(rv.numpy()[:, None] + 1e-5) * w.numpy()[:, None] + b.numpy()[:, None]
    close(bp.batch_norm(x, w, b, rm, rv, False, 0.1, 1e-5, True), ref)
    close(bp.instance_norm(x, w, b, None, None, True, 0.1, 1e-5, True),
          F.instance_norm(x, None, None, w, b, True, 0.1, 1e-5).numpy())


def test_embedding_takes_the_table_first_and_minus_one_means_no_padding(rng):
    w = t64(rng.standard_normal((6, 3)), requires_grad=True)
    idx = bp.tensor([[1, 4], [4, 0]])
    out = bp.embedding(w, idx)
    close(out, w.detach().numpy()[idx.numpy()])
    out.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], np.bincount(idx.numpy().ravel(), minlength=6))
    w.grad = None
    bp.embedding(w, idx, 4).sum().backward()
    assert np.all(w.grad.numpy()[4] == 0) and np.all(w.grad.numpy()[1] == 1)


def test_norms_and_pools_match_their_functional_forms(rng):
    x = t64(rng.standard_normal((2, 4, 6, 6)))
    close(bp.layer_norm(x, [6, 6], None, None, 1e-5, True), F.layer_norm(x, [6, 6]).numpy())
    close(bp.group_norm(x, 2, None, None, 1e-5, True), F.group_norm(x, 2).numpy())
    # stride=[] is ATen's "the kernel size"
    close(bp.max_pool2d(x, (2, 2), []), F.max_pool2d(x, 2).numpy())  # a list kernel, as ATen int[2]
    close(bp.max_pool2d(x, 3, 1, 1), F.max_pool2d(x, 3, 1, 1).numpy())
    seq = x.reshape(2, 4, 36)
    values, idx = bp.max_pool1d_with_indices(seq, 3)
    ref_v, ref_i = F.max_pool1d(seq, 3, return_indices=True)
    close(values, ref_v.numpy())
    np.testing.assert_array_equal(idx.numpy(), ref_i.numpy())
    values, idx = bp.adaptive_max_pool1d(seq, 5)
    close(values, F.adaptive_max_pool1d(seq, 5).numpy())
    assert idx.dtype == bp.int64
    padded = bp.constant_pad_nd(x, [1, 2], 7.0)
    ref = np.pad(x.numpy(), [(0, 0), (0, 0), (0, 0), (1, 2)], constant_values=7.0)
    close(padded, ref)


@pytest.mark.parametrize("code,name", [(0, "none"), (1, "mean"), (2, "sum")])
def test_losses_take_atens_integer_reduction(rng, code, name):
    a, b = t64(rng.standard_normal((5, 4))), t64(rng.standard_normal((5, 4)))
    y = bp.tensor(np.where(rng.random(5) > 0.5, 1.0, -1.0), dtype=bp.float64)
    t01 = t64(rng.random((5, 4)))
    cases = [
        (bp.binary_cross_entropy_with_logits(a, t01, None, None, code),
         F.binary_cross_entropy_with_logits(a, t01, reduction=name)),
        (bp.cosine_embedding_loss(a, b, y, 0.1, code), F.cosine_embedding_loss(a, b, y, 0.1, reduction=name)),
        (bp.hinge_embedding_loss(a, bp.sign(b), 1.0, code), F.hinge_embedding_loss(a, bp.sign(b), 1.0, reduction=name)),
        (bp.margin_ranking_loss(a[:, 0], b[:, 0], y, 0.2, code),
         F.margin_ranking_loss(a[:, 0], b[:, 0], y, 0.2, reduction=name)),
        (bp.poisson_nll_loss(a, t01, True, False, 1e-8, code), F.poisson_nll_loss(a, t01, reduction=name)),
        (bp.triplet_margin_loss(a, b, a * 0.5, 1.0, 2.0, 1e-6, False, code),
         F.triplet_margin_loss(a, b, a * 0.5, reduction=name)),
    ]
    for got, want in cases:
        close(got, want.numpy())
    logp = a.log_softmax(1)
    got = bp.kl_div(logp, t01, code)
    elementwise = t01.numpy() * (np.log(t01.numpy()) - logp.numpy())
    want = {"none": elementwise, "mean": elementwise.mean(), "sum": elementwise.sum()}[name]
    close(got, want)


def test_integer_reduction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="reduction must be 0"):
        bp.hinge_embedding_loss(bp.ones(2), bp.ones(2), 1.0, 3)


def test_feature_dropout_zeroes_whole_channels():
    x = bp.ones(64, 8, 3, 3)
    out = bp.feature_dropout(x, 0.5, True).numpy()
    per_channel = out.reshape(64, 8, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7
    assert bp.feature_dropout(x, 0.5, False) is x


def test_inplace_functional_forms_write_into_the_input(rng):
    a = rng.standard_normal(10)
    x = bp.tensor(a)
    r = bp.threshold_(x, 0.1, -3.0)
    assert r is x
    np.testing.assert_allclose(x.numpy(), np.where(a > 0.1, a, -3.0))
    x = bp.tensor(a)
    bp.celu_(x, 2.0)
    np.testing.assert_allclose(x.numpy(), np.maximum(a, 0) + np.minimum(0, 2.0 * np.expm1(a / 2.0)), rtol=1e-12)


def test_same_order_aliases_are_the_functional_forms(rng):
    x1, x2 = t64(rng.standard_normal((4, 5))), t64(rng.standard_normal((4, 5)))
    ref = (x1.numpy() * x2.numpy()).sum(1) / np.maximum(
        np.linalg.norm(x1.numpy(), axis=1) * np.linalg.norm(x2.numpy(), axis=1), 1e-8)
    close(bp.cosine_similarity(x1, x2), ref)
    close(bp.pairwise_distance(x1, x2), np.linalg.norm(x1.numpy() - x2.numpy() + 1e-6, axis=1))
    img = t64(rng.standard_normal((1, 8, 2, 2)))
    close(bp.pixel_shuffle(img, 2), F.pixel_shuffle(img, 2).numpy())
    w = t64(rng.standard_normal((3, 8, 1, 1)))
    close(bp.conv2d(img, w), np.einsum("nchw,oc->nohw", img.numpy(), w.numpy()[:, :, 0, 0]))


# ------------------------------------------------------------------ creation


@pytest.mark.parametrize("base", [10.0, 2.0, math.e])
def test_logspace_matches_numpy(base):
    got = bp.logspace(-3, 2.5, 12, base=base, dtype=bp.float64)
    np.testing.assert_allclose(got.numpy(), np.logspace(-3, 2.5, 12, base=base), rtol=1e-14)
    assert bp.logspace(0, 1, 3).dtype == bp.get_default_dtype()
    np.testing.assert_allclose(bp.logspace(0, 2, 5).numpy(), np.logspace(0, 2, 5).astype(np.float32), rtol=1e-6)


def test_range_includes_the_end_and_warns():
    with pytest.warns(UserWarning, match="torch.range is deprecated"):
        r = bp.range(0, 1, 0.25)
    np.testing.assert_allclose(r.numpy(), np.arange(0, 1.25, 0.25))
    assert r.dtype == bp.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bp.range(0, 3).shape == (4,)


def test_empty_strided_and_scalar_tensor():
    t = bp.empty_strided((2, 3), (1, 2))
    assert t.shape == (2, 3) and t.stride() == (1, 2)
    t.copy_(bp.arange(6, dtype=bp.float32).reshape(2, 3))
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    s = bp.scalar_tensor(3)
    assert s.ndim == 0 and s.dtype == bp.float32 and s.item() == 3.0
    with pytest.raises(RuntimeError, match="mismatch in length"):
        bp.empty_strided((2, 3), (1,))


def test_asarray_shares_numpy_memory_and_copies_when_asked():
    a = np.arange(6, dtype=np.float32)
    t = bp.asarray(a)
    a[0] = 42.0
    assert t[0].item() == 42.0
    c = bp.asarray(a, copy=True)
    a[1] = -1.0
    assert c[1].item() == 1.0
    x = bp.ones(3)
    assert bp.asarray(x) is x
    assert bp.asarray(x, dtype=bp.float64).dtype == bp.float64
    with pytest.raises(ValueError, match="copy=False"):
        bp.asarray(x, dtype=bp.float64, copy=False)
    assert bp.asarray([1, 2]).dtype == bp.int64 and bp.asarray(3.0).dtype == bp.float32


def test_frombuffer_reads_the_bytes():
    buf = bytearray(np.arange(5, dtype=np.int32).tobytes())
    t = bp.frombuffer(buf, dtype=bp.int32, count=3, offset=4)
    np.testing.assert_array_equal(t.numpy(), [1, 2, 3])


# ------------------------------------------------------------------ maths


def test_pow_takes_a_number_as_the_base(rng):
    e = t64(rng.standard_normal(5), requires_grad=True)
    close(bp.pow(2, e), 2.0 ** e.detach().numpy())
    assert gradcheck(lambda x: bp.pow(3.0, x), (e,))
    np.testing.assert_array_equal(bp.pow(bp.arange(4), 2).numpy(), np.arange(4) ** 2)


@pytest.mark.parametrize("p", [0, 1, 2, 3.5, math.inf])
def test_dist_is_the_norm_of_the_difference(rng, p):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    d = a - b
    ref = {0: np.count_nonzero(d), math.inf: np.abs(d).max()}.get(p, (np.abs(d) ** p).sum() ** (1 / p) if p else 0)
    close(bp.dist(t64(a), t64(b), p), ref)
    close(t64(a).dist(t64(b), p), ref)


def test_renorm_against_numpy_and_gradcheck(rng):
    a = rng.standard_normal((4, 3, 2)) * 2
    got = bp.renorm(t64(a), 2, 1, 1.5)
    norms = np.sqrt((a ** 2).sum(axis=(0, 2), keepdims=True))
    ref = a * np.where(norms > 1.5, 1.5 / (norms + 1e-7), 1.0)
    close(got, ref)
    x = t64(a, requires_grad=True)
    assert gradcheck(lambda t: t.renorm(1, 0, 2.0), (x,))
    assert gradgradcheck(lambda t: t.renorm(2, 2, 1.0), (x,))
    with pytest.raises(RuntimeError, match="non-positive-norm"):
        bp.renorm(x, 0, 0, 1.0)


def test_frexp_ldexp_nextafter_match_numpy(rng):
    a = np.concatenate([rng.standard_normal(20) * 1e3, [0.0, -0.0, 1.0, 0.5, np.inf, -np.inf, 2.0 ** -130]])
    for dt, ndt in ((bp.float32, np.float32), (bp.float64, np.float64)):
        x = bp.tensor(a.astype(ndt), dtype=dt)
        m, e = bp.frexp(x)
        rm, re = np.frexp(a.astype(ndt))
        np.testing.assert_array_equal(m.numpy(), rm)
        np.testing.assert_array_equal(e.numpy(), re)
        assert e.dtype == bp.int32 and m.dtype == dt
        ex = bp.tensor(rng.integers(-10, 10, a.size))
        np.testing.assert_array_equal(bp.ldexp(x, ex).numpy(), np.ldexp(a.astype(ndt), ex.numpy()))
        toward = bp.tensor(rng.standard_normal(a.size).astype(ndt), dtype=dt)
        np.testing.assert_array_equal(bp.nextafter(x, toward).numpy(), np.nextafter(a.astype(ndt), toward.numpy()))
    assert bp.ldexp(bp.tensor([1, 2]), bp.tensor([3, 4])).dtype == bp.float32
    x = t64(rng.standard_normal(6) * 10, requires_grad=True)
    assert gradcheck(lambda t: bp.frexp(t).mantissa, (x,))
    with pytest.raises(RuntimeError, match="derivative for 'nextafter' is not implemented"):
        bp.nextafter(x, bp.zeros(6, dtype=bp.float64)).sum().backward()
    with pytest.raises(RuntimeError, match="only supports floating-point"):
        bp.frexp(bp.arange(3))


def test_angle_and_the_real_tensor_complex_forms(rng):
    a = np.array([-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf])
    # PyTorch's angle of a real number is pi only below zero (NumPy's atan2 also gives pi for -0.0)
    ref = np.where(np.isnan(a), np.nan, np.where(a < 0, np.pi, 0.0))
    np.testing.assert_array_equal(bp.angle(bp.tensor(a, dtype=bp.float64)).numpy(), ref)
    assert bp.angle(bp.tensor([-1, 2])).dtype == bp.float32
    x = t64(rng.standard_normal(4), requires_grad=True)
    bp.angle(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4))
    assert bp.real(x) is x and x.real is x and bp.conj(x) is x and x.resolve_conj() is x
    assert not bp.is_conj(x) and not x.is_neg()
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        x.imag
    with pytest.raises(TypeError, match="complex64"):
        bp.view_as_real(x)


# ------------------------------------------------------------------ vander, combinations, integrals


@pytest.mark.parametrize("N,increasing", [(None, False), (4, True), (2, False), (1, True)])
def test_vander_matches_numpy(rng, N, increasing):
    a = rng.integers(-4, 5, 5)
    np.testing.assert_array_equal(bp.vander(bp.tensor(a), N, increasing).numpy(), np.vander(a, N, increasing))
    x = t64(rng.standard_normal(4), requires_grad=True)
    close(bp.vander(x, N, increasing), np.vander(x.detach().numpy(), N, increasing))
    assert gradcheck(lambda t: bp.vander(t, N, increasing), (x,))
    assert bp.vander(x, 0).shape == (4, 0)


@pytest.mark.parametrize("r,rep", [(1, False), (2, False), (3, True), (4, False), (5, False)])
def test_combinations_match_itertools(r, rep):
    a = np.array([3, 1, 4, 1])
    gen = itertools.combinations_with_replacement if rep else itertools.combinations
    ref = np.array(list(gen(a, r))).reshape(-1, r)
    got = bp.combinations(bp.tensor(a), r, rep)
    np.testing.assert_array_equal(got.numpy(), ref)
    x = t64([1.0, 2.0, 3.0], requires_grad=True)
    bp.combinations(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_trapezoid_and_cumulative_trapezoid_match_numpy(rng):
    y = rng.standard_normal((3, 6))
    xs = np.sort(rng.standard_normal(6))
    trapz = getattr(np, "trapezoid", None) or np.trapz
    close(bp.trapezoid(t64(y)), trapz(y))
    close(bp.trapz(t64(y), dx=0.3, dim=0), trapz(y, dx=0.3, axis=0))
    close(bp.trapezoid(t64(y), t64(xs)), trapz(y, xs))
    xs2 = np.sort(rng.standard_normal((3, 6)), axis=1)
    close(bp.trapezoid(t64(y), t64(xs2)), trapz(y, xs2))
    h = np.diff(xs)
    ref = np.cumsum((y[:, 1:] + y[:, :-1]) * h / 2, axis=1)
    close(bp.cumulative_trapezoid(t64(y), t64(xs)), ref)
    yy, xx = t64(y, requires_grad=True), t64(xs, requires_grad=True)
    assert gradcheck(lambda a, b: bp.trapezoid(a, b), (yy, xx))
    assert gradcheck(lambda a, b: bp.cumulative_trapezoid(a, b), (yy, xx))


@pytest.mark.parametrize("edge_order", [1, 2])
def test_gradient_matches_numpy(rng, edge_order):
    f = rng.standard_normal((5, 7))
    for got, ref in zip(bp.gradient(t64(f), edge_order=edge_order), np.gradient(f, edge_order=edge_order)):
        close(got, ref)
    for got, ref in zip(bp.gradient(t64(f), spacing=[0.5, 2.0], edge_order=edge_order),
                        np.gradient(f, 0.5, 2.0, edge_order=edge_order)):
        close(got, ref)
    coords = np.cumsum(rng.random(7) + 0.1)
    (got,) = bp.gradient(t64(f), spacing=[t64(coords)], dim=1, edge_order=edge_order)
    close(got, np.gradient(f, coords, axis=1, edge_order=edge_order))
    x = t64(f, requires_grad=True)
    assert gradcheck(lambda t: bp.gradient(t, spacing=[t64(coords)], dim=1, edge_order=edge_order)[0], (x,))
    with pytest.raises(RuntimeError, match="at least edge_order\\+1"):
        bp.gradient(t64([1.0, 2.0]), edge_order=2)


def test_unravel_index_matches_numpy_and_wraps_like_pytorch(rng):
    shape = (3, 4, 5)
    idx = rng.integers(0, 60, (2, 6))
    got = bp.unravel_index(bp.tensor(idx), shape)
    for g, r in zip(got, np.unravel_index(idx, shape)):
        np.testing.assert_array_equal(g.numpy(), r)
    wild = np.array([-1, 60, 125, -61])
    for g, r in zip(bp.unravel_index(bp.tensor(wild), shape), np.unravel_index(wild % 60, shape)):
        np.testing.assert_array_equal(g.numpy(), r)
    with pytest.raises(TypeError, match="integer dtype"):
        bp.unravel_index(bp.tensor([1.5]), shape)


# ------------------------------------------------------------------ the *_scatter family


def test_scatter_views_match_numpy_assignment_with_gradients(rng):
    base = rng.standard_normal((4, 5))
    cases = [
        (lambda x, s: bp.select_scatter(x, s, 1, 2), (4,), lambda a, s: a.__setitem__((slice(None), 2), s)),
        (lambda x, s: bp.slice_scatter(x, s, 0, 1, None, 2), (2, 5),
         lambda a, s: a.__setitem__(slice(1, None, 2), s)),
        (lambda x, s: bp.diagonal_scatter(x, s, 1), (4,),
         lambda a, s: a.__setitem__((np.arange(4), np.arange(1, 5)), s)),
        (lambda x, s: bp.as_strided_scatter(x, s, (2, 2), (5, 2), 1), (2, 2),
         lambda a, s: a.reshape(-1).__setitem__([1, 3, 6, 8], s.reshape(-1))),
    ]
    for f, src_shape, ref_set in cases:
        src = rng.standard_normal(src_shape)
        ref = base.copy()
        ref_set(ref, src)
        close(f(t64(base), t64(src)), ref)
        x, s = t64(base, requires_grad=True), t64(src, requires_grad=True)
        assert gradcheck(f, (x, s))
    with pytest.raises(RuntimeError, match="expected src to have a size equal to the slice of self"):
        bp.select_scatter(bp.zeros(2, 3), bp.ones(2), 0, 0)
    assert bp.zeros(2, 3).select_scatter(bp.ones(3), 0, 1).sum().item() == 3.0


def test_split_with_sizes_requires_the_exact_sum():
    parts = bp.split_with_sizes(bp.arange(5), [2, 3])
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3, 4]]
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum exactly to 5"):
        bp.arange(5).split_with_sizes([2, 2])
    assert [p.tolist() for p in bp.unsafe_chunk(bp.arange(4), 2)] == [[0, 1], [2, 3]]


# ------------------------------------------------------------------ control flow and misc


def test_cond_and_while_loop_run_eagerly():
    x = bp.tensor([1.0, 2.0])
    assert bp.cond(x.sum() > 0, lambda t: t * 2, lambda t: t - 1, (x,)).tolist() == [2.0, 4.0]
    assert bp.cond(False, lambda t: t * 2, lambda t: t - 1, (x,)).tolist() == [0.0, 1.0]
    i, acc = bp.while_loop(lambda i, a: i < 5, lambda i, a: (i + 1, a * 2), (bp.tensor(0), bp.tensor(1.0)))
    assert i.item() == 5 and acc.item() == 32.0
    with pytest.raises(RuntimeError, match="single element"):
        bp.cond(bp.ones(2) > 0, lambda: 1, lambda: 2)


def test_misc_tensor_methods():
    x = bp.ones(2, 3, 4)
    assert x.dim_order() == (0, 1, 2) and x.permute(2, 0, 1).dim_order() == (1, 2, 0)
    assert x.layout is bp.strided and not x.is_nested
    assert x.new(2, 5).shape == (2, 5) and x.new(2, 5).dtype == x.dtype
    assert x.new((2, 5)).tolist() == [2.0, 5.0]
    assert x.new_empty_strided((2, 2), (1, 2)).stride() == (1, 2)
    assert bp.typename(x) == "backprop_rs.FloatTensor" and bp.typename(1) == "int"
    assert bp.ger(bp.tensor([1.0, 2.0]), bp.tensor([3.0, 4.0])).tolist() == [[3.0, 4.0], [6.0, 8.0]]
    assert not bp.is_storage(x)


def test_set_default_tensor_type_sets_the_default_dtype():
    try:
        with pytest.warns(UserWarning, match="deprecated"):
            bp.set_default_tensor_type(bp.DoubleTensor)
        assert bp.zeros(1).dtype == bp.float64
        with pytest.warns(UserWarning):
            bp.set_default_tensor_type("torch.FloatTensor")
        assert bp.zeros(1).dtype == bp.float32
        with pytest.raises(TypeError, match="floating-point"):
            bp.set_default_tensor_type(bp.LongTensor)
    finally:
        bp.set_default_dtype(bp.float32)


def test_deterministic_debug_mode_round_trips():
    try:
        bp.set_deterministic_debug_mode("warn")
        assert bp.get_deterministic_debug_mode() == 1 and bp.are_deterministic_algorithms_enabled()
        bp.set_deterministic_debug_mode(0)
        assert bp.get_deterministic_debug_mode() == 0 and not bp.are_deterministic_algorithms_enabled()
    finally:
        bp.use_deterministic_algorithms(False)


def test_composites_on_the_gpu_match_the_cpu(rng):
    gpu_or_skip()
    y = rng.standard_normal((3, 6)).astype(np.float32)
    g = bp.tensor(y).to("gpu")
    np.testing.assert_allclose(bp.trapezoid(g).cpu().numpy(), bp.trapezoid(bp.tensor(y)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(bp.vander(g[0], 3).cpu().numpy(), np.vander(y[0], 3), rtol=1e-5)
    got = bp.select_scatter(g, bp.zeros(3).to("gpu"), 1, 2).cpu().numpy()
    ref = y.copy()
    ref[:, 2] = 0
    np.testing.assert_array_equal(got, ref)
    (gr,) = bp.gradient(g, dim=1)
    np.testing.assert_allclose(gr.cpu().numpy(), np.gradient(y, axis=1), rtol=1e-5, atol=1e-6)
