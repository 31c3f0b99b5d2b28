"""The graph as objects: grad_fn nodes, next_functions, AccumulateGrad, metadata; grad modes
(thread local, nestable) and inference mode."""

import threading

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn as nn
import backprop_rs.nn.functional as F


def walk(fn, seen, out, depth=0):
    """torchviz's recursion: every node once, depth first over next_functions."""
    if fn is None or fn in seen:
        return
    seen.add(fn)
    extra = f" {tuple(fn.variable.shape)}" if fn.name() == "AccumulateGrad" else ""
    out.append("  " * depth + fn.name() + extra)
    for nxt, _ in fn.next_functions:
        walk(nxt, seen, out, depth + 1)


def test_torchviz_style_walk_of_an_mlp_loss():
    bp.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    loss = F.mse_loss(net(bp.randn(5, 3)), bp.randn(5, 1))
    out = []
    walk(loss.grad_fn, set(), out)
    # The primitives the composites are made of (mse_loss = mean((a - b) * (a - b)), linear =
    # x @ W.T + b): node names are the engine's, not PyTorch's MseLossBackward0/AddmmBackward0.
    assert out == [
        "DivBackward0",
        "  ReshapeBackward0",
        "    SumBackward0",
        "      MulBackward0",
        "        SubBackward0",
        "          AddBackward0",
        "            MatmulBackward0",
        "              ReluBackward0",
        "                AddBackward0",
        "                  MatmulBackward0",
        "                    PermuteBackward0",
        "                      AccumulateGrad (4, 3)",
        "                  ExpandBackward0",
        "                    AccumulateGrad (4,)",
        "              PermuteBackward0",
        "                AccumulateGrad (1, 4)",
        "            ExpandBackward0",
        "              AccumulateGrad (1,)",
    ]
    # every parameter is reached, as the variable of its AccumulateGrad node
    leaves = []

    def collect(fn, seen):
        if fn is None or fn in seen:
            return
        seen.add(fn)
        if fn.name() == "AccumulateGrad":
            leaves.append(fn.variable.data_ptr())
        for n, _ in fn.next_functions:
            collect(n, seen)

    collect(loss.grad_fn, set())
    assert sorted(leaves) == sorted(p.data_ptr() for p in net.parameters())


def test_next_functions_edges():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    c = bp.tensor([3.0, 4.0])
    y = a * c
    (ea, ia), (ec, ic) = y.grad_fn.next_functions
    assert ea.name() == "AccumulateGrad" and ia == 0 and ec is None and ic == 0
    assert ea.variable.data_ptr() == a.data_ptr()
    # identity: the same node is the same object while alive, and equal/hashable
    assert y.grad_fn is y.grad_fn
    z = y.exp()
    assert z.grad_fn.next_functions[0][0] is y.grad_fn
    assert len({y.grad_fn, z.grad_fn.next_functions[0][0]}) == 1
    assert bp.ones(1).grad_fn is None and a.grad_fn is None and a.is_leaf and not y.is_leaf


def test_output_index_of_multi_output_function():
    class Two(bp.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            return ga * 2 + gb * 3

    x = bp.tensor([1.0], requires_grad=True)
    a, b = Two.apply(x)
    y = a + b
    (na, ka), (nb, kb) = y.grad_fn.next_functions
    assert na is nb and na.name() == "TwoBackward" and (ka, kb) == (0, 1)


def test_metadata_lives_with_the_node():
    x = bp.tensor([1.0], requires_grad=True)
    y = x * 2
    y.grad_fn.metadata["tag"] = "scaled"
    assert y.grad_fn.metadata == {"tag": "scaled"}


def test_after_backward_the_node_keeps_its_name():
    x = bp.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    assert y.grad_fn.name() == "ReshapeBackward0"
    with pytest.raises(RuntimeError, match="freed"):
        y.grad_fn.next_functions  # noqa: B018


def test_retain_grad_and_retains_grad():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [4.0, 8.0])


