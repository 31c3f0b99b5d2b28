"""Tensor, node and module hooks, with PyTorch's documented order and semantics."""

import gc
import weakref

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn as nn
from backprop_rs.nn.modules import module as module_mod


def test_tensor_hook_replaces_the_gradient_and_chains_in_order():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []
    y.register_hook(lambda g: calls.append(("a", g.tolist())) or g * 2)
    y.register_hook(lambda g: calls.append(("b", g.tolist())))
    y.retain_grad()
    y.sum().backward()
    assert calls == [("a", [1.0, 1.0]), ("b", [2.0, 2.0])]
    # retain_grad sees the hooks' result (PyTorch runs it after the other tensor hooks)
    assert y.grad.tolist() == [2.0, 2.0]
    assert x.grad.tolist() == [6.0, 6.0]


def test_leaf_hook_runs_before_accumulation_and_handle_removes_it():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    h = x.register_hook(lambda g: g * 0 + 7)
    (x * 5).sum().backward()
    assert x.grad.tolist() == [7.0, 7.0]
    h.remove()
    h.remove()
    (x * 5).sum().backward()
    assert x.grad.tolist() == [12.0, 12.0]
    with x.register_hook(lambda g: g * 0) as h2:
        assert h2.id is not None
    (x * 1).sum().backward()
    assert x.grad.tolist() == [13.0, 13.0]


def test_hooks_run_in_autograd_grad_too():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 10)
    (g,) = bp.autograd.grad((x * 2).sum(), x)
    assert g.tolist() == [20.0, 20.0]
    assert x.grad is None


def test_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        bp.ones(2).register_hook(lambda g: g)
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="changed the size"):
        (x * 2).sum().backward()
    y = bp.tensor([1.0], requires_grad=True)
    y.register_hook(lambda g: "nope")
    with pytest.raises(TypeError, match="must return a Tensor or None"):
        (y * 2).sum().backward()
    z = bp.tensor([1.0], requires_grad=True)

    def boom(g):
        raise ValueError("raised in a hook")

    z.register_hook(boom)
    with pytest.raises(ValueError, match="raised in a hook"):
        (z * 2).sum().backward()


def test_post_accumulate_grad_hook_gets_the_same_object():
    p = nn.Parameter(bp.tensor([1.0, 2.0]))
    seen = []
    p.register_post_accumulate_grad_hook(lambda t: seen.append((t is p, t.grad.tolist())))
    (p * 2).sum().backward()
    (p * 2).sum().backward()
    assert seen == [(True, [2.0, 2.0]), (True, [4.0, 4.0])]
    with pytest.raises(RuntimeError, match="non-leaf"):
        (p * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_optimizer_step_in_a_post_accumulate_hook():
    """PyTorch's 'optimizer step in backward' recipe: one optimizer per parameter, stepped from
    the hook; the result equals a plain step."""
    bp.manual_seed(0)
    model = nn.Linear(3, 2)
    ref = nn.Linear(3, 2)
    ref.load_state_dict(model.state_dict())
    opts = {p: bp.optim.SGD([p], lr=0.1) for p in model.parameters()}

    def hook(p):
        opts[p].step()
        opts[p].zero_grad()

    for p in model.parameters():
        p.register_post_accumulate_grad_hook(hook)
    x = bp.randn(4, 3)
    model(x).pow(2).sum().backward()
    ropt = bp.optim.SGD(ref.parameters(), lr=0.1)
    ref(x).pow(2).sum().backward()
    ropt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
        assert a.grad is None


def test_node_hooks():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []

    def pre(gout):
        calls.append(("pre", [g.tolist() for g in gout]))
        return (gout[0] * 10,)

    def post(gin, gout):
        calls.append(("post", [g.tolist() for g in gin if g is not None], [g.tolist() for g in gout]))

    y.grad_fn.register_prehook(pre)
    y.grad_fn.register_hook(post)
    y.sum().backward()
    assert calls == [("pre", [[1.0, 1.0]]), ("post", [[30.0, 30.0]], [[10.0, 10.0]])]
    assert x.grad.tolist() == [30.0, 30.0]


def test_node_hook_can_replace_grad_inputs():
    a = bp.tensor([1.0], requires_grad=True)
    b = bp.tensor([2.0], requires_grad=True)
    c = a * b
    c.grad_fn.register_hook(lambda gin, gout: (gin[0] * 0, gin[1] + 1))
    c.sum().backward()
    assert a.grad.tolist() == [0.0] and b.grad.tolist() == [2.0]


def test_accumulate_grad_node_prehook():
    x = bp.tensor([1.0], requires_grad=True)
    acc = (x * 2).grad_fn.next_functions[0][0]
    assert acc.name() == "AccumulateGrad"
    acc.register_prehook(lambda gout: (gout[0] * 100,))
    (x * 2).sum().backward()
    assert x.grad.tolist() == [200.0]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_module_forward_hooks_order_args_and_replacement():
    bp.manual_seed(0)
    net = Net()
    log = []
    net.fc1.register_forward_pre_hook(lambda m, args: log.append(("pre1", args[0].shape)))
    net.fc1.register_forward_pre_hook(lambda m, args: log.append(("pre0", None)), prepend=True)
    net.fc1.register_forward_hook(lambda m, args, out: log.append(("fwd", out.shape)))
    net.fc2.register_forward_hook(lambda m, args, out: out * 0 + 1)  # replaces the output
    out = net(bp.randn(5, 3))
    assert log == [("pre0", None), ("pre1", (5, 3)), ("fwd", (5, 4))]
    assert out.tolist() == [[1.0, 1.0]] * 5


def test_forward_hooks_with_kwargs_and_pre_hook_changing_args():
    class Scale(nn.Module):
        def forward(self, x, k=1.0):
            return x * k

    m = Scale()
    m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {**kwargs, "k": 10.0}), with_kwargs=True)
    seen = {}
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    assert m(bp.tensor([1.0]), k=2.0).tolist() == [20.0]
    assert seen == {"k": 10.0}


