"""Autograd semantics, compared with what PyTorch does (values from hand-derived formulas)."""

import gc
import weakref

import numpy as np
import pytest

import backprop_rs as bp


def test_leaf_grad_accumulates():
    x = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 3)
    x.grad = None
    (x.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_non_leaf_has_no_grad_unless_retained():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = y * 3
    z.sum().backward()
    assert z.grad is None
    np.testing.assert_allclose(y.grad.numpy(), [3.0, 3.0])
    assert x.is_leaf and not y.is_leaf
    assert y.grad_fn.name() == "MulBackward0"


def test_backward_twice_without_retain_graph_fails_clearly():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]))


def test_backward_non_scalar_needs_gradient():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        y.backward()
    y.backward(bp.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        bp.tensor([1.0]).sum().backward()


def test_no_grad_records_nothing_and_restores():
    x = bp.tensor([1.0], requires_grad=True)
    with bp.no_grad():
        y = x * 2
        assert not bp.is_grad_enabled()
    assert bp.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @bp.no_grad()
    def f(t):
        return t * 3

    @bp.no_grad
    def g(t):
        return t * 3

    assert not f(x).requires_grad and not g(x).requires_grad
    with bp.no_grad():
        with bp.enable_grad():
            assert (x * 2).requires_grad
    with bp.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert bp.is_grad_enabled()


def test_detach_shares_data_but_not_graph():
    x = bp.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad
    x2 = x.detach()
    x2[0] = 5.0  # shares memory with x (as in PyTorch)
    assert x[0].item() == 5.0


def test_autograd_grad_and_second_derivative():
    x = bp.tensor([0.5, -1.0, 2.0], dtype=bp.float64, requires_grad=True)
    y = (x**3).sum()
    (g,) = bp.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    (gg,) = bp.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.detach().numpy())
    assert x.grad is None  # autograd.grad never touches .grad


def test_create_graph_backward_gives_grad_of_grad():
    x = bp.tensor([1.5], dtype=bp.float64, requires_grad=True)
    y = x.sin() * x
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    # d/dx (sin x + x cos x) = 2 cos x - x sin x
    (g2,) = bp.autograd.grad(g.sum(), x)
    xv = 1.5
    np.testing.assert_allclose(g2.numpy(), [2 * np.cos(xv) - xv * np.sin(xv)], rtol=1e-12)


def test_grad_allow_unused():
    x = bp.tensor([1.0], requires_grad=True)
    z = bp.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not used"):
        bp.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = bp.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx.item() == 2.0


def test_int_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        bp.tensor([1, 2]).requires_grad_()


def test_in_place_on_leaf_requiring_grad_is_refused_outside_no_grad():
    w = bp.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w += 1
    with bp.no_grad():
        w -= 0.5 * bp.ones(2)
    np.testing.assert_allclose(w.detach().numpy(), [0.5, 1.5])
    assert w.requires_grad and w.is_leaf


def test_graph_is_freed_after_backward():
    """A weak handle on an intermediate dies when backward frees the graph, and stays alive
    with retain_graph."""
    x = bp.tensor(np.random.rand(100), requires_grad=True)
    gc.collect()  # cyclic garbage of earlier tests must not be freed between the two counts
    live0 = bp._core._live_tensors()
    h = x.exp()
    wr = weakref.ref(h)
    loss = (h * 2).sum()
    del h
    gc.collect()
    assert wr() is None  # the Python wrapper is gone, but the engine tensor lives in the graph
    assert bp._core._live_tensors() > live0
    loss.backward()
    del loss
    gc.collect()
    # x and its .grad are all that remain
    assert bp._core._live_tensors() <= live0 + 1


def test_training_steps_do_not_grow_memory():
    """10^4 optimisation steps: the engine's live tensor count stays flat (no graph leaks)."""
    bp.manual_seed(0)
    w = bp.randn(8, 4, requires_grad=True)
    x = bp.randn(16, 8)
    y = bp.randint(0, 4, (16,))
    counts = []
    for step in range(10_000):
        loss = bp.nn.functional.cross_entropy(x @ w, y)
        loss.backward()
        with bp.no_grad():
            w -= 0.01 * w.grad
        w.grad = None
        if step in (100, 9_999):
            counts.append(bp._core._live_tensors())
    del loss
    assert counts[1] <= counts[0], counts


