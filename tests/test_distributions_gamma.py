"""The lgamma family of ``bp.distributions`` (Gamma, Chi2, Beta, Dirichlet, Poisson, Binomial,
StudentT) against independent references: densities from their closed forms written with
``math.lgamma`` in NumPy, normalisation and entropies by numerical integration (or sums) on a
grid, KL divergences likewise, samplers by their empirical moments under a fixed seed (bounds of
5 standard errors), gradients of log_prob by gradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions
lg = np.vectorize(math.lgamma)


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


def npa(t):
    return t.detach().numpy()


def _trapz(f, x):
    return np.trapezoid(f, x) if hasattr(np, "trapezoid") else np.trapz(f, x)


def _gamma_logpdf(a, b):
    return lambda x: a * np.log(b) + (a - 1) * np.log(x) - b * x - math.lgamma(a)


def _beta_logpdf(a, b):
    return lambda x: (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)


def _t_logpdf(df, loc, scale):
    return lambda x: (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi) - math.log(scale)
                      - (df + 1) / 2 * np.log1p(((x - loc) / scale) ** 2 / df))


def _moments_ok(s, mean, var, n):
    se = math.sqrt(var / n)
    assert abs(s.mean() - mean) < 5 * se, (s.mean(), mean)
    # the variance's standard error, bounded through the fourth moment of the sample itself
    m4 = ((s - s.mean()) ** 4).mean()
    assert abs(s.var() - var) < 5 * math.sqrt(max(m4 - var ** 2, 1e-12) / n), (s.var(), var)


def test_gamma_density_moments_entropy_and_sampling():
    a, b = np.array([0.7, 2.5, 9.0]), np.array([1.5, 0.5, 3.0])
    d = D.Gamma(bp.tensor(a, dtype=bp.float64), bp.tensor(b, dtype=bp.float64))
    x = np.array([0.3, 4.0, 2.2])
    want = np.array([_gamma_logpdf(ai, bi)(xi) for ai, bi, xi in zip(a, b, x)])
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor(x, dtype=bp.float64))), want, rtol=1e-12)
    np.testing.assert_allclose(npa(d.mean), a / b, rtol=1e-14)
    np.testing.assert_allclose(npa(d.variance), a / b ** 2, rtol=1e-14)
    np.testing.assert_allclose(npa(d.mode), np.maximum((a - 1) / b, 0), rtol=1e-14)
    for ai, bi, h in zip(a, b, npa(d.entropy())):
        # on a log grid (x = e^u): the density of a < 1 is singular at 0
        u = np.linspace(-60, math.log(80), 2_000_001)
        lp = _gamma_logpdf(ai, bi)(np.exp(u))
        assert abs(h - _trapz(-np.exp(lp + u) * lp, u)) < 1e-6, (ai, h)
    s = npa(d.sample((40_000,)))
    assert s.shape == (40_000, 3) and (s > 0).all()
    for j in range(3):
        _moments_ok(s[:, j], a[j] / b[j], a[j] / b[j] ** 2, s.shape[0])


def test_sampling_is_reproducible_under_manual_seed():
    bp.manual_seed(5)
    one = npa(D.Gamma(2.0, 1.0).sample((4,)))
    bp.manual_seed(5)
    assert np.array_equal(one, npa(D.Gamma(2.0, 1.0).sample((4,))))
    assert not np.array_equal(one, npa(D.Gamma(2.0, 1.0).sample((4,))))


def test_gamma_rsample_differentiates_the_rate():
    rate = bp.tensor([2.0], dtype=bp.float64, requires_grad=True)
    s = D.Gamma(bp.tensor([3.0], dtype=bp.float64), rate).rsample((5,))
    s.sum().backward()
    # x = g / rate: dx/drate = -x / rate
    np.testing.assert_allclose(rate.grad.item(), -npa(s).sum() / 2.0, rtol=1e-12)
    # the concentration's gradient is tested in test_gamma_reparam.py


def test_log_prob_gradients():
    a = bp.tensor([0.8, 3.0], dtype=bp.float64, requires_grad=True)
    b = bp.tensor([1.2, 0.4], dtype=bp.float64, requires_grad=True)
    x = bp.tensor([0.5, 2.0], dtype=bp.float64)
    assert bp.autograd.gradcheck(lambda a, b: D.Gamma(a, b).log_prob(x), [a, b])
    assert bp.autograd.gradcheck(lambda a, b: D.Beta(a, b).log_prob(x * 0.3), [a, b])
    assert bp.autograd.gradcheck(lambda a, b: D.StudentT(a * 3, b, b * 2).log_prob(x), [a, b])
    assert bp.autograd.gradcheck(lambda a, b: D.Gamma(a, b).entropy(), [a, b])
    c = bp.tensor([[0.5, 1.5, 2.0]], dtype=bp.float64, requires_grad=True)
    v = bp.tensor([[0.2, 0.3, 0.5]], dtype=bp.float64)
    assert bp.autograd.gradcheck(lambda c: D.Dirichlet(c).log_prob(v), [c])
    assert bp.autograd.gradcheck(lambda c: D.Dirichlet(c).entropy(), [c])


def test_chi2_is_the_gamma_of_half_df():
    d = D.Chi2(bp.tensor([3.0, 7.0], dtype=bp.float64))
    np.testing.assert_allclose(npa(d.df), [3.0, 7.0])
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor([1.5, 6.0], dtype=bp.float64))),
                               [_gamma_logpdf(1.5, 0.5)(1.5), _gamma_logpdf(3.5, 0.5)(6.0)], rtol=1e-12)
    np.testing.assert_allclose(npa(d.mean), [3.0, 7.0])
    np.testing.assert_allclose(npa(d.variance), [6.0, 14.0])


def test_beta_density_moments_entropy_sampling():
    a, b = 2.5, 0.8
    d = D.Beta(bp.tensor(a, dtype=bp.float64), bp.tensor(b, dtype=bp.float64))
    x = np.array([0.1, 0.5, 0.97])
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor(x, dtype=bp.float64))), _beta_logpdf(a, b)(x), rtol=1e-12)
    np.testing.assert_allclose(d.mean.item(), a / (a + b))
    np.testing.assert_allclose(d.variance.item(), a * b / ((a + b) ** 2 * (a + b + 1)))
    grid = np.linspace(1e-12, 1 - 1e-12, 2_000_001)
    lp = _beta_logpdf(a, b)(grid)
    assert abs(d.entropy().item() - _trapz(-np.exp(lp) * lp, grid)) < 2e-3
    s = npa(D.Beta(a, b).sample((40_000,)))
    assert ((s >= 0) & (s <= 1)).all()
    _moments_ok(s.astype(np.float64), a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1)), s.size)
    with pytest.raises(ValueError, match="support"):
        d.log_prob(bp.tensor(1.5, dtype=bp.float64))


def test_dirichlet_density_moments_sampling():
    c = np.array([0.7, 2.0, 4.0])
    d = D.Dirichlet(bp.tensor(c, dtype=bp.float64))
    v = np.array([0.1, 0.3, 0.6])
    want = ((c - 1) * np.log(v)).sum() + math.lgamma(c.sum()) - lg(c).sum()
    np.testing.assert_allclose(d.log_prob(bp.tensor(v, dtype=bp.float64)).item(), want, rtol=1e-12)
    c0 = c.sum()
    np.testing.assert_allclose(npa(d.mean), c / c0)
    np.testing.assert_allclose(npa(d.variance), c * (c0 - c) / (c0 ** 2 * (c0 + 1)))
    np.testing.assert_allclose(npa(D.Dirichlet(bp.tensor([2.0, 3.0, 5.0])).mode), np.array([1.0, 2.0, 4.0]) / 7,
                               rtol=1e-6)
    s = npa(d.sample((30_000,)))
    assert s.shape == (30_000, 3)
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-12)
    var = c * (c0 - c) / (c0 ** 2 * (c0 + 1))
    for j in range(3):
        _moments_ok(s[:, j], c[j] / c0, var[j], s.shape[0])
    # a two-component Dirichlet is the Beta of its first coordinate (on the simplex's line)
    beta = D.Beta(bp.tensor(1.7, dtype=bp.float64), bp.tensor(3.1, dtype=bp.float64))
    dir2 = D.Dirichlet(bp.tensor([1.7, 3.1], dtype=bp.float64))
    np.testing.assert_allclose(dir2.log_prob(bp.tensor([0.3, 0.7], dtype=bp.float64)).item(),
                               beta.log_prob(bp.tensor(0.3, dtype=bp.float64)).item(), rtol=1e-12)
    np.testing.assert_allclose(dir2.entropy().item(), beta.entropy().item(), rtol=1e-12)


def test_poisson_and_binomial_against_sums():
    rate = np.array([0.4, 3.0, 25.0])
    d = D.Poisson(bp.tensor(rate, dtype=bp.float64))
    k = np.array([0.0, 2.0, 30.0])
    want = k * np.log(rate) - rate - lg(k + 1)
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor(k, dtype=bp.float64))), want, rtol=1e-12)
    ks = np.arange(200.0)
    total = np.exp(npa(D.Poisson(bp.tensor(rate[:, None], dtype=bp.float64)).log_prob(bp.tensor(ks, dtype=bp.float64))))
    np.testing.assert_allclose(total.sum(-1), 1.0, rtol=1e-10)
    s = npa(d.sample((40_000,)))
    assert (s == np.floor(s)).all()
    for j in range(3):
        _moments_ok(s[:, j], rate[j], rate[j], s.shape[0])
    with pytest.raises(ValueError, match="support"):
        d.log_prob(bp.tensor([0.5, 1.0, 1.0], dtype=bp.float64))
    assert D.Poisson(bp.tensor(0.0, dtype=bp.float64)).log_prob(bp.tensor(0.0, dtype=bp.float64)).item() == 0.0

    n, p = 12, 0.3
    b = D.Binomial(n, probs=bp.tensor(p, dtype=bp.float64))
    ks = np.arange(n + 1.0)
    want = lg(n + 1) - lg(ks + 1) - lg(n - ks + 1) + ks * math.log(p) + (n - ks) * math.log1p(-p)
    np.testing.assert_allclose(npa(b.log_prob(bp.tensor(ks, dtype=bp.float64))), want, rtol=1e-11)
    logit = math.log(p / (1 - p))
    b2 = D.Binomial(n, logits=bp.tensor(logit, dtype=bp.float64))
    np.testing.assert_allclose(npa(b2.log_prob(bp.tensor(ks, dtype=bp.float64))), want, rtol=1e-11)
    np.testing.assert_allclose(b.entropy().item(), -(np.exp(want) * want).sum(), rtol=1e-12)
    assert (b.mean.item(), round(b.variance.item(), 12), b.mode.item()) == (n * p, round(n * p * (1 - p), 12), 3.0)
    s = npa(D.Binomial(n, probs=bp.tensor(p)).sample((40_000,)))
    _moments_ok(s.astype(np.float64), n * p, n * p * (1 - p), s.size)
    assert npa(b.enumerate_support()).tolist() == ks.tolist()


def test_student_t_density_moments_entropy_rsample():
    df, loc, scale = 4.5, 0.5, 2.0
    d = D.StudentT(bp.tensor(df, dtype=bp.float64), loc, scale)
    x = np.array([-3.0, 0.5, 7.0])
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor(x, dtype=bp.float64))), _t_logpdf(df, loc, scale)(x), rtol=1e-12)
    grid = np.linspace(-400, 400, 2_000_001)
    lp = _t_logpdf(df, loc, scale)(grid)
    assert abs(d.entropy().item() - _trapz(-np.exp(lp) * lp, grid)) < 2e-3
    assert d.mean.item() == loc and abs(d.variance.item() - scale ** 2 * df / (df - 2)) < 1e-12
    m = D.StudentT(bp.tensor([0.8, 1.5, 3.0]))
    v, mu = npa(m.variance), npa(m.mean)
    assert np.isnan(v[0]) and np.isinf(v[1]) and abs(v[2] - 3.0) < 1e-6 and np.isnan(mu[0]) and mu[1] == 0.0
    locs = bp.tensor([0.5], dtype=bp.float64, requires_grad=True)
    s = D.StudentT(bp.tensor([df], dtype=bp.float64), locs, scale).rsample((50_000,))
    s.sum().backward()
    assert locs.grad.item() == 50_000.0
    _moments_ok(npa(s)[:, 0], loc, scale ** 2 * df / (df - 2), 50_000)  # df > 4: the fourth moment exists


def test_kl_divergences_against_numerical_integration():
    kl = D.kl_divergence

    def grid_kl(lp, lq, lo, hi):
        x = np.linspace(lo, hi, 2_000_001)
        a, b = lp(x), lq(x)
        return _trapz(np.exp(a) * (a - b), x)

    got = kl(D.Gamma(2.0, 1.5), D.Gamma(3.5, 0.7)).item()
    assert abs(got - grid_kl(_gamma_logpdf(2.0, 1.5), _gamma_logpdf(3.5, 0.7), 1e-9, 60)) < 1e-4
    got = kl(D.Beta(2.0, 3.0), D.Beta(1.5, 4.0)).item()
    assert abs(got - grid_kl(_beta_logpdf(2.0, 3.0), _beta_logpdf(1.5, 4.0), 1e-9, 1 - 1e-9)) < 1e-4
    got = kl(D.Dirichlet(bp.tensor([2.0, 3.0], dtype=bp.float64)), D.Dirichlet(bp.tensor([1.5, 4.0], dtype=bp.float64)))
    assert abs(got.item() - kl(D.Beta(2.0, 3.0), D.Beta(1.5, 4.0)).item()) < 1e-6
    r1, r2 = 3.0, 5.5
    ks = np.arange(200.0)
    lp1 = ks * math.log(r1) - r1 - lg(ks + 1)
    lp2 = ks * math.log(r2) - r2 - lg(ks + 1)
    np.testing.assert_allclose(kl(D.Poisson(r1), D.Poisson(r2)).item(), (np.exp(lp1) * (lp1 - lp2)).sum(), rtol=1e-5)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="concentration"):
        D.Gamma(-1.0, 1.0)
    with pytest.raises(ValueError, match="rate"):
        D.Poisson(-0.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        D.Dirichlet(bp.tensor(1.0))
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        D.Binomial(3)
    with pytest.raises(ValueError, match="df"):
        D.StudentT(0.0)
    with pytest.raises(ValueError, match="support"):
        D.Gamma(1.0, 1.0).cdf(bp.tensor(-1.0))


def test_gamma_and_chi2_cdf_against_the_integrated_density():
    a, b = 2.5, 1.5
    d = D.Gamma(bp.tensor(a, dtype=bp.float64), bp.tensor(b, dtype=bp.float64))
    x = np.linspace(1e-12, 30, 600_001)
    cdf = np.concatenate([[0.0], np.cumsum(np.diff(x) * np.exp(_gamma_logpdf(a, b)((x[1:] + x[:-1]) / 2)))])
    for v in (0.2, 1.0, 1.7, 4.0, 9.0):
        assert abs(float(npa(d.cdf(bp.tensor(v, dtype=bp.float64)))) - np.interp(v, x, cdf)) < 1e-9
    # Chi2(k) at x is P(k/2, x/2); Chi2(2) is 1 - exp(-x/2) exactly
    np.testing.assert_allclose(npa(D.Chi2(bp.tensor(2.0, dtype=bp.float64)).cdf(bp.tensor([0.5, 3.0], dtype=bp.float64))),
                               1 - np.exp(-np.array([0.5, 3.0]) / 2), rtol=1e-14)
