"""InverseGamma, ContinuousBernoulli and GeneralizedPareto against closed-form densities written
independently in NumPy, integrals of their densities on fine grids (normalisation, moments,
entropy, cdf) and sample moments."""

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions


def _grid(lo, hi, n=200_001):
    x = np.linspace(lo, hi, n)
    return x, x[1] - x[0]


def _trapz(y, dx):
    return float(dx * (y.sum() - 0.5 * (y[0] + y[-1])))


# ------------------------------------------------------------------ InverseGamma

def test_inverse_gamma_density_moments_entropy():
    a, b = 3.5, 2.0
    d = D.InverseGamma(bp.tensor(a, dtype=bp.float64), bp.tensor(b, dtype=bp.float64))
    x, dx = _grid(1e-4, 60.0)
    want = a * math.log(b) - math.lgamma(a) - (a + 1) * np.log(x) - b / x
    got = d.log_prob(bp.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    p = np.exp(want)
    assert _trapz(p, dx) == pytest.approx(1.0, abs=2e-5)
    assert d.mean.item() == pytest.approx(b / (a - 1), rel=1e-12)
    assert d.variance.item() == pytest.approx(b * b / ((a - 1) ** 2 * (a - 2)), rel=1e-12)
    assert d.mode.item() == pytest.approx(x[np.argmax(p)], abs=1e-3)
    assert d.entropy().item() == pytest.approx(-_trapz(p * want, dx), abs=1e-4)
    # no moments where they diverge, as PyTorch
    low = D.InverseGamma(bp.tensor([0.5, 1.5]), bp.tensor([1.0, 1.0]))
    assert low.mean.tolist()[0] == math.inf and low.variance.tolist() == [math.inf, math.inf]


def test_inverse_gamma_samples_and_reparameterised_gradient():
    bp.manual_seed(0)
    rate = bp.tensor(2.0, dtype=bp.float64, requires_grad=True)
    d = D.InverseGamma(bp.tensor(6.0, dtype=bp.float64), rate)
    s = d.rsample((200_000,))
    assert s.mean().item() == pytest.approx(2.0 / 5.0, rel=1e-2)
    s.mean().backward()  # X = rate / G with G ~ Gamma(a, 1): d mean / d rate = 1 / (a - 1)
    assert rate.grad.item() == pytest.approx(1 / 5.0, rel=1e-2)
    with pytest.raises(ValueError, match="concentration"):
        D.InverseGamma(bp.tensor([-1.0]), bp.tensor([1.0]))


# ------------------------------------------------------------------ ContinuousBernoulli

def _cb_log_density(p, x):
    norm = 2.0 if abs(p - 0.5) < 1e-12 else 2 * math.atanh(1 - 2 * p) / (1 - 2 * p)
    return x * math.log(p) + (1 - x) * math.log1p(-p) + math.log(norm)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.4995, 0.5, 0.7, 0.97])
def test_continuous_bernoulli_against_its_definition(p):
    d = D.ContinuousBernoulli(bp.tensor(p, dtype=bp.float64))
    x, dx = _grid(0.0, 1.0, 100_001)
    want = _cb_log_density(p, x)
    # inside lims PyTorch's normaliser is a Taylor polynomial: close, not exact
    tol = 1e-6 if abs(p - 0.5) < 1e-3 else 1e-12
    np.testing.assert_allclose(d.log_prob(bp.tensor(x)).numpy(), want, rtol=tol, atol=tol)
    dens = np.exp(want)
    assert _trapz(dens, dx) == pytest.approx(1.0, abs=1e-8)
    mean = _trapz(x * dens, dx)
    assert d.mean.item() == pytest.approx(mean, abs=1e-6)
    assert d.variance.item() == pytest.approx(_trapz((x - mean) ** 2 * dens, dx), abs=1e-6)
    assert d.entropy().item() == pytest.approx(-_trapz(dens * want, dx), abs=1e-6)
    # cdf against the running integral, icdf inverts it
    cum = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2) * dx])
    probe = np.array([0.0, 0.1, 0.35, 0.8, 1.0])
    idx = np.round(probe / dx).astype(int)
    cdf = d.cdf(bp.tensor(probe)).numpy()
    # inside lims PyTorch's cdf is the uniform's (off by up to ~2e-4 at p = 0.4995)
    np.testing.assert_allclose(cdf, probe if 0.499 < p <= 0.501 else cum[idx], atol=1e-6)
    np.testing.assert_allclose(cdf, cum[idx], atol=5e-4)
    np.testing.assert_allclose(d.icdf(bp.tensor(cdf[1:-1])).numpy(), probe[1:-1], atol=1e-6)


