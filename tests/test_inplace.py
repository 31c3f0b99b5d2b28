"""In-place ops on tensors inside a graph: history rewriting, version counters and PyTorch's
errors. References are the out-of-place computation of the same function and f64 finite
differences."""

import numpy as np
import pytest

import backprop_rs as bp


def grads_of(fn, *arrays):
    xs = [bp.tensor(a, dtype=bp.float64, requires_grad=True) for a in arrays]
    fn(*xs).sum().backward()
    return [x.grad.numpy() for x in xs]


@pytest.mark.parametrize(
    "inplace,outplace",
    [
        (lambda y: y.relu_(), lambda y: y.relu()),
        (lambda y: y.sigmoid_(), lambda y: y.sigmoid()),
        (lambda y: y.tanh_(), lambda y: y.tanh()),
        (lambda y: y.exp_(), lambda y: y.exp()),
        (lambda y: y.mul_(3.0), lambda y: y * 3.0),
        (lambda y: y.add_(2.0, alpha=0.5), lambda y: y + 1.0),
        (lambda y: y.clamp_(-0.5, 0.5), lambda y: y.clamp(-0.5, 0.5)),
    ],
)
def test_inplace_unary_matches_out_of_place(inplace, outplace):
    a = np.array([-1.5, -0.2, 0.3, 2.0])

    def f_in(x):
        y = x * 2
        inplace(y)
        return y * y

    def f_out(x):
        return outplace(x * 2) ** 2

    np.testing.assert_allclose(grads_of(f_in, a)[0], grads_of(f_out, a)[0], rtol=1e-12)


def test_inplace_binary_with_an_operand_that_requires_grad():
    a, w = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])

    def f_in(x, v):
        y = x * 1
        y.mul_(v)  # needs y's old value for v's gradient: it is kept by a copy
        y += v
        return y * y

    def f_out(x, v):
        return (x * v + v) ** 2

    for g_in, g_out in zip(grads_of(f_in, a, w), grads_of(f_out, a, w)):
        np.testing.assert_allclose(g_in, g_out, rtol=1e-12)


def test_grad_fn_changes_with_the_inplace_op():
    x = bp.randn(3, requires_grad=True)
    y = x * 2
    y.relu_()
    assert y.grad_fn is not None and "Relu" in str(y.grad_fn)
    assert not y.is_leaf


def test_modifying_a_saved_value_raises_the_version_error():
    x = bp.randn(3, requires_grad=True)
    z = x.exp()  # exp's backward reads its output
    v = z._version
    z.add_(1)
    assert z._version == v + 1
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*is at version"):
        z.sum().backward()


def test_modifying_an_unsaved_value_is_fine():
    x = bp.randn(3, requires_grad=True)
    y = x + 1  # add does not read its inputs in backward
    w = x * 1
    w.add_(5)
    (y.sum() + w.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_modifying_an_input_saved_by_mul_raises():
    a = bp.randn(3, requires_grad=True)
    b = bp.randn(3)
    c = a * b  # mul saves b for a's gradient
    b.add_(1)
    with pytest.raises(RuntimeError, match="inplace"):
        c.sum().backward()


def test_inplace_on_a_leaf_that_requires_grad_is_refused():
    x = bp.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf"):
        x[0] = 2.0
    with bp.no_grad():
        x.add_(1)  # allowed: the optimiser's path
    np.testing.assert_array_equal(x.detach().numpy(), [2.0, 2.0, 2.0])


def test_recorded_inplace_through_a_view_is_refused():
    x = bp.randn(2, 3, requires_grad=True)
    y = x * 1
    with pytest.raises(RuntimeError, match="view"):
        y[0].mul_(2)


def test_setitem_into_a_graph_tensor_gives_gradients_to_both_sides():
    base = np.arange(6.0).reshape(3, 2)
    val = np.array([10.0, 20.0])

    def f_in(b, v):
        y = b * 1
        y[1] = v
        return y * y

    def f_ref(b, v):
        # y = b with row 1 replaced: the gradient of b's row 1 is 0
        mask = bp.tensor([[1.0], [0.0], [1.0]], dtype=bp.float64)
        y = b * mask + (1 - mask) * v
        return y * y

    for g_in, g_ref in zip(grads_of(f_in, base, val), grads_of(f_ref, base, val)):
        np.testing.assert_allclose(g_in, g_ref, rtol=1e-12)


def test_masked_assignment_with_gradient_to_the_value():
    v = bp.tensor(2.0, requires_grad=True)
    m = bp.zeros(4)
    m[bp.tensor([True, False, True, False])] = v
    (m * bp.arange(4.0)).sum().backward()
    assert v.grad.item() == pytest.approx(0.0 + 2.0)


def test_advanced_index_assignment_matches_numpy():
    a = np.zeros((4, 3))
    t = bp.tensor(a)
    idx = [3, 0]
    a[idx, 1:] = np.array([7.0, 8.0])
    t[bp.tensor(idx), 1:] = bp.tensor([7.0, 8.0], dtype=bp.float64)
    np.testing.assert_array_equal(t.numpy(), a)
    m = a > 5
    a[m] = -1.0
    t[bp.tensor(m)] = -1.0
    np.testing.assert_array_equal(t.numpy(), a)
    with pytest.raises(ValueError, match="broadcast"):
        t[bp.tensor([0, 1])] = bp.ones(5, dtype=bp.float64)


def test_detach_shares_the_version_counter():
    x = bp.ones(3)
    d = x.detach()
    v = x._version
    d.add_(1)
    assert x._version == v + 1
    np.testing.assert_array_equal(x.numpy(), [2.0, 2.0, 2.0])


def test_inplace_result_dtype_rules():
    t = bp.tensor([1, 2])
    with pytest.raises(TypeError, match="can't be cast"):
        t += 0.5
    f = bp.tensor([1.0, 2.0], dtype=bp.float32)
    f += bp.tensor([1.0, 1.0], dtype=bp.float64)  # float into float is allowed
    assert f.dtype == bp.float32 and f.tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="shape"):
        bp.ones(3).add_(bp.ones(2, 3))


