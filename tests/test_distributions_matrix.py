"""Wishart and LKJCholesky against independent NumPy formulas (the Wishart log-density written
from its definition, the p = 1 case as a Gamma), numerical integrals of the LKJ density, and
sample moments (Wishart mean and variance, the LKJ marginal variance 1/(2 eta + d - 1))."""

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions


def _wishart_logpdf(x, df, sigma):
    p = sigma.shape[0]
    log_gamma_p = p * (p - 1) / 4 * math.log(math.pi) + sum(math.lgamma(df / 2 - i / 2) for i in range(p))
    _, logdet_x = np.linalg.slogdet(x)
    _, logdet_s = np.linalg.slogdet(sigma)
    return ((df - p - 1) / 2 * logdet_x - np.trace(np.linalg.solve(sigma, x)) / 2 - df * p / 2 * math.log(2)
            - df / 2 * logdet_s - log_gamma_p)


SIGMA = np.array([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 1.5]])


def test_wishart_log_prob_matches_its_definition_in_every_parameterisation():
    bp.manual_seed(0)
    rng = np.random.default_rng(0)
    xs = []
    for _ in range(4):
        g = rng.standard_normal((3, 6))
        xs.append(g @ g.T + 0.1 * np.eye(3))
    xs = np.stack(xs)
    want = [_wishart_logpdf(x, 4.5, SIGMA) for x in xs]
    t = bp.tensor(SIGMA)
    for kw in ({"covariance_matrix": t}, {"precision_matrix": bp.tensor(np.linalg.inv(SIGMA))},
               {"scale_tril": bp.tensor(np.linalg.cholesky(SIGMA))}):
        d = D.Wishart(4.5, **kw)
        np.testing.assert_allclose(d.log_prob(bp.tensor(xs)).numpy(), want, rtol=1e-10)
        np.testing.assert_allclose(d.covariance_matrix.numpy(), SIGMA, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(d.precision_matrix.numpy(), np.linalg.inv(SIGMA), rtol=1e-10, atol=1e-12)


def test_one_by_one_wishart_is_a_gamma():
    s2, df = 1.7, 3.3
    w = D.Wishart(bp.tensor(df, dtype=bp.float64), covariance_matrix=bp.tensor([[s2]], dtype=bp.float64))
    g = D.Gamma(bp.tensor(df / 2, dtype=bp.float64), bp.tensor(1 / (2 * s2), dtype=bp.float64))
    v = bp.tensor([0.3, 2.0, 9.0], dtype=bp.float64)
    np.testing.assert_allclose(w.log_prob(v.reshape(3, 1, 1)).numpy(), g.log_prob(v).numpy(), rtol=1e-12)
    assert w.entropy().item() == pytest.approx(g.entropy().item(), rel=1e-12)


def test_wishart_moments_entropy_and_samples():
    bp.manual_seed(1)
    df = 6.0
    d = D.Wishart(df, covariance_matrix=bp.tensor(SIGMA))
    x = d.rsample((40_000,))
    assert x.shape == (40_000, 3, 3)
    xs = x.numpy()
    np.testing.assert_allclose(xs.mean(0), df * SIGMA, atol=0.12)
    var = df * (SIGMA ** 2 + np.outer(np.diag(SIGMA), np.diag(SIGMA)))
    np.testing.assert_allclose(d.variance.numpy(), var, rtol=1e-12)
    np.testing.assert_allclose(xs.var(0), var, rtol=0.06)
    np.testing.assert_allclose(d.mean.numpy(), df * SIGMA, rtol=1e-12)
    np.testing.assert_allclose(d.mode.numpy(), (df - 4) * SIGMA, rtol=1e-12)
    lp = d.log_prob(x).numpy()
    assert d.entropy().item() == pytest.approx(-lp.mean(), abs=4 * lp.std() / math.sqrt(len(lp)))


def test_wishart_gradients_batches_and_checks():
    L0 = np.linalg.cholesky(SIGMA)
    x = bp.tensor(np.diag([2.0, 1.0, 3.0]) + 0.2)

    def f(L):
        return D.Wishart(5.0, scale_tril=L).log_prob(x)

    L = bp.tensor(L0, requires_grad=True)
    f(L).backward()
    fd = np.zeros_like(L0)
    for i in range(3):
        for j in range(i + 1):
            e = np.zeros_like(L0)
            e[i, j] = 1e-6
            fd[i, j] = (f(bp.tensor(L0 + e)).item() - f(bp.tensor(L0 - e)).item()) / 2e-6
    np.testing.assert_allclose(np.tril(L.grad.numpy()), fd, rtol=1e-6, atol=1e-7)
    # df broadcasts against the matrices' batch
    b = D.Wishart(bp.tensor([3.0, 4.0, 7.0]), covariance_matrix=bp.tensor(SIGMA, dtype=bp.float32))
    assert b.batch_shape == (3,) and b.event_shape == (3, 3) and b.sample((2,)).shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="greater than ndim - 1 = 2"):
        D.Wishart(1.5, covariance_matrix=bp.tensor(SIGMA))
    with pytest.raises(ValueError, match="Exactly one"):
        D.Wishart(4.0)
    with pytest.warns(UserWarning, match="Low df"):
        D.Wishart(2.5, covariance_matrix=bp.tensor(SIGMA))


