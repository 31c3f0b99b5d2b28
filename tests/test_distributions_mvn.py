"""``linalg.solve_triangular`` and ``distributions.MultivariateNormal`` against NumPy: the density
from ``slogdet`` and ``solve`` of the covariance, the entropy and KL closed forms written
independently in NumPy, samples by their empirical mean and covariance (5 standard errors), and
gradients by gradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


def _spd(rng, k, batch=()):
    a = rng.normal(size=batch + (k, k))
    return a @ np.swapaxes(a, -1, -2) + k * np.eye(k)


def t64(a, **kw):
    return bp.tensor(np.asarray(a), dtype=bp.float64, **kw)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular_forward_and_gradients(upper, left, unit):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 4, 4)) + 4 * np.eye(4)
    b = rng.normal(size=(2, 4, 3)) if left else rng.normal(size=(2, 3, 4))
    tri = np.triu(a) if upper else np.tril(a)
    if unit:
        tri[..., range(4), range(4)] = 1.0
    want = np.linalg.solve(tri, b) if left else np.swapaxes(np.linalg.solve(np.swapaxes(tri, -1, -2), np.swapaxes(b, -1, -2)), -1, -2)
    got = bp.linalg.solve_triangular(t64(a), t64(b), upper=upper, left=left, unitriangular=unit)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    A, B = t64(a, requires_grad=True), t64(b, requires_grad=True)
    assert bp.autograd.gradcheck(lambda A, B: bp.linalg.solve_triangular(A, B, upper=upper, left=left, unitriangular=unit),
                                 [A, B])
    # only the triangle is read: the other one gets no gradient
    bp.linalg.solve_triangular(A, B, upper=upper, left=left, unitriangular=unit).sum().backward()
    off = np.tril(np.ones((4, 4)), -1) if upper else np.triu(np.ones((4, 4)), 1)
    assert (A.grad.numpy() * off == 0).all()
    if unit:
        assert (A.grad.numpy()[..., range(4), range(4)] == 0).all()


def _np_logpdf(x, mu, cov):
    k = mu.shape[-1]
    d = x - mu
    sol = np.linalg.solve(cov, d[..., None])[..., 0]
    return -0.5 * (k * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + (d * sol).sum(-1))


@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix", "scale_tril"])
def test_log_prob_entropy_moments_in_every_parameterisation(param):
    rng = np.random.default_rng(2)
    cov = _spd(rng, 3)
    mu = rng.normal(size=(2, 3))  # a batch of two means sharing one covariance
    arg = {"covariance_matrix": cov, "precision_matrix": np.linalg.inv(cov), "scale_tril": np.linalg.cholesky(cov)}[param]
    d = D.MultivariateNormal(t64(mu), **{param: t64(arg)})
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = rng.normal(size=(5, 2, 3))
    np.testing.assert_allclose(d.log_prob(t64(x)).numpy(), _np_logpdf(x, mu, cov), rtol=1e-11)
    np.testing.assert_allclose(d.entropy().numpy(), [0.5 * (3 * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(cov)[1])] * 2,
                               rtol=1e-12)
    np.testing.assert_allclose(d.covariance_matrix.numpy(), np.broadcast_to(cov, (2, 3, 3)), rtol=1e-11)
    np.testing.assert_allclose(d.precision_matrix.numpy(), np.broadcast_to(np.linalg.inv(cov), (2, 3, 3)), rtol=1e-10)
    np.testing.assert_allclose(d.variance.numpy(), np.broadcast_to(np.diag(cov), (2, 3)), rtol=1e-11)
    n = 40_000
    s = d.sample((n,)).numpy()
    assert s.shape == (n, 2, 3)
    for j in range(2):
        se = np.sqrt(np.diag(cov) / n)
        assert (np.abs(s[:, j].mean(0) - mu[j]) < 5 * se).all()
        emp = np.cov(s[:, j].T)
        se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
        assert (np.abs(emp - cov) < 5 * se_cov).all()


def test_gradients_through_the_cholesky_factor():
    rng = np.random.default_rng(3)
    a = t64(rng.normal(size=(3, 3)), requires_grad=True)
    mu = t64(rng.normal(size=3), requires_grad=True)
    x = t64(rng.normal(size=(4, 3)))

    def lp(mu, a):
        cov = a @ a.transpose(-1, -2) + bp.eye(3, dtype=bp.float64)
        return D.MultivariateNormal(mu, covariance_matrix=cov).log_prob(x)

    assert bp.autograd.gradcheck(lp, [mu, a])
    # rsample is reparameterised: d sample / d loc is the identity
    m = t64(np.zeros(3), requires_grad=True)
    D.MultivariateNormal(m, scale_tril=t64(np.eye(3))).rsample((7,)).sum().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [7.0, 7.0, 7.0])


def test_kl_divergence_against_the_closed_form():
    rng = np.random.default_rng(4)
    c1, c2 = _spd(rng, 4), _spd(rng, 4)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    p = D.MultivariateNormal(t64(m1), covariance_matrix=t64(c1))
    q = D.MultivariateNormal(t64(m2), scale_tril=t64(np.linalg.cholesky(c2)))
    c2i = np.linalg.inv(c2)
    want = 0.5 * (np.trace(c2i @ c1) + (m2 - m1) @ c2i @ (m2 - m1) - 4 + np.linalg.slogdet(c2)[1] - np.linalg.slogdet(c1)[1])
    np.testing.assert_allclose(D.kl_divergence(p, q).item(), want, rtol=1e-11)
    assert abs(D.kl_divergence(p, p).item()) < 1e-12


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="Exactly one"):
        D.MultivariateNormal(bp.zeros(2))
    with pytest.raises(ValueError, match="Exactly one"):
        D.MultivariateNormal(bp.zeros(2), covariance_matrix=bp.eye(2), scale_tril=bp.eye(2))
    with pytest.raises(ValueError, match="do not match"):
        D.MultivariateNormal(bp.zeros(3), covariance_matrix=bp.eye(2))
    with pytest.raises(ValueError, match="scale_tril"):
        D.MultivariateNormal(bp.zeros(2), scale_tril=bp.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(RuntimeError, match="positive-definite"):
        D.MultivariateNormal(bp.zeros(2), covariance_matrix=bp.tensor([[1.0, 2.0], [2.0, 1.0]]))