def test_detach_and_data_share_storage_and_version():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    v = y._version
    d.add_(1)
    assert y._version == v + 1 and y.detach().tolist() == [3.0, 5.0]
    assert d.grad_fn is None and not d.requires_grad


def test_grad_modes_nest_and_are_per_thread():
    assert bp.is_grad_enabled()
    with bp.no_grad():
        assert not bp.is_grad_enabled()
        with bp.enable_grad():
            assert bp.is_grad_enabled()
            with bp.set_grad_enabled(False):
                assert not bp.is_grad_enabled()
            assert bp.is_grad_enabled()
        assert not bp.is_grad_enabled()
        seen = []
        t = threading.Thread(target=lambda: seen.append(bp.is_grad_enabled()))
        t.start()
        t.join()
        assert seen == [True]  # another thread has its own grad mode
    assert bp.is_grad_enabled()

    @bp.no_grad()
    def f(x):
        return x * 2

    @bp.enable_grad()
    def g(x):
        return x * 2

    x = bp.ones(1, requires_grad=True)
    assert not f(x).requires_grad
    with bp.no_grad():
        assert g(x).requires_grad


def test_inference_mode():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    assert not bp.is_inference_mode_enabled()
    with bp.inference_mode():
        assert bp.is_inference_mode_enabled() and not bp.is_grad_enabled()
        y = w * 2
        y.add_(1)  # in place inside inference mode is fine
        with bp.inference_mode(False):
            assert not bp.is_inference_mode_enabled() and bp.is_grad_enabled()
        assert bp.is_inference_mode_enabled()
    assert bp.is_grad_enabled() and not bp.is_inference_mode_enabled()
    assert y.is_inference() and not y.requires_grad and not w.is_inference()
    with pytest.raises(RuntimeError, match="inference tensors cannot be saved for backward"):
        w * y
    with pytest.raises(RuntimeError, match="in-place update to an inference tensor"):
        y.add_(1)
    with pytest.raises(RuntimeError, match="inference tensor outside inference_mode"):
        y.requires_grad_(True)
    # an op that does not save it may use it; a clone is a normal tensor
    (w + y).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]
    c = y.clone()
    assert not c.is_inference()
    (w * c).sum().backward()

    @bp.inference_mode
    def predict(x):
        return x * 3

    @bp.inference_mode()
    def predict2(x):
        return x * 3

    assert predict(w).is_inference() and predict2(w).is_inference()
    seen = []
    with bp.inference_mode():
        t = threading.Thread(target=lambda: seen.append(bp.is_inference_mode_enabled()))
        t.start()
        t.join()
    assert seen == [False]


def test_inference_mode_in_a_custom_function_save():
    class Save(bp.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(k)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    with bp.inference_mode():
        k = bp.ones(1)
    with pytest.raises(RuntimeError, match="inference tensors cannot be saved"):
        Save.apply(bp.ones(1, requires_grad=True), k)


def test_backward_with_inputs_accumulates_only_into_them():
    a = bp.tensor([1.0, 2.0], requires_grad=True)
    b = bp.tensor([3.0, 4.0], requires_grad=True)
    h = a * b
    loss = (h * h).sum()
    loss.backward(inputs=[b, h], retain_graph=True)
    assert a.grad is None
    np.testing.assert_allclose(b.grad.numpy(), 2 * (a * b).detach().numpy() * a.detach().numpy())
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.detach().numpy())  # a non-leaf, as in PyTorch
    bp.autograd.backward(loss, inputs=a)
    np.testing.assert_allclose(a.grad.numpy(), 2 * (a * b).detach().numpy() * b.detach().numpy())
    with pytest.raises(RuntimeError, match="cannot be empty"):
        (a * 2).sum().backward(inputs=[])


def test_backward_of_several_roots_is_one_pass():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    calls = []
    h.register_hook(lambda g: calls.append(g.tolist()))
    bp.autograd.backward([(h * 2).sum(), (h * 5).sum()])
    assert calls == [[7.0, 7.0]]  # the hook sees the summed gradient once
    np.testing.assert_allclose(x.grad.numpy(), [21.0, 21.0])