def test_always_call_forward_hook_runs_when_forward_raises():
    class Bad(nn.Module):
        def forward(self, x):
            raise ValueError("bad forward")

    m = Bad()
    ran = []
    m.register_forward_hook(lambda mod, args, out: ran.append(out), always_call=True)
    m.register_forward_hook(lambda mod, args, out: ran.append("never"))
    with pytest.raises(ValueError, match="bad forward"):
        m(bp.ones(1))
    assert ran == [None]


def test_full_backward_hooks_against_manual_gradients():
    bp.manual_seed(0)
    lin = nn.Linear(3, 2)
    x = bp.randn(4, 3, requires_grad=True)
    got = {}

    def pre(m, grad_output):
        got["pre"] = grad_output[0].tolist()

    def hook(m, grad_input, grad_output):
        got["gin"] = grad_input[0].tolist()
        got["gout"] = grad_output[0].tolist()

    lin.register_full_backward_pre_hook(pre)
    lin.register_full_backward_hook(hook)
    out = lin(x)
    (out * bp.tensor([1.0, -2.0])).sum().backward()
    gout = np.tile([1.0, -2.0], (4, 1))
    np.testing.assert_allclose(got["pre"], gout)
    np.testing.assert_allclose(got["gout"], gout)
    np.testing.assert_allclose(got["gin"], gout @ lin.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), got["gin"], rtol=1e-6)


def test_backward_hook_order_through_a_network():
    """Backward hooks fire from the last module to the first; a module's pre-hook before its
    hook."""
    bp.manual_seed(0)
    net = Net()
    log = []
    for name in ("fc1", "act", "fc2"):
        m = getattr(net, name)
        m.register_full_backward_pre_hook(lambda mod, go, n=name: log.append(("pre", n)))
        m.register_full_backward_hook(lambda mod, gi, go, n=name: log.append(("hook", n)))
    net(bp.randn(2, 3, requires_grad=True)).sum().backward()
    assert log == [("pre", "fc2"), ("hook", "fc2"), ("pre", "act"), ("hook", "act"), ("pre", "fc1"), ("hook", "fc1")]


def test_backward_hooks_replace_gradients():
    lin = nn.Linear(2, 2)
    x = bp.randn(3, 2, requires_grad=True)
    lin.register_full_backward_pre_hook(lambda m, go: (go[0] * 0,))
    out = lin(x)
    out.sum().backward()
    assert np.all(x.grad.numpy() == 0) and np.all(lin.weight.grad.numpy() == 0)
    x2 = bp.randn(3, 2, requires_grad=True)
    lin2 = nn.Linear(2, 2)
    lin2.register_full_backward_hook(lambda m, gi, go: (gi[0] * 0 + 5,))
    lin2(x2).sum().backward()
    assert np.all(x2.grad.numpy() == 5)


def test_backward_hook_when_no_input_requires_grad():
    lin = nn.Linear(2, 2)
    got = []
    lin.register_full_backward_hook(lambda m, gi, go: got.append((gi, go[0].shape)))
    lin(bp.randn(3, 2)).sum().backward()
    assert got == [((None,), (3, 2))]
    assert lin.weight.grad is not None


def test_global_module_hooks_and_removal():
    log = []
    h1 = module_mod.register_module_forward_pre_hook(lambda m, a: log.append(("gpre", type(m).__name__)))
    h2 = module_mod.register_module_forward_hook(lambda m, a, o: log.append(("gfwd", type(m).__name__)))
    try:
        lin = nn.Linear(2, 2)
        lin.register_forward_hook(lambda m, a, o: log.append(("fwd", "Linear")))
        lin(bp.ones(1, 2))
    finally:
        h1.remove()
        h2.remove()
    assert log == [("gpre", "Linear"), ("gfwd", "Linear"), ("fwd", "Linear")]
    log.clear()
    lin(bp.ones(1, 2))
    assert log == [("fwd", "Linear")]


def test_module_hook_handles_do_not_keep_modules_alive():
    lin = nn.Linear(2, 2)
    h = lin.register_forward_hook(lambda m, a, o: None)
    ref = weakref.ref(lin)
    del lin
    gc.collect()
    assert ref() is None
    h.remove()
