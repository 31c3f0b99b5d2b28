"""The in-place view ops (``t_``, ``transpose_``, ``swapaxes_``/``swapdims_``, ``squeeze_``,
``unsqueeze_``): the object itself becomes the view, shares its storage, and gradients flow
through it; against NumPy's views of the same data."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp


def test_the_object_becomes_a_view_of_the_same_storage():
    base = bp.arange(6.0)
    x = base.view(2, 3)
    same = x
    assert x.t_() is same
    assert x.shape == (3, 2)
    np.testing.assert_array_equal(x.numpy(), np.arange(6.0).reshape(2, 3).T)
    x[0, 1] = 99.0  # [0, 1] of the transpose is [1, 0] of the original: flat index 3
    assert base.tolist() == [0.0, 1.0, 2.0, 99.0, 4.0, 5.0]


@pytest.mark.parametrize("op,args,ref", [
    ("transpose_", (0, 2), lambda a: np.swapaxes(a, 0, 2)),
    ("swapaxes_", (1, -1), lambda a: np.swapaxes(a, 1, -1)),
    ("swapdims_", (0, 1), lambda a: np.swapaxes(a, 0, 1)),
    ("unsqueeze_", (-1,), lambda a: a[..., None]),
    ("unsqueeze_", (1,), lambda a: a[:, None]),
    ("squeeze_", (), lambda a: a.squeeze()),
    ("squeeze_", (1,), lambda a: a.squeeze(1)),
    ("squeeze_", ((1, 3),), lambda a: a.squeeze((1, 3))),
])
def test_shapes_and_values_against_numpy(op, args, ref):
    a = np.random.default_rng(0).normal(size=(2, 1, 3, 1))
    t = bp.tensor(a)
    assert getattr(t, op)(*args) is t
    np.testing.assert_array_equal(t.numpy(), ref(a).astype(t.numpy().dtype))


def test_gradients_flow_through_the_view():
    rng = np.random.default_rng(1)
    w = bp.tensor(rng.normal(size=(2, 3)), dtype=bp.float64, requires_grad=True)
    c = rng.normal(size=(3, 1, 2))
    h = w * 2.0
    h.t_()
    h.unsqueeze_(1)
    (h * bp.tensor(c, dtype=bp.float64)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2.0 * c[:, 0, :].T, rtol=1e-15)


def test_a_leaf_that_requires_grad_is_refused():
    p = bp.zeros(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"x = x.t\(\.\.\.\)"):
        p.t_()
    with pytest.raises(RuntimeError, match="unsqueeze_"):
        p.unsqueeze_(0)
    assert p.shape == (2, 3) and p.is_leaf  # nothing changed
    q = p.detach()
    q.t_()
    assert q.shape == (3, 2)