@pytest.mark.parametrize(
    "write,ref",
    [
        (lambda y: y.add_(y), lambda x: 2 * x),
        (lambda y: y.mul_(y), lambda x: x * x),
        (lambda y: y.copy_(y * 3), lambda x: 3 * x),
        (lambda y: y.copy_(y.clone().exp()), lambda x: x.exp()),
        (lambda y: y.__setitem__(0, y[0] * 0.1), lambda x: x * bp.tensor([0.1, 1.0], dtype=bp.float64)),
    ],
)
def test_inplace_source_that_reads_the_destination(write, ref):
    # the source's history goes through the destination's *old* node, so no gradient is lost
    a = np.array([-2.0, 3.0])
    got = grads_of(lambda x: (lambda y: (write(y), y)[1])(x * 1), a)[0]
    want = grads_of(ref, a)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_earlier_uses_keep_the_history_they_were_computed_with():
    x = bp.tensor([-2.0, 3.0], dtype=bp.float64, requires_grad=True)
    y = x * 1
    w = y * 5  # recorded before the in-place op: its gradient is 5, relu or not
    y.relu_()
    w.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])


@pytest.mark.parametrize("write", [
    lambda y: y.zero_(), lambda y: y.fill_(3.0), lambda y: y.copy_(bp.tensor([5.0, -1.0])),
    lambda y: y.eq_(2.0),
])
def test_constant_write_into_a_graph_tensor_keeps_it_in_the_graph_with_zero_gradient(write):
    # PyTorch: y stays requires_grad (ZeroBackward0, FillBackward0, CopyBackwards, EqBackward0)
    # and the old history gets a zero gradient, so backward() works and x.grad is zeros, not None
    x = bp.tensor([1.0, float("inf")], requires_grad=True)
    y = x * 2
    expect = write(y.detach().clone()).numpy()
    write(y)
    assert y.requires_grad and y.grad_fn is not None
    np.testing.assert_array_equal(y.detach().numpy(), expect)
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    with bp.no_grad():
        z = (x * 2).detach()
        z.zero_()
    assert not z.requires_grad


@pytest.mark.parametrize("name", ["elu", "selu", "celu", "silu", "mish", "hardswish"])
def test_inplace_smooth_activations_have_exact_second_derivatives(name):
    fn = getattr(bp.nn.functional, name)
    x = bp.tensor([-1.3, -0.2, 0.4, 2.1], dtype=bp.float64, requires_grad=True)
    assert bp.autograd.gradcheck(lambda v: fn(v * 1, inplace=True), [x])
    assert bp.autograd.gradgradcheck(lambda v: fn(v * 1, inplace=True), [x])
