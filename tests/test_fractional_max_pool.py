"""``F.fractional_max_pool2d/3d`` and ``nn.FractionalMaxPool2d/3d`` against a reference written
here as PyTorch's CPU kernel reads (a scalar loop per plane: the interval sequence in the input's
dtype, then a row-major scan keeping ``val > max or isnan(val)``), its backward (the output
gradient added at each window's winner), gradcheck and gradgradcheck in float64, the draw of
the samples, and the argument errors. Exact equality: both sides pick elements, no arithmetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import gpu_or_skip

import backprop_rs as bp

F = bp.nn.functional


def _intervals(u, size: int, out: int, pool: int, dtype) -> list:
    seq = [0] * out
    if out > 1:
        alpha = dtype(size - pool) / dtype(out - 1)
        for i in range(out - 1):
            seq[i] = int((dtype(i) + dtype(u)) * alpha) - int(dtype(u) * alpha)
    seq[out - 1] = size - pool
    return seq


def _reference(x: np.ndarray, pool: tuple, out: tuple, samples: np.ndarray) -> tuple:
    """Output and indices of a batched input; ``samples`` columns in PyTorch's order."""
    nd = len(pool)
    dtype = x.dtype.type
    n, c, *sizes = x.shape
    cols = (1, 0) if nd == 2 else (0, 1, 2)
    y = np.empty((n, c) + out, x.dtype)
    idx = np.empty((n, c) + out, np.int64)
    for b, ch in itertools.product(range(n), range(c)):
        seqs = [_intervals(samples[b, ch, cols[d]], sizes[d], out[d], pool[d], dtype) for d in range(nd)]
        plane = x[b, ch].reshape(-1)
        for o in itertools.product(*[range(v) for v in out]):
            start = [seqs[d][o[d]] for d in range(nd)]
            best, best_i = -np.inf, int(np.ravel_multi_index(start, sizes))
            for k in itertools.product(*[range(p) for p in pool]):
                i = int(np.ravel_multi_index([start[d] + k[d] for d in range(nd)], sizes))
                v = plane[i]
                if v > best or np.isnan(v):
                    best, best_i = v, i
            y[(b, ch) + o], idx[(b, ch) + o] = best, best_i
    return y, idx


def _grad_reference(x_shape: tuple, idx: np.ndarray, g: np.ndarray) -> np.ndarray:
    n, c = x_shape[:2]
    out = np.zeros((n, c, int(np.prod(x_shape[2:]))))
    for b, ch in itertools.product(range(n), range(c)):
        np.add.at(out[b, ch], idx[b, ch].reshape(-1), g[b, ch].reshape(-1))
    return out.reshape(x_shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool,out", [((2, 3, 9, 7), (2, 3), (4, 3)), ((1, 2, 6, 6), (3, 3), (4, 4)),
                                            ((2, 1, 11, 5), (2, 2), (10, 4)), ((1, 1, 4, 4), (1, 1), (1, 1))])
def test_2d_matches_pytorchs_kernel(dtype, shape, pool, out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = x[0, 0, 1, 1]  # a tie
    u = rng.random((shape[0], shape[1], 2)).astype(dtype)
    y, i = F.fractional_max_pool2d(bp.tensor(x), pool, output_size=out, return_indices=True,
                                   _random_samples=bp.tensor(u))
    ry, ri = _reference(x, pool, out, u)
    np.testing.assert_array_equal(i.numpy(), ri)
    np.testing.assert_array_equal(y.numpy(), ry)
    assert y.dtype == bp.tensor(x).dtype and i.dtype == bp.int64


def test_nan_wins_the_window_and_the_last_nan_is_kept():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan
    u = np.full((1, 1, 2), 0.3)
    y, i = F.fractional_max_pool2d(bp.tensor(x), 2, output_size=2, return_indices=True, _random_samples=bp.tensor(u))
    ry, ri = _reference(x, (2, 2), (2, 2), u)
    np.testing.assert_array_equal(i.numpy(), ri)
    assert i.numpy()[0, 0, 0, 0] == 5 and np.isnan(y.numpy()[0, 0, 0, 0])


def test_output_ratio_and_unbatched_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10, 8))
    u = rng.random((1, 3, 2))
    y = F.fractional_max_pool2d(bp.tensor(x), (2, 2), output_ratio=(0.5, 0.75), _random_samples=bp.tensor(u))
    assert tuple(y.shape) == (3, 5, 6)
    np.testing.assert_array_equal(y.numpy(), _reference(x[None], (2, 2), (5, 6), u)[0][0])


def test_3d_matches_pytorchs_kernel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 7, 6, 8)).astype(np.float32)
    u = rng.random((2, 2, 3)).astype(np.float32)
    y, i = F.fractional_max_pool3d(bp.tensor(x), (2, 3, 2), output_size=(5, 3, 4), return_indices=True,
                                   _random_samples=bp.tensor(u))
    ry, ri = _reference(x, (2, 3, 2), (5, 3, 4), u)
    np.testing.assert_array_equal(i.numpy(), ri)
    np.testing.assert_array_equal(y.numpy(), ry)


