"""The reparameterised gamma draw's derivative with respect to its shape (``Gamma.rsample`` and
everything built on it: Beta, Dirichlet, Chi2, StudentT, FisherSnedecor).

References, independent of the implementation:
- per draw, the derivative of the inverse CDF at fixed probability, ``x(a) = P^-1(a, u)`` with
  ``u = P(a, x)``, by mpmath's arbitrary-precision incomplete gamma function and numerical
  differentiation (tolerance 1e-10 relative in float64);
- in distribution, the pathwise estimator is unbiased: the mean over draws of the derivative
  equals the derivative of the closed-form moment (bounds of 5 standard errors under a fixed
  seed).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gpu_or_skip

import backprop_rs as bp

mp = pytest.importorskip("mpmath")
D = bp.distributions


def _mp_dx_da(a: float, x: float) -> float:
    """``-(dP/da) / f`` at ``(a, x)`` with 30 significant digits."""
    mp.mp.dps = 30
    dp = mp.diff(lambda s: mp.gammainc(s, 0, x, regularized=True), a)
    f = mp.mpf(x) ** (a - 1) * mp.exp(-x) / mp.gamma(a)
    return float(-dp / f)


@pytest.mark.parametrize("a", [0.05, 0.7, 1.0, 3.5, 40.0, 900.0])
def test_each_draw_moves_along_its_quantile(a):
    conc = bp.full((6,), a, dtype=bp.float64, requires_grad=True)
    x = D.Gamma(conc, 1.0).rsample()
    x.sum().backward()
    got = conc.grad.numpy()
    ref = np.array([_mp_dx_da(a, float(v)) for v in x.detach().numpy()])
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_rate_and_sample_shape_broadcast_into_the_gradient():
    conc = bp.tensor([0.5, 2.0, 8.0], dtype=bp.float64, requires_grad=True)
    rate = bp.tensor([3.0, 0.5, 1.0], dtype=bp.float64)
    x = D.Gamma(conc, rate).rsample((4,))
    assert x.shape == (4, 3)
    w = bp.arange(12, dtype=bp.float64).reshape(4, 3)
    (x * w).sum().backward()
    xs = x.detach().numpy() * rate.numpy()  # the standard draws
    per = np.array([[_mp_dx_da(float(c), float(v)) for c, v in zip(conc.detach().numpy(), row)] for row in xs])
    np.testing.assert_allclose(conc.grad.numpy(), (w.numpy() * per / rate.numpy()).sum(0), rtol=1e-10)


def _unbiased(grad_samples: np.ndarray, expected: np.ndarray) -> None:
    mean = grad_samples.mean(0)
    se = grad_samples.std(0) / np.sqrt(grad_samples.shape[0])
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-12), (mean, expected, se)


def _per_draw_grads(make, param: np.ndarray, n: int, stat=lambda s: s) -> np.ndarray:
    """The derivative of ``stat(draw)`` for ``n`` independent draws, one backward each (batched
    over a leading sample dimension, whose rows do not interact)."""
    rows = []
    for i in range(n):
        p = bp.tensor(param, dtype=bp.float64, requires_grad=True)
        stat(make(p)).sum().backward()
        rows.append(p.grad.numpy().copy())
    return np.array(rows)


def test_gamma_mean_gradient_is_unbiased():
    a = np.array([0.3, 2.0, 12.0])
    g = _per_draw_grads(lambda c: D.Gamma(c, 2.0).rsample(), a, 400)
    _unbiased(g, np.full(3, 1 / 2.0))  # d(a / rate)/da


def test_beta_mean_gradient_is_unbiased():
    a, b = 1.5, 0.7
    g = _per_draw_grads(lambda p: D.Beta(p[0], p[1]).rsample(), np.array([a, b]), 400)
    t = a + b
    _unbiased(g, np.array([b / t ** 2, -a / t ** 2]))


def test_dirichlet_mean_gradient_is_unbiased():
    c = np.array([0.8, 2.0, 4.0])
    g = _per_draw_grads(lambda p: D.Dirichlet(p).rsample()[0], c, 400)
    c0 = c.sum()
    expected = -c[0] / c0 ** 2 * np.ones(3)
    expected[0] += 1 / c0
    _unbiased(g, expected)


def test_studentt_second_moment_gradient_is_unbiased():
    df = 6.0
    g = _per_draw_grads(lambda p: D.StudentT(p, 0.0, 1.0).rsample(), np.array([df]), 600, lambda s: s * s)
    _unbiased(g, np.array([-2 / (df - 2) ** 2]))  # d(df / (df - 2))/d df


def test_chi2_and_fisher_snedecor_take_df_gradients():
    df = bp.tensor([5.0], dtype=bp.float64, requires_grad=True)
    x = D.Chi2(df).rsample()
    x.backward()
    # Chi2(df) = 2 Gamma(df / 2): dx/d df = dGamma/da at a = df/2
    np.testing.assert_allclose(df.grad.numpy(), [_mp_dx_da(2.5, float(x.item()) / 2)], rtol=1e-10)
    d1 = bp.tensor([4.0], dtype=bp.float64, requires_grad=True)
    d2 = bp.tensor([9.0], dtype=bp.float64, requires_grad=True)
    D.FisherSnedecor(d1, d2).rsample().backward()
    assert np.isfinite(d1.grad.numpy()).all() and np.isfinite(d2.grad.numpy()).all()
    assert d1.grad.item() != 0 and d2.grad.item() != 0


def test_float32_draws_give_float32_gradients():
    conc = bp.tensor([2.0, 0.4], requires_grad=True)
    x = D.Gamma(conc, 1.0).rsample()
    x.sum().backward()
    assert conc.grad.dtype == bp.float32
    ref = [_mp_dx_da(float(c), float(v)) for c, v in zip([2.0, 0.4], x.detach().numpy())]
    np.testing.assert_allclose(conc.grad.numpy(), ref, rtol=1e-5)


def test_a_second_derivative_raises_as_in_pytorch():
    conc = bp.tensor([2.0], dtype=bp.float64, requires_grad=True)
    x = D.Gamma(conc, 1.0).rsample()
    (g,) = bp.autograd.grad(x.sum(), conc, create_graph=True)
    with pytest.raises(NotImplementedError, match="_standard_gamma_grad"):
        g.sum().backward()


def test_sample_stays_outside_the_graph():
    conc = bp.tensor([2.0], requires_grad=True)
    assert not D.Gamma(conc, 1.0).sample().requires_grad


def test_gpu_concentration():
    gpu_or_skip()
    conc = bp.tensor([1.5, 3.0], requires_grad=True)
    cg = conc.detach().to("gpu").requires_grad_()
    x = D.Gamma(cg, 1.0).rsample()
    assert x.device.type == "gpu"
    x.sum().backward()
    assert cg.grad.device.type == "gpu"
    ref = [_mp_dx_da(float(c), float(v)) for c, v in zip([1.5, 3.0], x.detach().cpu().numpy())]
    np.testing.assert_allclose(cg.grad.cpu().numpy(), ref, rtol=1e-5)