def test_deep_graph_backward_and_drop_do_not_overflow_the_stack():
    x = bp.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0
    z = x
    for _ in range(100_000):
        z = z + 0.0
    del z  # dropping an un-differentiated 10^5-op chain


def test_leaf_grads_never_share_memory():
    a = bp.ones(3, requires_grad=True)
    b = bp.ones(3, requires_grad=True)
    (a + b).sum().backward()  # both inputs of the add receive the same gradient tensor
    assert a.grad.data_ptr() != b.grad.data_ptr()
    bp.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy())
    np.testing.assert_allclose(np.sqrt((a.grad.numpy() ** 2).sum() * 2), 1.0, rtol=1e-5)


def test_leaf_grad_of_a_transposed_use_is_contiguous():
    w = bp.randn(4, 3, requires_grad=True)
    (bp.randn(2, 3) @ w.T).sum().backward()
    assert w.grad.is_contiguous() and w.grad.shape == (4, 3)


# ------------------------------------------------------------------ anomaly detection


def _log_of_relu(x):
    return (x.relu()).log()  # log(0) = -inf for negative inputs: its backward divides by 0


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_detect_anomaly_names_the_op_and_the_forward_call(device):
    if device == "gpu":
        from conftest import gpu_or_skip

        gpu_or_skip()
    x = bp.tensor([1.0, -1.0, 2.0], device=device, requires_grad=True)
    with bp.autograd.detect_anomaly():
        y = _log_of_relu(x).sum()
        with pytest.raises(RuntimeError) as e:
            y.backward()
    msg = str(e.value)
    assert "LogBackward0" in msg and "returned" in msg and "values in its 0th output" in msg
    assert "Traceback of forward call" in msg and "_log_of_relu" in msg
    assert not bp.autograd.is_anomaly_enabled()
    # without anomaly mode the same backward runs through: relu's backward selects 0 where the
    # input was negative, so the inf of log's backward never reaches x.grad (as in PyTorch)
    x.grad = None
    _log_of_relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, 0.0, 0.5])


def test_detect_anomaly_passes_finite_gradients_and_decorates():
    @bp.autograd.detect_anomaly()
    def step(w):
        (w * w).sum().backward()

    w = bp.tensor([1.0, 2.0], requires_grad=True)
    step(w)
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    bp.autograd.set_detect_anomaly(True)
    assert bp.autograd.is_anomaly_enabled()
    bp.autograd.set_detect_anomaly(False)
    assert not bp.autograd.is_anomaly_enabled()


@pytest.mark.parametrize("device", ["cpu", "gpu"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_gradients_of_many_slices_of_one_tensor(device, create_graph):
    # The engine adds each slice's gradient into its region of the base's collected gradient in
    # place (instead of padding it to the whole base): overlapping slices, strided slices, split,
    # chunk, basic indexing and a direct use of the base must all add up, in any arrival order,
    # and with create_graph the general (differentiable) rule must give the same.
    if device == "gpu":
        from conftest import gpu_or_skip

        gpu_or_skip()
    rng = np.random.default_rng(11)
    a = rng.standard_normal((6, 8)).astype(np.float32)
    ws = [rng.standard_normal(s).astype(np.float32) for s in [(3, 8), (3, 8), (3, 8), (6, 4), (6, 4), (2, 8), (8,)]]
    x = bp.tensor(a, device=device, requires_grad=True)
    w = [bp.tensor(v, device=device) for v in ws]
    parts = [x[0:3], x[1:4], x[::2], *x.chunk(2, 1)]
    parts += [x.split([2, 4], 0)[0], x[5]]
    loss = sum((p * wi).sum() for p, wi in zip(parts, w)) + (x * x).sum()
    (g,) = bp.autograd.grad(loss, [x], create_graph=create_graph)
    want = 2 * a
    want[0:3] += ws[0]
    want[1:4] += ws[1]
    want[::2] += ws[2]
    want[:, :4] += ws[3]
    want[:, 4:] += ws[4]
    want[0:2] += ws[5]
    want[5] += ws[6]
    np.testing.assert_allclose(g.detach().to("cpu").numpy(), want, rtol=1e-6, atol=1e-6)
    if create_graph:
        # d/dx of sum(g * x) = g + x * d g/dx = g + 2 x (the slices' part of g is constant in x)
        (gg,) = bp.autograd.grad((g * x).sum(), [x])
        np.testing.assert_allclose(gg.to("cpu").numpy(), want + 2 * a, rtol=1e-5, atol=1e-5)