def test_gradient_adds_at_the_winners():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 8, 8))
    u = rng.random((2, 2, 2))
    t = bp.tensor(x, requires_grad=True)
    y, i = F.fractional_max_pool2d(t, 3, output_size=6, return_indices=True, _random_samples=bp.tensor(u))
    g = rng.standard_normal(tuple(y.shape))
    y.backward(bp.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), _grad_reference(x.shape, i.numpy(), g), rtol=1e-15)
    # overlapping 3x3 windows at stride about 1 send several output gradients to one input
    assert (np.abs(t.grad.numpy()) > 0).sum() < y.numel()


def test_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(4)
    x = bp.tensor(rng.standard_normal((1, 2, 6, 5)), requires_grad=True)
    u = bp.tensor(rng.random((1, 2, 2)))
    f = lambda t: F.fractional_max_pool2d(t, 2, output_size=(4, 3), _random_samples=u)  # noqa: E731
    assert bp.autograd.gradcheck(f, [x])
    assert bp.autograd.gradgradcheck(f, [x])
    x3 = bp.tensor(rng.standard_normal((1, 1, 4, 4, 4)), requires_grad=True)
    u3 = bp.tensor(rng.random((1, 1, 3)))
    assert bp.autograd.gradcheck(lambda t: F.fractional_max_pool3d(t, 2, output_size=3, _random_samples=u3), [x3])


def test_samples_are_drawn_as_rand_n_c_dims():
    x = bp.randn(2, 3, 9, 9)
    bp.manual_seed(11)
    a = F.fractional_max_pool2d(x, 2, output_size=5)
    bp.manual_seed(11)
    b = F.fractional_max_pool2d(x, 2, output_size=5, _random_samples=bp.rand(2, 3, 2))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_modules():
    u = bp.rand(1, 2, 2)
    m = bp.nn.FractionalMaxPool2d(3, output_ratio=0.5, return_indices=True, _random_samples=u)
    assert "_random_samples" in dict(m.named_buffers()) and repr(m) == "FractionalMaxPool2d()"
    x = bp.randn(1, 2, 12, 10)
    y, i = m(x)
    ry, ri = F.fractional_max_pool2d(x, 3, output_size=(6, 5), return_indices=True, _random_samples=u)
    np.testing.assert_array_equal(y.numpy(), ry.numpy())
    np.testing.assert_array_equal(i.numpy(), ri.numpy())
    m3 = bp.nn.FractionalMaxPool3d(2, output_size=(3, 3, 3))
    assert tuple(m3(bp.randn(2, 1, 5, 6, 7)).shape) == (2, 1, 3, 3, 3)
    with pytest.raises(ValueError, match="requires specifying either an output size, or a pooling ratio"):
        bp.nn.FractionalMaxPool2d(2)
    with pytest.raises(ValueError, match="only one of output_size and output_ratio"):
        bp.nn.FractionalMaxPool2d(2, output_size=3, output_ratio=0.5)
    with pytest.raises(ValueError, match="output_ratio must be between 0 and 1"):
        bp.nn.FractionalMaxPool2d(2, output_ratio=1.5)


def test_errors():
    x = bp.randn(1, 1, 5, 5)
    with pytest.raises(RuntimeError, match="pool height 3 too large relative to input height 5"):
        F.fractional_max_pool2d(x, 3, output_size=(4, 2))
    with pytest.raises(ValueError, match="either an output_size or an output_ratio"):
        F.fractional_max_pool2d(x, 2)
    with pytest.raises(RuntimeError, match="3D or 4D"):
        F.fractional_max_pool2d(bp.randn(5, 5), 2, output_size=2)
    with pytest.raises(RuntimeError, match="not implemented for 'int64'"):
        F.fractional_max_pool2d(bp.ones(1, 1, 5, 5, dtype=bp.int64), 2, output_size=2)
    with pytest.raises(RuntimeError, match=r"_random_samples of shape \[1, 1, 2\]"):
        F.fractional_max_pool2d(x, 2, output_size=2, _random_samples=bp.rand(1, 1, 3))


def test_gpu_parity():
    gpu_or_skip()
    x = bp.randn(2, 2, 8, 8, requires_grad=True)
    u = bp.rand(2, 2, 2)
    xg = x.detach().to("gpu").requires_grad_()
    y = F.fractional_max_pool2d(x, 2, output_size=5, _random_samples=u)
    yg = F.fractional_max_pool2d(xg, 2, output_size=5, _random_samples=u.to("gpu"))
    assert yg.device.type == "gpu"
    np.testing.assert_array_equal(yg.detach().cpu().numpy(), y.detach().numpy())
    y.sum().backward()
    yg.sum().backward()
    np.testing.assert_allclose(xg.grad.cpu().numpy(), x.grad.numpy())
