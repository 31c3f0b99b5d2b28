"""``Tensor.as_strided`` / ``bp.as_strided``: values against NumPy's ``as_strided`` over the same
buffer, gradients against an independent NumPy scatter (``np.add.at`` over storage positions)
and f64 finite differences, aliasing of the storage, and PyTorch's errors."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.autograd import gradcheck, gradgradcheck
from conftest import gpu_or_skip

CASES = [
    # (base shape, how to view the base first, size, stride, storage_offset)
    ((10,), None, (4, 3), (2, 1), None),          # overlapping windows
    ((10,), None, (3, 3), (1, 1), 2),             # windows from an offset
    ((3, 4), None, (4, 3), (1, 4), None),         # a transpose
    ((3, 4), "slice", (2, 2), (4, 1), None),      # relative to a view's own offset
    ((2, 3, 4), None, (2, 2, 2), (12, 4, 2), 1),  # a strided sub-grid
    ((6,), None, (0, 3), (1, 1), None),           # empty
    ((6,), None, (), (), 4),                      # 0-d
]


def _np_view(flat, offset, size, stride):
    itemsize = flat.itemsize
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * itemsize for s in stride])


def _positions(offset, size, stride):
    if not size:
        return np.array([offset])
    grids = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    return (offset + sum(g * s for g, s in zip(grids, stride))).ravel()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_as_strided_values_and_gradient_against_numpy(case):
    shape, how, size, stride, off = CASES[case]
    rng = np.random.default_rng(case)
    base_np = rng.standard_normal(shape)
    x = bp.tensor(base_np, dtype=bp.float64, requires_grad=True)
    src = x[1:] if how == "slice" else x
    start = src.storage_offset() if off is None else off
    y = src.as_strided(size, stride, off)
    assert tuple(y.shape) == size and tuple(y.stride()) == stride and y.storage_offset() == start
    want = _np_view(base_np.ravel(), start, size, stride)
    np.testing.assert_array_equal(y.detach().numpy(), want)
    w = rng.standard_normal(size)
    (y * bp.tensor(w, dtype=bp.float64)).sum().backward()
    # every view element adds its weight at its storage position; x's elements are the whole
    # base here (positions 0..numel), so its gradient is that buffer reshaped
    buf = np.zeros(base_np.size)
    np.add.at(buf, _positions(start, size, stride), np.asarray(w).ravel())
    np.testing.assert_allclose(x.grad.numpy(), buf.reshape(shape), rtol=1e-12, atol=1e-12)
    assert bp.as_strided(x.detach(), size, stride, off).shape == y.shape


def test_as_strided_second_derivative_and_finite_differences():
    x = bp.tensor(np.random.default_rng(1).standard_normal(7), dtype=bp.float64, requires_grad=True)

    def f(t):
        return (t.as_strided((3, 3), (2, 1)) ** 3).sum()

    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))


def test_as_strided_of_an_overlapping_input_shares_the_gradient():
    # x itself aliases (an expand): PyTorch divides each position's gradient among the
    # elements of x at it, so the sum over x's aliases is the position's gradient
    base = bp.tensor([1.0, 2.0], dtype=bp.float64, requires_grad=True)
    x = base.unsqueeze(0).expand(3, 2)
    y = x.as_strided((2,), (1,), 0)
    (y * bp.tensor([5.0, 7.0], dtype=bp.float64)).sum().backward()
    np.testing.assert_allclose(base.grad.numpy(), [5.0, 7.0], rtol=0, atol=1e-12)


def test_as_strided_is_a_view_of_the_storage():
    x = bp.zeros(6)
    y = x.as_strided((2, 2), (3, 1), 1)
    y.fill_(1.0)
    assert x.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert y.data_ptr() == x.data_ptr() + 4


def test_as_strided_errors_as_pytorch():
    x = bp.zeros(6)
    with pytest.raises(RuntimeError, match="size of 28 are out of bounds for storage of size 24"):
        x.as_strided((3, 3), (2, 1))
    with pytest.raises(RuntimeError, match="requiring a storage size of 28"):
        x.as_strided((2,), (1,), 5)
    with pytest.raises(RuntimeError, match="Negative strides"):
        x.as_strided((2,), (-1,))
    with pytest.raises(RuntimeError, match="negative dimension"):
        x.as_strided((-1,), (1,))
    with pytest.raises(RuntimeError, match="mismatch in length of strides and shape"):
        x.as_strided((2, 2), (1,))


def test_as_strided_on_the_gpu_matches_the_cpu():
    gpu_or_skip()
    dev = "gpu"
    a = np.arange(12, dtype=np.float32)
    x = bp.tensor(a, requires_grad=True)
    xg = bp.tensor(a).to(dev).requires_grad_()
    assert xg.device.type == "gpu"
    w = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    for t in (x, xg):
        (t.as_strided((5, 4), (2, 1), 0) * bp.tensor(w).to(t.device)).sum().backward()
    np.testing.assert_array_equal(xg.as_strided((5, 4), (2, 1), 0).detach().cpu().numpy(),
                                  x.as_strided((5, 4), (2, 1), 0).detach().numpy())
    np.testing.assert_allclose(xg.grad.cpu().numpy(), x.grad.numpy(), rtol=1e-6, atol=1e-6)
