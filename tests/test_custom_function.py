"""Custom autograd Functions (bp.autograd.Function) against PyTorch's documented semantics, with
references computed independently in NumPy."""

import gc
import math
import weakref

import numpy as np
import pytest

import backprop_rs as bp
from conftest import gpu_or_skip
from backprop_rs.autograd import Function, once_differentiable


class LegendrePolynomial3(Function):
    """PyTorch's tutorial Function: P3(x) = (5x^3 - 3x) / 2."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def test_legendre_tutorial_training_matches_numpy():
    """The tutorial's loop (fit sin on [-pi, pi] with a + b P3(c + d x)), unchanged but for the
    import and a shorter run, against the same loop with hand-derived gradients in NumPy."""
    steps, lr = 300, 5e-6
    x = bp.linspace(-math.pi, math.pi, 2000, dtype=bp.float64)
    y = bp.sin(x)
    a = bp.full((), 0.0, dtype=bp.float64, requires_grad=True)
    b = bp.full((), -1.0, dtype=bp.float64, requires_grad=True)
    c = bp.full((), 0.0, dtype=bp.float64, requires_grad=True)
    d = bp.full((), 0.3, dtype=bp.float64, requires_grad=True)
    for _ in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with bp.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
            c -= lr * c.grad
            d -= lr * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None

    xn = np.linspace(-math.pi, math.pi, 2000)
    yn = np.sin(xn)
    p = np.array([0.0, -1.0, 0.0, 0.3])
    for _ in range(steps):
        u = p[2] + p[3] * xn
        p3 = 0.5 * (5 * u ** 3 - 3 * u)
        r = 2 * (p[0] + p[1] * p3 - yn)
        dp3 = 1.5 * (5 * u ** 2 - 1)
        g = np.array([r.sum(), (r * p3).sum(), (r * p[1] * dp3).sum(), (r * p[1] * dp3 * xn).sum()])
        p = p - lr * g
    got = np.array([a.item(), b.item(), c.item(), d.item()])
    np.testing.assert_allclose(got, p, rtol=1e-9, atol=1e-12)
    assert y_pred.grad_fn.name() == "AddBackward0"


def test_grad_fn_is_the_function_node():
    x = bp.tensor([0.5, -1.0], requires_grad=True)
    y = LegendrePolynomial3.apply(x)
    assert y.grad_fn.name() == "LegendrePolynomial3Backward"
    assert "grad_fn=<LegendrePolynomial3Backward>" in repr(y)
    ((acc, i),) = y.grad_fn.next_functions
    assert acc.name() == "AccumulateGrad" and i == 0
    assert acc.variable.data_ptr() == x.data_ptr() and acc.variable.requires_grad


def test_gradcheck_and_gradgradcheck_on_custom_functions():
    x = bp.tensor(np.linspace(-1.2, 1.3, 7), dtype=bp.float64, requires_grad=True)
    assert bp.autograd.gradcheck(LegendrePolynomial3.apply, (x,))
    # the backward is written with differentiable ops: second derivatives work too
    assert bp.autograd.gradgradcheck(LegendrePolynomial3.apply, (x,))


def test_second_derivative_through_custom_backward():
    xs = np.array([-0.7, 0.2, 1.3])
    x = bp.tensor(xs, dtype=bp.float64, requires_grad=True)
    (g,) = bp.autograd.grad(LegendrePolynomial3.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 1.5 * (5 * xs ** 2 - 1), rtol=1e-12)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 15 * xs, rtol=1e-12)


class MulConst(Function):
    """Non-tensor argument, needs_input_grad, and a non-tensor output."""

    @staticmethod
    def forward(ctx, x, k, y):
        ctx.k = k
        ctx.save_for_backward(x, y)
        ctx.needs = ctx.needs_input_grad
        return x * y * k, "label"

    @staticmethod
    def backward(ctx, g, g_label):
        assert g_label is None
        x, y = ctx.saved_tensors
        gx = g * y * ctx.k if ctx.needs_input_grad[0] else None
        gy = g * x * ctx.k if ctx.needs_input_grad[2] else None
        return gx, None, gy


def test_non_tensor_arguments_and_outputs():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = bp.tensor([3.0, 5.0])
    out, label = MulConst.apply(x, 2.5, y)
    assert label == "label"
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.5, 12.5])
    assert y.grad is None


def test_needs_input_grad_reflects_grad_mode():
    x = bp.tensor([1.0], requires_grad=True)
    seen = []

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen.append(ctx.needs_input_grad)
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g, g

    Probe.apply(x, bp.tensor([2.0]))
    with bp.no_grad():
        r = Probe.apply(x, bp.tensor([2.0]))
    assert seen == [(True, False), (False, False)]
    assert not r.requires_grad and r.grad_fn is None


class SplitTwo(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, ga, gb):
        out = None
        if ga is not None:
            out = ga * 2
        if gb is not None:
            out = gb * 3 if out is None else out + gb * 3
        return out


def test_several_outputs_one_node_and_materialize_grads():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    a, b = SplitTwo.apply(x)
    assert a.grad_fn is b.grad_fn
    (a.sum() * 4 + b.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [11.0, 11.0])
    # only one output used: with set_materialize_grads(False) the other arrives as None
    x.grad = None
    a, b = SplitTwo.apply(x)
    b.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_default_materializes_missing_gradients_as_zeros():
    got = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            return x + 1, x - 1

        @staticmethod
        def backward(ctx, ga, gb):
            got.append((ga.numpy().tolist(), gb.numpy().tolist()))
            return ga + gb

    x = bp.tensor([1.0, 2.0], requires_grad=True)
    a, _ = Two.apply(x)
    a.sum().backward()
    assert got == [([1.0, 1.0], [0.0, 0.0])]


class ArgSortish(Function):
    @staticmethod
    def forward(ctx, x):
        idx = x.argmax(0, keepdim=True)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        return x.max(), idx

    @staticmethod
    def backward(ctx, g, g_idx):
        (idx,) = ctx.saved_tensors
        out = bp.zeros(3)
        out[idx] = g
        return out


def test_mark_non_differentiable():
    x = bp.tensor([1.0, 5.0, 2.0], requires_grad=True)
    m, idx = ArgSortish.apply(x)
    assert m.requires_grad and not idx.requires_grad and idx.grad_fn is None
    m.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1.0, 0.0])


class MulTwoInplace(Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_mark_dirty_rewrites_the_input_history():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    h = w * 3
    version = h._version
    out = MulTwoInplace.apply(h)
    assert out is h and h.grad_fn.name() == "MulTwoInplaceBackward" and h._version > version
    np.testing.assert_allclose(h.detach().numpy(), [6.0, 12.0])
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0, 6.0])
    # a leaf that requires grad cannot be modified in place
    with pytest.raises(RuntimeError, match="leaf"):
        MulTwoInplace.apply(bp.tensor([1.0], requires_grad=True))


def test_returning_an_input_makes_an_alias_keeping_the_input_history():
    class Ident(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 10

    x = bp.tensor([1.0], requires_grad=True)
    h = x * 2
    y = Ident.apply(h)
    assert y is not h and h.grad_fn.name() == "MulBackward0" and y.grad_fn.name() == "IdentBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [20.0])


def test_saved_tensor_modified_in_place_raises_pytorch_message():
    x = bp.tensor([0.5, 1.5], requires_grad=True)
    h = x * 1
    y = LegendrePolynomial3.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*LegendrePolynomial3Backward.*is at version 1; expected version 0"):
        y.sum().backward()


def test_saved_tensors_are_freed_after_backward():
    x = bp.tensor([0.5], requires_grad=True)
    y = LegendrePolynomial3.apply(x * 1)
    y.backward(bp.ones(1), retain_graph=True)
    assert len(y.grad_fn.saved_tensors) == 1
    y.backward(bp.ones(1))
    np.testing.assert_allclose(x.grad.numpy(), [2 * 1.5 * (5 * 0.25 - 1)], rtol=1e-6)
    with pytest.raises(RuntimeError, match="freed"):
        y.grad_fn.saved_tensors  # noqa: B018
    # a second graph over the same node (y used again after its backward) finds it freed
    with pytest.raises(RuntimeError, match="second time"):
        (y * 2).sum().backward()


def test_saving_an_output_makes_no_reference_cycle():
    class ExpF(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    x = bp.tensor([0.0, 1.0], dtype=bp.float64, requires_grad=True)
    y = ExpF.apply(x)
    ref = weakref.ref(y)
    # double backward through the saved output (it gets its history back when unpacked)
    (g,) = bp.autograd.grad(y.sum(), x, create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.0, 1.0]), rtol=1e-12)
    del y, g
    gc.collect()
    assert ref() is None


def test_wrong_gradient_count_and_shape_errors():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return bp.ones(5)

    class Broadcast(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return bp.ones(4, 3)  # sums down to x's shape (3,), as in PyTorch

    x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"incorrect number of gradients \(expected 1, got 2\)"):
        Bad.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
        BadShape.apply(x).sum().backward()
    Broadcast.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])


def test_exception_in_backward_propagates_unchanged():
    class Boom(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            raise KeyError("from backward")

    x = bp.tensor([1.0], requires_grad=True)
    with pytest.raises(KeyError, match="from backward"):
        Boom.apply(x).sum().backward()


def test_once_differentiable():
    class Sq(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = bp.tensor([3.0], dtype=bp.float64, requires_grad=True)
    Sq.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])
    # d/dx (x^2)^2 = 2 x^2 * 2x; the incoming gradient 2 x^2 requires grad under create_graph,
    # so the result carries the node that refuses a second differentiation (as in PyTorch,
    # which looks at the incoming gradients only)
    (g,) = bp.autograd.grad((Sq.apply(x) ** 2).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [108.0])
    assert g.requires_grad
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_setup_context_style():
    class Cube(Function):
        @staticmethod
        def forward(x):
            return x ** 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g

    x = bp.tensor([2.0], dtype=bp.float64, requires_grad=True)
    Cube.apply(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [12.0])
    assert bp.autograd.gradcheck(Cube.apply, (bp.tensor([0.3, -1.1], dtype=bp.float64, requires_grad=True),))


def test_legacy_names():
    v = bp.autograd.Variable(bp.tensor([1.0, 2.0]), requires_grad=True)
    assert isinstance(v, bp.Tensor) and v.requires_grad and isinstance(bp.ones(1), bp.autograd.Variable)
    bp.autograd.backward([(v * 2).sum()])
    np.testing.assert_allclose(v.grad.numpy(), [2.0, 2.0])
    with pytest.raises(RuntimeError, match="Legacy"):
        LegendrePolynomial3()(v)


def test_custom_function_on_gpu():
    gpu_or_skip()
    x = bp.tensor([0.5, -0.25], requires_grad=True)
    xg = x.detach().to("gpu").requires_grad_(True)
    y = LegendrePolynomial3.apply(xg)
    assert y.device.type == "gpu"
    y.sum().backward()
    np.testing.assert_allclose(xg.grad.cpu().numpy(), 1.5 * (5 * x.detach().numpy() ** 2 - 1), rtol=1e-6)