def test_continuous_bernoulli_logits_sampling_gradients():
    bp.manual_seed(1)
    logits = bp.tensor([-1.2, 0.0, 2.0], dtype=bp.float64, requires_grad=True)
    d = D.ContinuousBernoulli(logits=logits)
    same = D.ContinuousBernoulli(probs=logits.detach().sigmoid())
    v = bp.tensor([0.2, 0.6, 0.9], dtype=bp.float64)
    np.testing.assert_allclose(d.log_prob(v).detach().numpy(), same.log_prob(v).numpy(), rtol=1e-12)
    s = d.rsample((100_000,))
    assert s.shape == (100_000, 3) and float(s.min()) >= 0 and float(s.max()) <= 1
    np.testing.assert_allclose(s.mean(0).detach().numpy(), d.mean.detach().numpy(), atol=5e-3)
    s.mean().backward()  # the icdf is differentiable in the parameter
    assert logits.grad is not None and np.all(np.isfinite(logits.grad.numpy()))
    with pytest.raises(ValueError, match="probs has invalid values"):
        D.ContinuousBernoulli(bp.tensor([1.5]), validate_args=True)
    with pytest.raises(ValueError, match="not both"):
        D.ContinuousBernoulli()


# ------------------------------------------------------------------ GeneralizedPareto

def _gpd_log_density(x, loc, scale, k):
    z = (x - loc) / scale
    if k == 0:
        return -math.log(scale) - z
    return -math.log(scale) - (1 / k + 1) * np.log1p(k * z)


@pytest.mark.parametrize("k", [0.3, 0.0, -0.4, -1.0])
def test_generalized_pareto_against_its_definition(k):
    loc, scale = 1.0, 2.0
    d = D.GeneralizedPareto(bp.tensor(loc, dtype=bp.float64), bp.tensor(scale, dtype=bp.float64),
                            bp.tensor(k, dtype=bp.float64))
    hi = loc + scale / abs(k) if k < 0 else loc + 400.0 * scale
    x, dx = _grid(loc, hi - 1e-9, 400_001)
    want = _gpd_log_density(x, loc, scale, k)
    np.testing.assert_allclose(d.log_prob(bp.tensor(x)).numpy(), want, rtol=1e-10, atol=1e-10)
    dens = np.exp(want)
    assert _trapz(dens, dx) == pytest.approx(1.0, abs=2e-3 if k > 0 else 1e-5)
    if k < 0.5:
        m = loc + scale / (1 - k)
        assert d.mean.item() == pytest.approx(m, rel=1e-12)
        assert d.variance.item() == pytest.approx(scale ** 2 / ((1 - k) ** 2 * (1 - 2 * k)), rel=1e-12)
    q = bp.tensor([0.1, 0.5, 0.9], dtype=bp.float64)
    np.testing.assert_allclose(d.cdf(d.icdf(q)).numpy(), q.numpy(), rtol=1e-10)
    assert d.entropy().item() == pytest.approx(math.log(scale) + k + 1, rel=1e-12)


def test_generalized_pareto_edges_and_samples():
    bp.manual_seed(2)
    d = D.GeneralizedPareto(0.0, 1.0, bp.tensor([0.2, 0.7, 1.2]))
    m = d.mean.tolist()
    assert m[0] == pytest.approx(1.25) and m[1] == pytest.approx(1 / 0.3) and math.isnan(m[2])
    assert np.isnan(d.variance.numpy()[1:]).all()
    s = D.GeneralizedPareto(0.0, 1.0, bp.tensor(-0.5)).sample((50_000,))
    assert s.shape == (50_000,) and float(s.min()) >= 0 and float(s.max()) <= 2.0
    assert s.mean().item() == pytest.approx(1 / 1.5, rel=2e-2)
    assert not D.GeneralizedPareto.has_rsample
    bounded = D.GeneralizedPareto(0.0, 1.0, bp.tensor(-0.5))
    with pytest.raises(ValueError, match="support"):
        bounded.log_prob(bp.tensor(3.0))
