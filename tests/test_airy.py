"""``bp.special.airy_ai`` against mpmath's arbitrary-precision Airy function (an independent
implementation), region by region, with its gradient (``Ai'``, then ``x Ai``) by mpmath's
derivative and by gradcheck/gradgradcheck, and PyTorch's edge values.

Tolerances: for ``x < 0`` the error is measured against the envelope ``|x|^(-1/4)/sqrt(pi)``
(``|x|^(1/4)/sqrt(pi)`` for ``Ai'``), since near a zero no method keeps relative digits:
``1e-15 (10 + zeta)``, as the phase ``zeta = (2/3)|x|^(3/2)`` carries its own rounding (a few ulp
of ``zeta``); for ``x >= 0`` relative error 1e-12 (the condition number of ``e^-zeta`` grows like
``zeta``, 700 at the top of the range).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gpu_or_skip

import backprop_rs as bp

mp = pytest.importorskip("mpmath")

# the boundaries of each method, both sides, and the interiors
_POINTS = np.concatenate([
    np.linspace(-40.0, -8.0, 41), [-8.0 - 1e-12, -8.0, -7.75, -7.7500001, -2.5 - 1e-12, -2.5, -2.25],
    np.linspace(-7.9, -2.6, 37), np.linspace(-2.5, 2.0, 31), [2.0, 2.0 + 1e-12],
    np.linspace(2.1, 30.0, 29), [50.0, 80.0, 100.0, 103.0, 103.89]])


def _reference(x: np.ndarray, derivative: int = 0) -> np.ndarray:
    mp.mp.dps = 40
    return np.array([float(mp.airyai(mp.mpf(float(v)), derivative)) for v in x])


def _scaled_error(got: np.ndarray, ref: np.ndarray, x: np.ndarray, power: float) -> np.ndarray:
    """The error over the tolerance: below 1 passes."""
    envelope = np.where(x < 0, np.abs(x) ** power / np.sqrt(np.pi), np.abs(ref))
    zeta = 2 / 3 * np.abs(x) ** 1.5
    tol = np.where(x < 0, 1e-15 * (10 + zeta), 1e-12)
    return np.abs(got - ref) / np.where(envelope == 0, 1.0, envelope) / tol


def test_values_against_mpmath():
    got = bp.special.airy_ai(bp.tensor(_POINTS, dtype=bp.float64)).numpy()
    err = _scaled_error(got, _reference(_POINTS), _POINTS, -0.25)
    assert err.max() < 1, _POINTS[err.argmax()]


def test_far_out_values():
    x = np.array([-1e3, -321.5, 1e-300, -1e-300])
    got = bp.special.airy_ai(bp.tensor(x, dtype=bp.float64)).numpy()
    assert np.all(_scaled_error(got, _reference(x), x, -0.25) < 1)


def test_gradient_is_ai_prime_against_mpmath():
    x = bp.tensor(_POINTS, dtype=bp.float64, requires_grad=True)
    bp.special.airy_ai(x).sum().backward()
    err = _scaled_error(x.grad.numpy(), _reference(_POINTS, 1), _POINTS, 0.25)
    assert err.max() < 1, _POINTS[err.argmax()]


def test_second_derivative_is_x_ai():
    x = bp.tensor([-9.0, -4.3, -1.0, 0.5, 3.0], dtype=bp.float64, requires_grad=True)
    (g,) = bp.autograd.grad(bp.special.airy_ai(x).sum(), x, create_graph=True)
    (gg,) = bp.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), _reference(x.detach().numpy(), 2), rtol=1e-12, atol=1e-14)


def test_gradcheck_and_gradgradcheck():
    x = bp.tensor([-10.0, -5.2, -2.6, -0.3, 1.1, 2.5, 6.0], dtype=bp.float64, requires_grad=True)
    assert bp.autograd.gradcheck(bp.special.airy_ai, [x])
    assert bp.autograd.gradgradcheck(bp.special.airy_ai, [x])


def test_edges_as_pytorch():
    x = bp.tensor([float("inf"), float("-inf"), float("nan"), 103.9, 500.0], dtype=bp.float64)
    y = bp.special.airy_ai(x).numpy()
    assert np.isnan(y[:3]).all()  # PyTorch's kernel returns NaN at both infinities
    assert (y[3:] == 0).all()


def test_float32_shape_out_and_integer_input():
    x = np.array([[-3.0, 0.0], [1.5, 7.0]])
    y = bp.special.airy_ai(bp.tensor(x, dtype=bp.float32))
    assert y.dtype == bp.float32 and y.shape == (2, 2)
    np.testing.assert_allclose(y.numpy(), _reference(x.ravel()).reshape(2, 2), rtol=1e-6, atol=1e-7)
    out = bp.empty(2, 2)
    assert bp.special.airy_ai(bp.tensor(x, dtype=bp.float32), out=out) is out
    np.testing.assert_array_equal(out.numpy(), y.numpy())
    ints = bp.special.airy_ai(bp.tensor([0, 1, -2]))
    assert ints.dtype == bp.get_default_dtype()
    np.testing.assert_allclose(ints.numpy(), _reference(np.array([0.0, 1.0, -2.0])), rtol=1e-6)
    assert bp.special.airy_ai(bp.tensor(1.0, dtype=bp.float64)).shape == ()


def test_gpu_parity():
    gpu_or_skip()
    x = bp.tensor([-6.0, -1.0, 0.0, 2.5], requires_grad=True)
    xg = x.detach().to("gpu").requires_grad_()
    y, yg = bp.special.airy_ai(x), bp.special.airy_ai(xg)
    assert yg.device.type == "gpu"
    np.testing.assert_allclose(yg.detach().cpu().numpy(), y.detach().numpy(), rtol=1e-6)
    y.sum().backward()
    yg.sum().backward()
    np.testing.assert_allclose(xg.grad.cpu().numpy(), x.grad.numpy(), rtol=1e-6)
