"""``bp.distributions`` against independent references: densities and moments from their
closed forms in NumPy, KL divergences by numerical integration (or sums) of p log(p/q) on a
grid, samplers by their empirical moments under a fixed seed (bounds of 5 standard errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions


@pytest.fixture(autouse=True)
def _seed():
    bp.manual_seed(0)


def npa(t):
    return t.detach().numpy()


def _grid_kl(logp, logq, lo, hi, n=400_001):
    x = np.linspace(lo, hi, n)
    lp, lq = logp(x), logq(x)
    f = np.where(np.isfinite(lp), np.exp(lp) * (lp - lq), 0.0)
    return np.trapezoid(f, x) if hasattr(np, "trapezoid") else np.trapz(f, x)


def test_normal_density_cdf_icdf_entropy_and_reparameterised_gradient():
    loc = np.array([0.0, 1.5, -2.0])
    scale = np.array([1.0, 0.5, 3.0])
    d = D.Normal(bp.tensor(loc, dtype=bp.float64), bp.tensor(scale, dtype=bp.float64))
    x = np.array([0.3, 1.0, 4.0])
    want = -((x - loc) ** 2) / (2 * scale ** 2) - np.log(scale) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(npa(d.log_prob(bp.tensor(x))), want, rtol=1e-12)
    cdf = np.array([0.5 * (1 + math.erf((a - m) / (s * math.sqrt(2)))) for a, m, s in zip(x, loc, scale)])
    np.testing.assert_allclose(npa(d.cdf(bp.tensor(x))), cdf, rtol=1e-12)
    np.testing.assert_allclose(npa(d.icdf(bp.tensor(cdf))), x, rtol=1e-9)
    np.testing.assert_allclose(npa(d.entropy()), 0.5 + 0.5 * math.log(2 * math.pi) + np.log(scale), rtol=1e-12)
    assert d.batch_shape == (3,) and d.event_shape == () and d.sample((4, 2)).shape == (4, 2, 3)
    mu = bp.tensor([0.5], requires_grad=True)
    sigma = bp.tensor([2.0], requires_grad=True)
    bp.manual_seed(1)
    z = D.Normal(mu, sigma).rsample((1000,))
    z.sum().backward()
    bp.manual_seed(1)
    eps = bp.randn(1000, 1)
    assert mu.grad.item() == 1000.0
    np.testing.assert_allclose(sigma.grad.item(), eps.sum().item(), rtol=1e-5)
    s = npa(D.Normal(3.0, 2.0).sample((200_000,)))
    assert abs(s.mean() - 3.0) < 5 * 2 / math.sqrt(s.size) and abs(s.std() - 2.0) < 0.02
    assert not D.Normal(mu, sigma).sample().requires_grad


def test_arguments_and_values_are_validated_as_pytorch():
    with pytest.raises(ValueError, match="scale"):
        D.Normal(0.0, -1.0)
    with pytest.raises(ValueError, match="support"):
        D.Uniform(0.0, 1.0).log_prob(bp.tensor(1.5))
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        D.Bernoulli()
    with pytest.raises(ValueError, match="support"):
        D.Categorical(logits=bp.zeros(3)).log_prob(bp.tensor(3))
    assert D.Normal(0.0, -1.0, validate_args=False).scale.item() == -1.0
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchDistribution'"):
        D.NoSuchDistribution  # noqa: B018


def test_uniform_exponential_laplace_against_closed_forms():
    u = D.Uniform(bp.tensor([0.0, -1.0], dtype=bp.float64), bp.tensor([2.0, 3.0], dtype=bp.float64))
    np.testing.assert_allclose(npa(u.log_prob(bp.tensor([1.0, 0.0], dtype=bp.float64))), -np.log([2.0, 4.0]))
    np.testing.assert_allclose(npa(u.cdf(bp.tensor([1.0, 5.0], dtype=bp.float64))), [0.5, 1.0])
    np.testing.assert_allclose(npa(u.entropy()), np.log([2.0, 4.0]))
    np.testing.assert_allclose(npa(u.variance), np.array([4.0, 16.0]) / 12)
    e = D.Exponential(bp.tensor([0.5, 2.0], dtype=bp.float64))
    x = np.array([1.0, 0.25])
    np.testing.assert_allclose(npa(e.log_prob(bp.tensor(x))), np.log([0.5, 2.0]) - np.array([0.5, 2.0]) * x)
    np.testing.assert_allclose(npa(e.icdf(e.cdf(bp.tensor(x)))), x, rtol=1e-12)
    np.testing.assert_allclose(npa(e.entropy()), 1 - np.log([0.5, 2.0]))
    lap = D.Laplace(bp.tensor(1.0, dtype=bp.float64), bp.tensor(0.5, dtype=bp.float64))
    xs = np.array([-1.0, 1.0, 2.5])
    np.testing.assert_allclose(npa(lap.log_prob(bp.tensor(xs))), -np.log(1.0) - np.abs(xs - 1) / 0.5)
    np.testing.assert_allclose(npa(lap.icdf(lap.cdf(bp.tensor(xs)))), xs, rtol=1e-12)
    for dist, mean, var in [(D.Exponential(4.0), 0.25, 1 / 16), (D.Laplace(-1.0, 2.0), -1.0, 8.0),
                            (D.Uniform(2.0, 5.0), 3.5, 0.75)]:
        s = npa(dist.sample((200_000,))).astype(np.float64)
        assert abs(s.mean() - mean) < 5 * math.sqrt(var / s.size), type(dist).__name__
        assert abs(s.var() - var) / var < 0.03, type(dist).__name__


def test_bernoulli_probs_and_logits_agree_with_the_definition():
    p = np.array([0.1, 0.5, 0.8])
    x = np.array([1.0, 0.0, 1.0])
    for d in (D.Bernoulli(probs=bp.tensor(p, dtype=bp.float64)),
              D.Bernoulli(logits=bp.tensor(np.log(p / (1 - p)), dtype=bp.float64))):
        np.testing.assert_allclose(npa(d.log_prob(bp.tensor(x, dtype=bp.float64))),
                                   x * np.log(p) + (1 - x) * np.log(1 - p), rtol=1e-10)
        np.testing.assert_allclose(npa(d.entropy()), -(p * np.log(p) + (1 - p) * np.log(1 - p)), rtol=1e-10)
        np.testing.assert_allclose(npa(d.mean), p, rtol=1e-12)
    s = npa(D.Bernoulli(probs=bp.full((100_000,), 0.3)).sample())
    assert set(np.unique(s)) == {0.0, 1.0} and abs(s.mean() - 0.3) < 5 * math.sqrt(0.21 / s.size)
    assert D.Bernoulli(probs=bp.tensor([0.2, 0.7])).enumerate_support().shape == (2, 2)


def test_categorical_log_prob_entropy_sampling_and_score_gradient():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5))
    lt = bp.tensor(logits, requires_grad=True)
    d = D.Categorical(logits=lt)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    idx = np.array([4, 0, 2])
    lp = d.log_prob(bp.tensor(idx))
    np.testing.assert_allclose(npa(lp), logp[np.arange(3), idx], rtol=1e-5)
    np.testing.assert_allclose(npa(d.entropy()), -(np.exp(logp) * logp).sum(-1), rtol=1e-5)
    lp.sum().backward()  # the score function: onehot - softmax
    np.testing.assert_allclose(npa(lt.grad), np.eye(5)[idx] - np.exp(logp), atol=1e-6)
    probs = np.array([0.1, 0.0, 0.6, 0.3])
    c = D.Categorical(probs=bp.tensor(probs * 2))  # unnormalised probs are normalised
    np.testing.assert_allclose(npa(c.probs), probs, rtol=1e-6)
    assert np.isfinite(c.entropy().item())
    s = npa(c.sample((100_000,)))
    freq = np.bincount(s, minlength=4) / s.size
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / s.size) + 1e-9)
    assert c.enumerate_support().tolist() == [0, 1, 2, 3]
    oh = D.OneHotCategorical(probs=bp.tensor(probs))
    v = oh.sample((6,))
    assert v.shape == (6, 4) and bp.equal(v.sum(-1), bp.ones(6))
    np.testing.assert_allclose(npa(oh.log_prob(bp.tensor(np.eye(4)[[2]]))), np.log([0.6]), rtol=1e-6)


def test_independent_moves_batch_dims_into_the_event():
    base = D.Normal(bp.zeros(4, 3, dtype=bp.float64), bp.full((4, 3), 2.0, dtype=bp.float64))
    ind = D.Independent(base, 1)
    assert ind.batch_shape == (4,) and ind.event_shape == (3,)
    x = bp.randn(4, 3, dtype=bp.float64)
    np.testing.assert_allclose(npa(ind.log_prob(x)), npa(base.log_prob(x)).sum(-1))
    np.testing.assert_allclose(npa(ind.entropy()), npa(base.entropy()).sum(-1))
    with pytest.raises(ValueError):
        D.Independent(base, 3)


def _normal_logpdf(m, s):
    return lambda x: -((x - m) ** 2) / (2 * s * s) - math.log(s) - 0.5 * math.log(2 * math.pi)


def test_kl_divergences_against_numerical_integration():
    kl = D.kl_divergence
    got = kl(D.Normal(0.5, 1.2), D.Normal(-1.0, 0.7)).item()
    assert abs(got - _grid_kl(_normal_logpdf(0.5, 1.2), _normal_logpdf(-1.0, 0.7), -20, 20)) < 1e-5
    lap = lambda m, b: (lambda x: -np.log(2 * b) - np.abs(x - m) / b)  # noqa: E731
    got = kl(D.Laplace(0.0, 1.0), D.Laplace(1.0, 2.0)).item()
    assert abs(got - _grid_kl(lap(0.0, 1.0), lap(1.0, 2.0), -40, 40)) < 1e-5
    ex = lambda r: (lambda x: np.log(r) - r * x)  # noqa: E731
    got = kl(D.Exponential(2.0), D.Exponential(0.5)).item()
    assert abs(got - _grid_kl(ex(2.0), ex(0.5), 0, 40)) < 1e-5
    assert abs(kl(D.Uniform(0.0, 1.0), D.Uniform(-1.0, 3.0)).item() - math.log(4.0)) < 1e-6
    assert kl(D.Uniform(0.0, 2.0), D.Uniform(0.5, 3.0)).item() == float("inf")
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
    got = kl(D.Categorical(probs=bp.tensor(p, dtype=bp.float64)), D.Categorical(probs=bp.tensor(q, dtype=bp.float64)))
    np.testing.assert_allclose(got.item(), (p * np.log(p / q)).sum(), rtol=1e-6)
    got = kl(D.Bernoulli(probs=bp.tensor(0.3, dtype=bp.float64)), D.Bernoulli(probs=bp.tensor(0.6, dtype=bp.float64)))
    np.testing.assert_allclose(got.item(), 0.3 * math.log(0.5) + 0.7 * math.log(0.7 / 0.4), rtol=1e-6)
    assert kl(D.Bernoulli(probs=bp.tensor(0.5)), D.Bernoulli(probs=bp.tensor(0.0))).item() == float("inf")
    ind = kl(D.Independent(D.Normal(bp.zeros(2, 3), bp.ones(2, 3)), 1),
             D.Independent(D.Normal(bp.ones(2, 3), bp.ones(2, 3)), 1))
    np.testing.assert_allclose(npa(ind), [1.5, 1.5], rtol=1e-6)
    with pytest.raises(NotImplementedError, match="No KL"):
        kl(D.Normal(0.0, 1.0), D.Exponential(1.0))

    class Tilted(D.Normal):
        pass

    @D.register_kl(Tilted, D.Exponential)
    def _kl(p, q):
        return p.loc * 0 + 42.0

    assert kl(Tilted(0.0, 1.0), D.Exponential(1.0)).item() == 42.0
    assert kl(Tilted(0.0, 1.0), D.Normal(0.0, 1.0)).item() == 0.0  # falls back along the MRO