# ------------------------------------------------------------------ LKJCholesky

@pytest.mark.parametrize("eta", [0.5, 1.0, 3.0])
def test_lkj_dim2_density_integrates_to_one(eta):
    r = np.linspace(-1 + 1e-9, 1 - 1e-9, 400_001)
    L = np.zeros((len(r), 2, 2))
    L[:, 0, 0] = 1
    L[:, 1, 0] = r
    L[:, 1, 1] = np.sqrt(1 - r * r)
    lp = D.LKJCholesky(2, bp.tensor(eta, dtype=bp.float64)).log_prob(bp.tensor(L)).numpy()
    # the density of r is (1 - r^2)^(eta - 1) / B(1/2, eta)
    want = (eta - 1) * np.log1p(-r * r) - (math.lgamma(0.5) + math.lgamma(eta) - math.lgamma(eta + 0.5))
    np.testing.assert_allclose(lp, want, rtol=1e-10, atol=1e-10)
    if eta >= 1:
        dr = r[1] - r[0]
        assert float(np.exp(lp).sum() * dr) == pytest.approx(1.0, abs=1e-4)


def test_lkj_dim3_normaliser_against_numerical_integrals():
    eta, d = 1.7, 3
    o1, o2 = 2 * (eta - 1) + d - 2, 2 * (eta - 1) + d - 3  # the powers of L_11 and L_22
    x = np.linspace(-1, 1, 200_001)
    i1 = float(np.trapezoid((1 - x * x) ** (o1 / 2), x))
    rho = np.linspace(0, 1, 200_001)
    i2 = float(2 * math.pi * np.trapezoid((1 - rho ** 2) ** (o2 / 2) * rho, rho))
    L = np.array([[1.0, 0, 0], [0.3, math.sqrt(1 - 0.09), 0], [-0.2, 0.5, math.sqrt(1 - 0.04 - 0.25)]])
    lp = D.LKJCholesky(3, eta).log_prob(bp.tensor(L)).item()
    want = o1 * math.log(L[1, 1]) + o2 * math.log(L[2, 2]) - math.log(i1 * i2)
    assert lp == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("eta", [0.5, 3.0])
def test_lkj_samples_are_correlation_factors_with_the_lkj_marginals(eta):
    bp.manual_seed(3)
    d = 4
    dist = D.LKJCholesky(d, eta)
    s = dist.sample((30_000,))
    assert s.shape == (30_000, d, d)
    assert bool(bp.distributions.constraints.corr_cholesky.check(s).all())
    c = (s @ s.mT).numpy()
    np.testing.assert_allclose(np.diagonal(c, axis1=1, axis2=2), 1.0, atol=1e-5)
    off = c[:, np.tril_indices(d, -1)[0], np.tril_indices(d, -1)[1]]
    # each correlation is Beta(eta - 1 + d/2, eta - 1 + d/2) on (-1, 1): variance 1 / (2 eta + d - 1)
    np.testing.assert_allclose(off.mean(0), 0.0, atol=0.02)
    np.testing.assert_allclose(off.var(0), 1 / (2 * eta + d - 1), rtol=0.05)
    assert not D.LKJCholesky.has_rsample
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        D.LKJCholesky(1)
