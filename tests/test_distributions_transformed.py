"""The distributions built on transforms (LogNormal, Gumbel, HalfNormal, HalfCauchy, Weibull,
Pareto, Kumaraswamy, LogisticNormal, the relaxed ones), Cauchy, FisherSnedecor, the counts
(Geometric, NegativeBinomial, Multinomial), MixtureSameFamily and LowRankMultivariateNormal,
against independent references: densities from their textbook closed forms in NumPy/``math``,
normalisation, moments, entropies and cdfs by numerical integration on a grid, samplers by a
Kolmogorov-type bound on the empirical CDF against the integrated density (or the pmf) under a
fixed seed, KL divergences by integration, gradients by gradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions
F64 = bp.float64
EULER = 0.5772156649015329


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


def npa(t):
    return t.detach().numpy()


def t64(a):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=F64)


def _trapz(f, x):
    return np.trapezoid(f, x) if hasattr(np, "trapezoid") else np.trapz(f, x)


# name -> (constructor over float64 scalars, textbook log-density, grid (lo, hi), finite mean/var?)
CONTINUOUS = {
    "lognormal": (lambda: D.LogNormal(t64(0.3), t64(0.6)),
                  lambda x: -np.log(x * 0.6 * math.sqrt(2 * math.pi)) - (np.log(x) - 0.3) ** 2 / (2 * 0.36),
                  (1e-9, 60.0), True),
    "gumbel": (lambda: D.Gumbel(t64(1.0), t64(2.0)),
               lambda x: -math.log(2.0) - (x - 1) / 2 - np.exp(-(x - 1) / 2), (-25.0, 90.0), True),
    "halfnormal": (lambda: D.HalfNormal(t64(1.5)),
                   lambda x: math.log(math.sqrt(2 / math.pi) / 1.5) - x ** 2 / (2 * 2.25), (0.0, 20.0), True),
    "halfcauchy": (lambda: D.HalfCauchy(t64(0.8)),
                   lambda x: np.log(2 / (math.pi * 0.8 * (1 + (x / 0.8) ** 2))), (0.0, 4e4), False),
    "cauchy": (lambda: D.Cauchy(t64(-0.5), t64(1.3)),
               lambda x: -np.log(math.pi * 1.3 * (1 + ((x + 0.5) / 1.3) ** 2)), (-4e4, 4e4), False),
    "weibull": (lambda: D.Weibull(t64(2.0), t64(1.7)),
                lambda x: math.log(1.7 / 2.0) + 0.7 * np.log(x / 2.0) - (x / 2.0) ** 1.7, (1e-12, 30.0), True),
    "weibull_k_below_1": (lambda: D.Weibull(t64(1.5), t64(0.8)),
                          lambda x: math.log(0.8 / 1.5) - 0.2 * np.log(x / 1.5) - (x / 1.5) ** 0.8, (1e-12, 200.0),
                          True),
    "pareto": (lambda: D.Pareto(t64(1.5), t64(4.5)),
               lambda x: math.log(4.5) + 4.5 * math.log(1.5) - 5.5 * np.log(x), (1.5, 3000.0), True),
    "kumaraswamy": (lambda: D.Kumaraswamy(t64(2.0), t64(3.5)),
                    lambda x: math.log(7.0) + np.log(x) + 2.5 * np.log1p(-x ** 2), (0.0, 1.0), True),
    "fisher": (lambda: D.FisherSnedecor(t64(6.0), t64(11.0)),
               lambda x: (math.lgamma(8.5) - math.lgamma(3.0) - math.lgamma(5.5) + 3 * math.log(6 / 11)
                          + 2 * np.log(x) - 8.5 * np.log1p(6 * x / 11)), (1e-12, 400.0), True),
}


def _grid(name):
    lo, hi = CONTINUOUS[name][2]
    if name in ("halfcauchy", "cauchy", "pareto", "weibull_k_below_1", "lognormal", "fisher", "weibull"):
        # heavy tails or a singular/peaked start: a grid dense near the origin of the support
        base = max(lo, 0.0)
        u = np.linspace(0, 1, 400_001)
        right = base + (hi - base) * u ** 4
        if lo < 0:
            return np.concatenate([base - (hi - base) * u[::-1] ** 4, right[1:]])
        return right if lo >= 0 else right
    return np.linspace(lo, hi, 400_001)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_density_matches_the_closed_form_and_integrates_to_one(name):
    make, ref, _, finite = CONTINUOUS[name]
    d = make()
    x = _grid(name)
    inner = x[(x > 0) if name not in ("gumbel", "cauchy") else slice(None)]
    if name == "kumaraswamy":
        inner = inner[inner < 1]
    if name == "pareto":
        inner = inner[inner > 1.5]
    pts = inner[:: max(1, len(inner) // 997)]
    got = npa(d.log_prob(t64(pts)))
    np.testing.assert_allclose(got, ref(pts), rtol=1e-9, atol=1e-9)
    p = np.exp(ref(inner))
    assert abs(_trapz(p, inner) - 1) < 2e-3, _trapz(p, inner)
    if finite:
        m = _trapz(inner * p, inner)
        v = _trapz((inner - m) ** 2 * p, inner)
        assert abs(float(npa(d.mean)) - m) < 5e-3 * max(1, abs(m)), (float(npa(d.mean)), m)
        assert abs(float(npa(d.variance)) - v) < 2e-2 * max(1, v), (float(npa(d.variance)), v)
    if name != "fisher":
        lp = ref(inner)
        h = _trapz(np.where(p > 0, -p * lp, 0.0), inner)
        assert abs(float(npa(d.entropy())) - h) < 5e-3, (float(npa(d.entropy())), h)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_samples_follow_the_integrated_density(name):
    make, ref, _, _ = CONTINUOUS[name]
    d = make()
    n = 20_000
    s = npa(d.sample((n,)))
    assert s.shape == (n,) and np.isfinite(s).all()
    assert d.support.check(t64(s)).all().item()
    x = _grid(name)
    with np.errstate(divide="ignore"):
        p = np.exp(np.where(np.isfinite(ref(x)), ref(x), -np.inf))
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(x))])
    for q in (0.1, 0.3, 0.5, 0.7, 0.9):
        xq = np.interp(q, cdf, x)
        emp = (s <= xq).mean()
        assert abs(emp - q) < 5 * math.sqrt(q * (1 - q) / n), (q, emp)


@pytest.mark.parametrize("name", ["lognormal", "gumbel", "halfnormal", "halfcauchy", "cauchy", "weibull", "pareto"])
def test_cdf_and_icdf_against_the_integrated_density(name):
    make, ref, _, _ = CONTINUOUS[name]
    d = make()
    x = _grid(name)
    with np.errstate(divide="ignore"):
        p = np.exp(ref(x))
    p[~np.isfinite(p)] = 0
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(x))])
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        xq = np.interp(q, cdf, x)
        assert abs(float(npa(d.cdf(t64(xq)))) - q) < 1e-3, (q, float(npa(d.cdf(t64(xq)))))
        assert abs(float(npa(d.cdf(d.icdf(t64(q))))) - q) < 1e-10


def test_rsample_is_differentiable_in_every_parameter():
    # with the seed fixed inside, rsample is a smooth function of the parameters: gradcheck it
    loc = bp.tensor([0.2, -0.1], dtype=F64, requires_grad=True)
    scale = bp.tensor([0.7, 1.3], dtype=F64, requires_grad=True)
    makers = [lambda a, b: D.LogNormal(a, b), lambda a, b: D.Gumbel(a, b), lambda a, b: D.Cauchy(a, b),
              lambda a, b: D.Weibull(b, a.exp()), lambda a, b: D.Pareto(b, a.exp() + 1),
              lambda a, b: D.Kumaraswamy(b, a.exp()), lambda a, b: D.HalfNormal(b * a.exp()),
              lambda a, b: D.HalfCauchy(b * a.exp()), lambda a, b: D.RelaxedBernoulli(b, logits=a),
              lambda a, b: D.LogisticNormal(a, b)]
    for make in makers:
        def draw(a, b, make=make):
            bp.manual_seed(3)
            return make(a, b).rsample((3,))

        assert bp.autograd.gradcheck(draw, (loc, scale)), make


def test_rsample_is_the_transform_of_the_base_draw_and_differentiates_exactly():
    # LogNormal.rsample = exp(loc + scale * eps): d/dloc = y, d/dscale = y * eps
    loc = bp.tensor([0.2, -0.1], dtype=F64, requires_grad=True)
    scale = bp.tensor([0.7, 1.3], dtype=F64, requires_grad=True)
    bp.manual_seed(7)
    y = D.LogNormal(loc, scale).rsample((3,))
    eps = (np.log(npa(y)) - npa(loc)) / npa(scale)
    y.sum().backward()
    np.testing.assert_allclose(npa(loc.grad), npa(y).sum(0), rtol=1e-12)
    np.testing.assert_allclose(npa(scale.grad), (npa(y) * eps).sum(0), rtol=1e-12)


def test_log_prob_gradients():
    a = bp.tensor([0.7, 2.1], dtype=F64, requires_grad=True)
    b = bp.tensor([1.4, 0.6], dtype=F64, requires_grad=True)
    x = t64([0.35, 0.8])
    for f in (lambda a, b: D.LogNormal(a, b).log_prob(x + 1), lambda a, b: D.Gumbel(a, b).log_prob(x),
              lambda a, b: D.Weibull(a, b).log_prob(x), lambda a, b: D.Kumaraswamy(a, b).log_prob(x),
              lambda a, b: D.Pareto(a * 0.1, b).log_prob(x + 1), lambda a, b: D.FisherSnedecor(a, b).log_prob(x),
              lambda a, b: D.HalfCauchy(b).log_prob(x) + D.Cauchy(a, b).log_prob(x),
              lambda a, b: D.Kumaraswamy(a, b).entropy() + D.Weibull(a, b).entropy() + D.Pareto(a, b).entropy()):
        assert bp.autograd.gradcheck(f, (a, b))


def _np_logistic_normal_logpdf(y, loc, scale):
    """An independent density of PyTorch's LogisticNormal: the normal density at the inverse
    stick-breaking image minus log|det| of the numerical Jacobian of the forward map."""
    k = len(loc)

    def forward(x):
        z = 1 / (1 + np.exp(-(x - np.log(np.arange(k, 0, -1)))))
        out, left = [], 1.0
        for i in range(k):
            out.append(z[i] * left)
            left = left * (1 - z[i])
        return np.array(out)

    ycrop = y[:-1]
    rest = 1 - np.cumsum(ycrop)
    x = np.log(ycrop) - np.log(rest) + np.log(np.arange(k, 0, -1))
    jac = np.stack([(forward(x + h) - forward(x - h)) / 2e-6 for h in np.eye(k) * 1e-6], -1)
    normal = (-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)).sum()
    return normal - np.linalg.slogdet(jac)[1]


def test_logistic_normal_on_the_simplex():
    loc, scale = np.array([0.3, -0.5, 0.1]), np.array([0.8, 1.2, 0.5])
    d = D.LogisticNormal(t64(loc), t64(scale))
    assert tuple(d.batch_shape) == () and tuple(d.event_shape) == (4,)
    s = d.sample((5,))
    assert tuple(s.shape) == (5, 4) and D.constraints.simplex.check(s).all().item()
    for yi, lp in zip(npa(s), npa(d.log_prob(s))):
        assert abs(lp - _np_logistic_normal_logpdf(yi, loc, scale)) < 1e-6
    assert tuple(D.LogisticNormal(t64(0.0), t64(1.0)).sample((2,)).shape) == (2, 2)


def test_relaxed_bernoulli_density_is_the_binary_concrete():
    lam, p = 0.6, 0.3
    d = D.RelaxedBernoulli(t64(lam), probs=t64(p))
    y = np.linspace(0.01, 0.99, 41)
    alpha = p / (1 - p)
    want = np.log(lam * alpha * y ** (-lam - 1) * (1 - y) ** (-lam - 1) / (alpha * y ** -lam + (1 - y) ** -lam) ** 2)
    np.testing.assert_allclose(npa(d.log_prob(t64(y))), want, rtol=1e-9)
    s = npa(d.sample((20_000,)))
    assert ((s > 0) & (s < 1)).all()
    # P(Y > 1/2) = p exactly for the binary concrete at any temperature
    assert abs((s > 0.5).mean() - p) < 5 * math.sqrt(p * (1 - p) / s.size)
    assert abs(npa(D.RelaxedBernoulli(t64(0.05), logits=t64(2.0)).sample((2000,))).round().mean()
               - 1 / (1 + math.exp(-2))) < 0.05


def test_relaxed_one_hot_density_is_the_concrete_and_argmax_is_categorical():
    lam, p = 0.7, np.array([0.2, 0.5, 0.3])
    d = D.RelaxedOneHotCategorical(t64(lam), probs=t64(p))
    s = d.rsample((6,))
    assert tuple(s.shape) == (6, 3) and D.constraints.simplex.check(s).all().item()
    n = 3
    for yi, lp in zip(npa(s), npa(d.log_prob(s))):
        want = (math.log(math.factorial(n - 1)) + (n - 1) * math.log(lam) + np.sum(np.log(p) + (-lam - 1) * np.log(yi))
                - n * math.log(np.sum(p * yi ** -lam)))
        assert abs(lp - want) < 1e-8
    am = npa(d.sample((20_000,))).argmax(-1)
    for k in range(3):
        assert abs((am == k).mean() - p[k]) < 5 * math.sqrt(p[k] * (1 - p[k]) / am.size)


def test_geometric_and_negative_binomial_against_their_pmfs():
    p = 0.35
    g = D.Geometric(t64(p))
    k = np.arange(0, 80)
    pmf = (1 - p) ** k * p
    np.testing.assert_allclose(np.exp(npa(g.log_prob(t64(k)))), pmf, rtol=1e-12)
    assert abs(float(npa(g.mean)) - (pmf * k).sum()) < 1e-9
    assert abs(float(npa(g.variance)) - (pmf * (k - (pmf * k).sum()) ** 2).sum()) < 1e-8
    assert abs(float(npa(g.entropy())) + (pmf * np.log(pmf)).sum()) < 1e-9
    assert float(npa(D.Geometric(t64(1.0)).log_prob(t64(0.0)))) == 0.0
    s = npa(g.sample((20_000,)))
    for j in range(4):
        assert abs((s == j).mean() - pmf[j]) < 5 * math.sqrt(pmf[j] * (1 - pmf[j]) / s.size)

    r, q = 3.5, 0.4
    nb = D.NegativeBinomial(t64(r), probs=t64(q))
    k = np.arange(0, 200)
    lpmf = np.array([math.lgamma(i + r) - math.lgamma(i + 1) - math.lgamma(r) for i in k]) + r * math.log(1 - q) \
        + k * math.log(q)
    np.testing.assert_allclose(npa(nb.log_prob(t64(k))), lpmf, rtol=1e-10, atol=1e-12)
    pmf = np.exp(lpmf)
    assert abs(pmf.sum() - 1) < 1e-10
    mean = (pmf * k).sum()
    assert abs(float(npa(nb.mean)) - mean) < 1e-9
    assert abs(float(npa(nb.variance)) - (pmf * (k - mean) ** 2).sum()) < 1e-8
    assert float(npa(nb.mode)) == float(k[pmf.argmax()])
    s = npa(nb.sample((20_000,)))
    for j in range(5):
        assert abs((s == j).mean() - pmf[j]) < 5 * math.sqrt(pmf[j] * (1 - pmf[j]) / s.size)
    np.testing.assert_allclose(npa(D.NegativeBinomial(t64(r), logits=t64(math.log(q / (1 - q)))).log_prob(t64(k))),
                               lpmf, rtol=1e-9, atol=1e-12)


def test_multinomial_against_the_factorial_formula():
    p = np.array([0.2, 0.3, 0.5])
    n = 6
    m = D.Multinomial(n, t64(p))
    assert tuple(m.event_shape) == (3,)
    counts = [(a, b, n - a - b) for a in range(n + 1) for b in range(n + 1 - a)]
    want = [math.log(math.factorial(n) / (math.factorial(a) * math.factorial(b) * math.factorial(c)))
            + a * math.log(p[0]) + b * math.log(p[1]) + c * math.log(p[2]) for a, b, c in counts]
    got = npa(m.log_prob(t64(counts)))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert abs(np.exp(got).sum() - 1) < 1e-12
    assert abs(float(npa(m.entropy())) + (np.exp(got) * got).sum()) < 1e-10
    np.testing.assert_allclose(npa(m.mean), n * p, rtol=1e-12)
    np.testing.assert_allclose(npa(m.variance), n * p * (1 - p), rtol=1e-12)
    s = npa(m.sample((5000,)))
    assert s.shape == (5000, 3) and (s.sum(-1) == n).all()
    assert np.all(np.abs(s.mean(0) - n * p) < 5 * np.sqrt(n * p * (1 - p) / 5000))
    # zero probability, drawn zero times, contributes nothing
    z = D.Multinomial(2, t64([0.0, 1.0]))
    assert abs(float(npa(z.log_prob(t64([0.0, 2.0]))))) < 1e-15  # log(1 - eps) twice, as PyTorch's clamp


def test_mixture_same_family_against_a_direct_sum():
    w = np.array([0.25, 0.75])
    mu, sd = np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    mix = D.MixtureSameFamily(D.Categorical(t64(w)), D.Normal(t64(mu), t64(sd)))
    x = np.linspace(-4, 6, 21)
    dens = (w / (sd * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((x[:, None] - mu) / sd) ** 2)).sum(-1)
    np.testing.assert_allclose(npa(mix.log_prob(t64(x))), np.log(dens), rtol=1e-12)
    assert abs(float(npa(mix.mean)) - (w * mu).sum()) < 1e-12
    var = (w * (sd ** 2 + mu ** 2)).sum() - (w * mu).sum() ** 2
    assert abs(float(npa(mix.variance)) - var) < 1e-12
    assert not mix.has_rsample


def test_mixture_of_multivariate_components_samples_and_cdf():
    w = np.array([0.4, 0.6])
    comp = D.Independent(D.Normal(t64([[-2.0, 0.0], [3.0, 1.0]]), t64([[0.5, 0.5], [1.0, 0.2]])), 1)
    mix = D.MixtureSameFamily(D.Categorical(t64(w)), comp)
    assert tuple(mix.event_shape) == (2,) and tuple(mix.batch_shape) == ()
    s = npa(mix.sample((20_000,)))
    assert s.shape == (20_000, 2)
    frac = (s[:, 0] > 0.5).mean()
    assert abs(frac - 0.6) < 5 * math.sqrt(0.24 / 20_000)
    np.testing.assert_allclose(npa(mix.mean), (w[:, None] * np.array([[-2.0, 0.0], [3.0, 1.0]])).sum(0), rtol=1e-12)
    one_d = D.MixtureSameFamily(D.Categorical(t64(w)), D.Normal(t64([-1.0, 1.0]), t64([1.0, 1.0])))
    c = float(npa(one_d.cdf(t64(0.0))))
    want = 0.4 * 0.5 * (1 + math.erf(1 / math.sqrt(2))) + 0.6 * 0.5 * (1 + math.erf(-1 / math.sqrt(2)))
    assert abs(c - want) < 1e-12
    with pytest.raises(ValueError, match="Categorical"):
        D.MixtureSameFamily(D.Normal(0.0, 1.0), comp)


def test_low_rank_mvn_against_the_dense_covariance():
    rng = np.random.default_rng(4)
    k, r = 5, 2
    loc, w, dg = rng.normal(size=(2, k)), rng.normal(size=(k, r)), rng.uniform(0.3, 1.5, size=k)
    lr = D.LowRankMultivariateNormal(t64(loc), t64(w), t64(dg))
    cov = w @ w.T + np.diag(dg)
    x = rng.normal(size=(3, 2, k))
    diff = x - loc
    want = -0.5 * (k * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1]
                   + np.einsum("...i,ij,...j->...", diff, np.linalg.inv(cov), diff))
    np.testing.assert_allclose(npa(lr.log_prob(t64(x))), want, rtol=1e-10)
    np.testing.assert_allclose(npa(lr.covariance_matrix)[0], cov, rtol=1e-12)
    np.testing.assert_allclose(npa(lr.precision_matrix)[1], np.linalg.inv(cov), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(npa(lr.scale_tril)[0], np.linalg.cholesky(cov), rtol=1e-10)
    np.testing.assert_allclose(npa(lr.variance)[0], np.diag(cov), rtol=1e-12)
    np.testing.assert_allclose(npa(lr.entropy()), [0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov)[1]] * 2,
                               rtol=1e-12)
    full = D.MultivariateNormal(t64(loc), t64(cov))
    np.testing.assert_allclose(npa(lr.log_prob(t64(x))), npa(full.log_prob(t64(x))), rtol=1e-10)
    s = npa(lr.sample((40_000,)))[:, 0]
    emp = np.cov(s.T)
    assert np.abs(emp - cov).max() < 5 * math.sqrt(2 * np.diag(cov).max() ** 2 / 40_000) * 3
    wt = bp.tensor(w, dtype=F64, requires_grad=True)
    dt = bp.tensor(dg, dtype=F64, requires_grad=True)
    assert bp.autograd.gradcheck(lambda a, b: D.LowRankMultivariateNormal(t64(loc), a, b).log_prob(t64(x)), (wt, dt))


def _grid_kl(logp, logq, x):
    p = np.exp(logp(x))
    return _trapz(np.where(p > 0, p * (logp(x) - logq(x)), 0.0), x)


def test_kl_divergences_against_numerical_integration():
    x = np.linspace(-40, 120, 1_600_001)
    g1, g2 = D.Gumbel(t64(0.5), t64(1.5)), D.Gumbel(t64(2.0), t64(3.0))

    def gl(m, b):
        return lambda v: -math.log(b) - (v - m) / b - np.exp(-(v - m) / b)

    assert abs(float(npa(D.kl_divergence(g1, g2))) - _grid_kl(gl(0.5, 1.5), gl(2.0, 3.0), x)) < 1e-6

    xp = np.linspace(1e-9, 40, 1_600_001)
    h1, h2 = D.HalfNormal(t64(1.0)), D.HalfNormal(t64(2.5))

    def hl(s):
        return lambda v: math.log(math.sqrt(2 / math.pi) / s) - v ** 2 / (2 * s * s)

    assert abs(float(npa(D.kl_divergence(h1, h2))) - _grid_kl(hl(1.0), hl(2.5), xp)) < 1e-6

    l1, l2 = D.LogNormal(t64(0.1), t64(0.5)), D.LogNormal(t64(-0.3), t64(0.9))
    want = float(npa(D.kl_divergence(D.Normal(t64(0.1), t64(0.5)), D.Normal(t64(-0.3), t64(0.9)))))
    assert abs(float(npa(D.kl_divergence(l1, l2))) - want) < 1e-14

    c1, c2 = D.Cauchy(t64(0.0), t64(1.0)), D.Cauchy(t64(1.0), t64(2.0))
    u = np.linspace(-math.pi / 2 + 1e-9, math.pi / 2 - 1e-9, 2_000_001)

    def cl(m, s):
        return lambda v: -np.log(math.pi * s * (1 + ((v - m) / s) ** 2))

    # x = tan(u) maps the whole line onto a bounded interval
    xs = np.tan(u)
    integrand = np.exp(cl(0, 1)(xs)) * (cl(0, 1)(xs) - cl(1, 2)(xs)) / np.cos(u) ** 2
    assert abs(float(npa(D.kl_divergence(c1, c2))) - _trapz(integrand, u)) < 1e-6

    q1, q2 = D.Geometric(t64(0.3)), D.Geometric(t64(0.6))
    k = np.arange(0, 400)
    pm, qm = 0.3 * 0.7 ** k, 0.6 * 0.4 ** k
    assert abs(float(npa(D.kl_divergence(q1, q2))) - (pm * np.log(pm / qm)).sum()) < 1e-10

    p1, p2 = D.Pareto(t64(2.0), t64(3.0)), D.Pareto(t64(1.0), t64(1.5))
    xs = 2.0 + 1e5 * np.linspace(0, 1, 2_000_001) ** 6

    def pl(s, a):
        return lambda v: math.log(a) + a * math.log(s) - (a + 1) * np.log(v)

    assert abs(float(npa(D.kl_divergence(p1, p2))) - _grid_kl(pl(2.0, 3.0), pl(1.0, 1.5), xs)) < 1e-5
    assert float(npa(D.kl_divergence(p2, p1))) == math.inf
    with pytest.raises(NotImplementedError, match="same transforms"):
        D.kl_divergence(D.TransformedDistribution(D.Normal(0.0, 1.0), [D.transforms.ExpTransform()]),
                        D.TransformedDistribution(D.Normal(0.0, 1.0), [D.transforms.SigmoidTransform()]))


def test_transformed_distribution_shapes_validation_and_expand():
    base = D.Normal(t64(np.zeros((2, 3))), t64(np.ones((2, 3))))
    td = D.TransformedDistribution(base, [D.transforms.StickBreakingTransform()])
    assert tuple(td.batch_shape) == (2,) and tuple(td.event_shape) == (4,)
    assert tuple(td.log_prob(td.sample((5,))).shape) == (5, 2)
    ln = D.LogNormal(0.0, 1.0)
    with pytest.raises(ValueError, match="support"):
        ln.log_prob(bp.tensor(-1.0))
    with pytest.raises(ValueError, match="scale"):
        D.Weibull(-1.0, 1.0)
    with pytest.raises(ValueError, match="transforms must be"):
        D.TransformedDistribution(base, "exp")
    assert D.LogNormal(0.0, 1.0, validate_args=False).log_prob(bp.tensor(-1.0)).isnan().item()
    e = D.Normal(t64([0.0, 1.0]), t64(2.0)).expand([3, 2])
    assert tuple(e.batch_shape) == (3, 2) and tuple(e.sample().shape) == (3, 2)
    np.testing.assert_allclose(npa(e.log_prob(t64(0.5))), np.tile(npa(D.Normal(t64([0.0, 1.0]), t64(2.0))
                                                                       .log_prob(t64(0.5))), (3, 1)))
    ec = D.Categorical(t64([0.2, 0.8])).expand([4])
    assert tuple(ec.sample().shape) == (4,) and tuple(ec.log_prob(t64([1, 1, 0, 1])).shape) == (4,)
    with pytest.raises(NotImplementedError, match="expand"):
        D.LogNormal(0.0, 1.0).expand([3])
    assert D.LKJCholesky(3).event_shape == (3, 3)  # tests/test_distributions_matrix.py checks it
    assert "LogNormal(loc:" in repr(ln) and "TransformedDistribution(" in repr(td)


SCALAR_FAMILIES = {
    "Normal": lambda: D.Normal(0.0, 1.0), "Gamma": lambda: D.Gamma(2.0, 1.0), "Poisson": lambda: D.Poisson(2.0),
    "Binomial": lambda: D.Binomial(5, probs=0.3), "Beta": lambda: D.Beta(2.0, 3.0), "Chi2": lambda: D.Chi2(3.0),
    "StudentT": lambda: D.StudentT(3.0), "FisherSnedecor": lambda: D.FisherSnedecor(3.0, 4.0),
    "NegativeBinomial": lambda: D.NegativeBinomial(3.0, 0.4), "Geometric": lambda: D.Geometric(0.4),
    "LogNormal": lambda: D.LogNormal(0.0, 1.0), "Gumbel": lambda: D.Gumbel(0.0, 1.0),
    "HalfNormal": lambda: D.HalfNormal(1.0), "HalfCauchy": lambda: D.HalfCauchy(1.0), "Cauchy": lambda: D.Cauchy(0.0, 1.0),
    "Weibull": lambda: D.Weibull(1.0, 2.0), "Pareto": lambda: D.Pareto(1.0, 2.0), "Kumaraswamy": lambda: D.Kumaraswamy(2.0, 2.0),
    "RelaxedBernoulli": lambda: D.RelaxedBernoulli(0.5, probs=0.3), "VonMises": lambda: D.VonMises(0.0, 2.0),
}


@pytest.mark.parametrize("name", sorted(SCALAR_FAMILIES))
def test_scalar_parameters_give_scalar_samples(name):
    # a 0-d draw from NumPy's samplers once came back with shape (1,)
    d = SCALAR_FAMILIES[name]()
    assert tuple(d.batch_shape) == () and tuple(d.sample().shape) == ()
    assert tuple(d.sample((4, 2)).shape) == (4, 2)
    assert tuple(d.log_prob(d.sample((3,))).shape) == (3,)
