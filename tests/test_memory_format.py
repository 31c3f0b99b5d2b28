"""Memory formats (``bp.channels_last``, ``channels_last_3d``, ``contiguous_format``,
``preserve_format``) as PyTorch documents them: the same values in NHWC (NDHWC) storage order,
the logical shape unchanged. Strides are compared with NumPy's: a channels-last tensor has the
strides of ``np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)``.
"""

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F
from backprop_rs.autograd import gradcheck
from conftest import gpu_or_skip


def _np_strides_in(a, order):
    """Element strides of ``a`` copied into the storage order ``order`` (a permutation)."""
    inv = np.argsort(order)
    b = np.ascontiguousarray(a.transpose(order)).transpose(inv)
    return tuple(s // b.itemsize for s in b.strides)


NHWC, NDHWC = (0, 2, 3, 1), (0, 2, 3, 4, 1)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 3, 2, 2), (2, 1, 3, 4), (3, 4, 1, 1)])
def test_channels_last_strides_and_values_match_numpy(shape):
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x = bp.tensor(a)
    y = x.contiguous(memory_format=bp.channels_last)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y.numpy(), a)
    assert y.is_contiguous(memory_format=bp.channels_last)
    if shape == (2, 3, 4, 5):
        assert y.stride() == _np_strides_in(a, NHWC)
        assert not y.is_contiguous()
        assert not x.is_contiguous(memory_format=bp.channels_last)
    # back to row-major gives NumPy's C strides and the same values
    z = y.contiguous()
    assert z.is_contiguous() and z.stride() == tuple(s // 4 for s in a.strides)
    np.testing.assert_array_equal(z.numpy(), a)


def test_channels_last_3d_strides_match_numpy():
    a = np.random.default_rng(1).standard_normal((2, 3, 2, 4, 5))
    y = bp.tensor(a).contiguous(memory_format=bp.channels_last_3d)
    assert y.stride() == _np_strides_in(a, NDHWC)
    assert y.is_contiguous(memory_format=bp.channels_last_3d)
    np.testing.assert_array_equal(y.numpy(), a)


def test_size_one_dims_are_contiguous_in_both_formats():
    # with C == 1 (or H == W == 1) the NCHW and NHWC orders describe the same storage
    for shape in [(2, 1, 3, 4), (2, 3, 1, 1)]:
        x = bp.zeros(shape)
        assert x.is_contiguous() and x.is_contiguous(memory_format=bp.channels_last)


def test_wrong_rank_is_an_error_or_false():
    x = bp.zeros(3, 4, 5)
    assert not x.is_contiguous(memory_format=bp.channels_last)
    with pytest.raises(Exception, match="rank 4"):
        x.contiguous(memory_format=bp.channels_last)
    with pytest.raises(Exception, match="rank 5"):
        bp.zeros(2, 3, 4, 5).contiguous(memory_format=bp.channels_last_3d)
    with pytest.raises(TypeError, match="memory_format"):
        x.contiguous(memory_format="channels_last")


def test_gradient_flows_through_a_layout_change():
    a = np.random.default_rng(2).standard_normal((2, 3, 2, 3))
    x = bp.tensor(a, dtype=bp.float64, requires_grad=True)
    w = bp.tensor(np.random.default_rng(3).standard_normal((2, 3, 2, 3)), dtype=bp.float64)

    def f(t):
        return (t.contiguous(memory_format=bp.channels_last) * w).sin().sum()

    assert gradcheck(f, (x,))
    f(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(a * w.numpy()) * w.numpy(), rtol=1e-12)


def test_to_and_clone_with_memory_format():
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    x = bp.tensor(a)
    y = x.to(memory_format=bp.channels_last)
    assert y.stride() == _np_strides_in(a, NHWC)
    # preserve_format (the default of .to with copy) keeps the layout it is given
    assert y.to(bp.float64).is_contiguous(memory_format=bp.channels_last)
    assert y.to(bp.float64, memory_format=bp.contiguous_format).is_contiguous()
    c = x.clone(memory_format=bp.channels_last)
    assert c.is_contiguous(memory_format=bp.channels_last)
    np.testing.assert_array_equal(c.numpy(), a)
    assert y.clone(memory_format=bp.preserve_format).is_contiguous(memory_format=bp.channels_last)


def test_memory_format_objects():
    assert repr(bp.channels_last) == "backprop_rs.channels_last"
    assert bp.channels_last == bp.channels_last and bp.channels_last != bp.contiguous_format
    assert isinstance(bp.preserve_format, bp.memory_format)
    assert len({bp.channels_last, bp.channels_last, bp.contiguous_format}) == 2


def test_module_to_memory_format_changes_4d_parameters_only():
    m = bp.nn.Sequential(bp.nn.Conv2d(3, 4, 3), bp.nn.Linear(4, 2))
    m.to(memory_format=bp.channels_last)
    assert m[0].weight.is_contiguous(memory_format=bp.channels_last)
    assert not m[0].weight.is_contiguous()
    assert m[1].weight.is_contiguous() and m[0].bias.is_contiguous()
    assert m[0].weight.requires_grad


def test_conv2d_on_channels_last_input_equals_contiguous():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    outs = []
    for fmt in (bp.contiguous_format, bp.channels_last):
        x = bp.tensor(a).contiguous(memory_format=fmt).requires_grad_()
        y = F.conv2d(x, bp.tensor(w), padding=1)
        y.sum().backward()
        outs.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-5, atol=1e-5)


def test_channels_last_on_the_gpu_matches_the_cpu():
    gpu_or_skip()
    a = np.random.default_rng(5).standard_normal((2, 3, 4, 5)).astype(np.float32)
    cpu = bp.tensor(a).contiguous(memory_format=bp.channels_last)
    g = bp.tensor(a, device="gpu").contiguous(memory_format=bp.channels_last)
    assert g.device.type == "gpu"
    assert g.stride() == cpu.stride() and g.is_contiguous(memory_format=bp.channels_last)
    np.testing.assert_array_equal(g.cpu().numpy(), a)
    np.testing.assert_array_equal((g * 2).cpu().numpy(), a * 2)


@pytest.mark.parametrize("make", [
    lambda x, **k: bp.zeros_like(x, **k), lambda x, **k: bp.ones_like(x, **k),
    lambda x, **k: bp.empty_like(x, **k), lambda x, **k: bp.full_like(x, 2.5, **k),
    lambda x, **k: bp.rand_like(x, **k), lambda x, **k: bp.randn_like(x, **k),
])
def test_like_factories_preserve_or_set_the_layout(make):
    a = np.zeros((2, 3, 4, 5), dtype=np.float32)
    cl = bp.tensor(a).contiguous(memory_format=bp.channels_last)
    # preserve_format, the default, keeps a channels-last input's layout (PyTorch's rule)
    assert make(cl).stride() == _np_strides_in(a, NHWC)
    assert make(cl, memory_format=bp.preserve_format).is_contiguous(memory_format=bp.channels_last)
    assert make(cl, memory_format=bp.contiguous_format).is_contiguous()
    assert make(bp.tensor(a), memory_format=bp.channels_last).stride() == _np_strides_in(a, NHWC)
    assert make(bp.tensor(a)).is_contiguous()
    r = make(cl, requires_grad=True)
    assert r.is_leaf and r.requires_grad and r.is_contiguous(memory_format=bp.channels_last)
    with pytest.raises(Exception, match="rank 4"):
        make(bp.zeros(3, 4), memory_format=bp.channels_last)
