"""The host-computed special functions (i0, i0e, i1, i1e, erfcx, ndtri, gammainc/gammaincc and
igamma/igammac), the window functions and VonMises, against independent references: the Bessel
functions by their integral representations (periodic trapezoids, exponentially accurate),
erfcx by ``exp(x^2) erfc(x)``, its integral and its asymptotic series, ndtri by round trips
through ``math.erfc``, the incomplete gamma function by the closed forms at integer and half
-integer ``a`` (the Poisson sum, ``erf``) and by quadrature, windows by NumPy's, gradients by
gradcheck and gradgradcheck."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

S = bp.special
F64 = bp.float64


def t64(a):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=F64)


def npa(t):
    return t.detach().numpy()


def _bessel_scaled_ref(x, order):
    """e^-|x| I_order(x) = (1/pi) int_0^pi exp(|x| (cos t - 1)) cos(order t) dt (sign(x)^order)."""
    t = np.linspace(0, math.pi, 200_001)
    out = []
    for v in x:
        f = np.exp(abs(v) * (np.cos(t) - 1)) * np.cos(order * t)
        w = np.full(t.shape, t[1] - t[0])
        w[0] = w[-1] = w[0] / 2
        out.append((f * w).sum() / math.pi * (np.sign(v) if order else 1.0))
    return np.array(out)


BESSEL_X = np.array([0.0, 1e-6, 0.3, 1.0, 4.5, 12.0, 19.99, 20.0, 20.01, 35.0, 120.0, 700.0, -2.0, -50.0])


def test_scaled_bessel_functions_match_their_integrals():
    np.testing.assert_allclose(npa(S.i0e(t64(BESSEL_X))), _bessel_scaled_ref(BESSEL_X, 0), rtol=1e-13, atol=1e-300)
    # (the reference quadrature's absolute error, ~1e-16, dominates at tiny x)
    np.testing.assert_allclose(npa(S.i1e(t64(BESSEL_X))), _bessel_scaled_ref(BESSEL_X, 1), rtol=1e-13, atol=5e-16)


def test_unscaled_bessel_functions_and_their_limits():
    x = np.array([0.0, 0.5, 3.0, 10.0, 25.0, -4.0, 600.0])
    np.testing.assert_allclose(npa(bp.i0(t64(x))), _bessel_scaled_ref(x, 0) * np.exp(np.abs(x)), rtol=1e-13)
    np.testing.assert_allclose(npa(S.i1(t64(x))), _bessel_scaled_ref(x, 1) * np.exp(np.abs(x)), rtol=1e-13)
    assert npa(bp.i0(t64([800.0, np.inf, np.nan]))).tolist()[:2] == [math.inf, math.inf]
    assert math.isnan(npa(bp.i0(t64([np.nan])))[0])
    assert npa(S.i1(t64([-np.inf])))[0] == -math.inf and npa(S.i0e(t64([np.inf])))[0] == 0.0
    # float32 in, float32 out; integers promote to the default dtype; the method form
    y = bp.i0(bp.tensor([1.0, 2.0]))
    assert y.dtype == bp.float32 and abs(y[0].item() - 1.2660658777520082) < 1e-6
    assert bp.i0(bp.tensor([1, 2])).dtype == bp.float32
    np.testing.assert_allclose(npa(t64([1.5]).i0()), npa(bp.i0(t64([1.5]))))
    z = t64([0.7])
    z.i0_()
    assert abs(z.item() - npa(bp.i0(t64([0.7])))[0]) < 1e-15


@pytest.mark.parametrize("name", ["i0", "i0e", "i1", "i1e", "erfcx"])
def test_bessel_and_erfcx_gradients(name):
    f = getattr(S, name)
    x = bp.tensor([0.4, 1.3, -2.2, 6.0, 24.0], dtype=F64, requires_grad=True)
    assert bp.autograd.gradcheck(f, (x,))
    assert bp.autograd.gradgradcheck(f, (x,))


def test_i1_gradient_at_zero_is_one_half():
    for f in (S.i1, S.i1e):
        x = t64([0.0]).requires_grad_()
        f(x).sum().backward()
        assert x.grad.item() == 0.5


def _erfcx_integral(x):
    """erfcx(x) = 2/sqrt(pi) int_0^inf exp(-t^2 - 2 x t) dt, by Simpson's rule."""
    t = np.linspace(0, 40 / x, 400_001)
    f = np.exp(-t * t - 2 * x * t)
    h = t[1] - t[0]
    return 2 / math.sqrt(math.pi) * h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())


def test_erfcx_against_erfc_its_integral_and_its_asymptotic_series():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 1.99, 2.0, 3.5, 5.0])
    want = np.array([math.exp(v * v) * math.erfc(v) for v in x])
    np.testing.assert_allclose(npa(S.erfcx(t64(x))), want, rtol=5e-15)
    mid = np.array([6.0, 11.0, 25.0])
    np.testing.assert_allclose(npa(S.erfcx(t64(mid))), [_erfcx_integral(v) for v in mid], rtol=1e-12)
    big = np.array([30.0, 1e3, 1e8])
    series = [sum((-1) ** k * math.prod(range(1, 2 * k, 2)) / (2 * v * v) ** k for k in range(12)) / (v * math.sqrt(math.pi))
              for v in big]
    np.testing.assert_allclose(npa(S.erfcx(t64(big))), series, rtol=1e-15)
    assert npa(S.erfcx(t64([np.inf, -30.0]))).tolist() == [0.0, math.inf]


def test_ndtri_inverts_the_normal_cdf_in_both_tails():
    p = np.concatenate([10.0 ** -np.arange(1, 301, 7.0), np.linspace(0.01, 0.99, 37)])
    x = npa(S.ndtri(t64(p)))
    back = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    # the CDF's condition number x phi(x) / Phi(x) ~ x^2 amplifies the last ulp of x
    rel = np.abs(back / p - 1)
    assert (rel < 1.6e-15 * np.maximum(1, x * x)).all(), rel.max()
    assert abs(npa(S.ndtri(t64([0.975])))[0] - 1.959963984540054) < 1e-15
    np.testing.assert_allclose(npa(S.ndtri(t64(1 - p[-37:]))), -x[-37:], rtol=1e-13, atol=1e-15)
    edges = npa(S.ndtri(t64([0.0, 1.0, -0.1, 1.1, np.nan])))
    assert edges[0] == -math.inf and edges[1] == math.inf and np.isnan(edges[2:]).all()
    q = bp.tensor([0.02, 0.4, 0.93], dtype=F64, requires_grad=True)
    assert bp.autograd.gradcheck(S.ndtri, (q,)) and bp.autograd.gradgradcheck(S.ndtri, (q,))


def _q_integer(a, x):
    """Q(n, x) = exp(-x) sum_{k<n} x^k / k!, summed in log space (exact for integer n)."""
    terms = [-x + k * math.log(x) - math.lgamma(k + 1) for k in range(int(a))]
    m = max(terms)
    return math.exp(m) * math.fsum(math.exp(t - m) for t in terms)


def test_incomplete_gamma_against_closed_forms():
    a = np.array([1.0, 1.0, 3.0, 7.0, 30.0, 1000.0, 1000.0])
    x = np.array([0.2, 9.0, 2.5, 7.0, 45.0, 950.0, 1060.0])
    q_ref = np.array([_q_integer(ai, xi) for ai, xi in zip(a, x)])
    # at a = 1000 the prefactor exp(-x + a log x - lgamma(a)) cancels ~1e4 to a few units: ~1e-12
    np.testing.assert_allclose(npa(S.gammaincc(t64(a), t64(x))), q_ref, rtol=1e-11)
    np.testing.assert_allclose(npa(S.gammainc(t64(a), t64(x))), 1 - q_ref, rtol=1e-11)
    # P keeps its relative precision where it is tiny: P(2, x) = x^2/2 - x^3/3 + ...
    tiny = npa(S.gammainc(t64(2.0), t64(1e-8)))
    assert abs(tiny / (1e-16 / 2 - 1e-24 / 3) - 1) < 1e-14
    # half-integers: Q(1/2, x) = erfc(sqrt x), then Q(a + 1, x) = Q(a, x) + x^a e^-x / Gamma(a + 1)
    xs = np.array([0.01, 0.6, 3.0, 20.0])
    q = np.array([math.erfc(math.sqrt(v)) for v in xs])
    for a_half in (0.5, 1.5, 2.5, 3.5):
        np.testing.assert_allclose(npa(bp.igammac(t64(np.full(4, a_half)), t64(xs))), q, rtol=1e-13)
        np.testing.assert_allclose(npa(bp.igamma(t64(np.full(4, a_half)), t64(xs))), 1 - q, rtol=1e-13, atol=1e-15)
        q = q + np.exp(a_half * np.log(xs) - xs - math.lgamma(a_half + 1))


def test_incomplete_gamma_by_quadrature_edges_and_gradient():
    for a, x in ((2.7, 1.3), (0.35, 4.0), (12.5, 9.0)):
        s = np.linspace(0, 1, 200_001)
        f = s ** (a - 1) * np.exp(-x * s) if a >= 1 else None
        if f is None:  # a < 1: substitute s = u^(1/a) to remove the singularity at 0
            u = s
            f = np.exp(-x * u ** (1 / a)) / a
            integral = np.trapezoid(f, u) if hasattr(np, "trapezoid") else np.trapz(f, u)
        else:
            integral = np.trapezoid(f, s) if hasattr(np, "trapezoid") else np.trapz(f, s)
        want = x ** a / math.gamma(a) * integral
        assert abs(npa(S.gammainc(t64(a), t64(x))) - want) < 1e-9, (a, x)
    edges = npa(bp.igamma(t64([0.0, 2.0, 2.0, np.inf, -1.0, 2.0, 0.0]), t64([1.0, 0.0, np.inf, 3.0, 1.0, -1.0, 0.0])))
    np.testing.assert_array_equal(edges[:4], [1.0, 0.0, 1.0, 0.0])
    assert np.isnan(edges[4:]).all()
    a = t64([0.5, 2.0, 6.0])
    x = bp.tensor([0.3, 2.5, 4.0], dtype=F64, requires_grad=True)
    assert bp.autograd.gradcheck(lambda v: bp.igamma(a, v), (x,))
    assert bp.autograd.gradgradcheck(lambda v: bp.igammac(a, v), (x,))
    with pytest.raises(NotImplementedError, match="first argument"):
        bp.igamma(a.clone().requires_grad_(), x).sum().backward()
    assert bp.igamma(2.0, t64([1.0])).dtype == F64 and a.igammac(x).shape == (3,)


WINDOWS = {"hann_window": (np.hanning, {}), "hamming_window": (np.hamming, {}), "blackman_window": (np.blackman, {}),
           "bartlett_window": (np.bartlett, {}), "kaiser_window": (lambda n: np.kaiser(n, 7.5), {"beta": 7.5})}


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_windows_match_numpy(name):
    ref, kw = WINDOWS[name]
    f = getattr(bp, name)
    for n in (2, 5, 16, 51):
        np.testing.assert_allclose(npa(f(n, periodic=False, dtype=F64, **kw)), ref(n), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(npa(f(n, dtype=F64, **kw)), ref(n + 1)[:-1], rtol=1e-12, atol=1e-15)
    assert f(0).shape == (0,) and f(1).tolist() == [1.0] and f(8).dtype == bp.float32
    with pytest.raises(RuntimeError, match="floating point"):
        f(4, dtype=bp.int64)
    with pytest.raises(RuntimeError, match="non-negative"):
        f(-1)


def test_von_mises_density_sampling_and_gradients():
    loc, k = 0.7, 3.5
    d = bp.distributions.VonMises(t64(loc), t64(k))
    th = np.linspace(-math.pi, math.pi, 4001)[:-1]
    p = np.exp(npa(d.log_prob(t64(th))))
    assert abs(p.sum() * (th[1] - th[0]) - 1) < 1e-12  # a periodic trapezoid: exact to rounding
    # the density is exp(k cos(x - loc)) / (2 pi I0(k)) with I0 from its integral
    i0k = _bessel_scaled_ref([k], 0)[0] * math.exp(k)
    np.testing.assert_allclose(p, np.exp(k * np.cos(th - loc)) / (2 * math.pi * i0k), rtol=1e-12)
    bp.manual_seed(0)
    s = npa(d.sample((40_000,)))
    assert s.shape == (40_000,) and (np.abs(s) <= math.pi).all()
    r = np.cos(s - loc).mean()
    want = 1 - float(npa(d.variance))
    assert abs(r - want) < 5 * np.cos(s - loc).std() / math.sqrt(s.size)
    assert abs(want - _bessel_scaled_ref([k], 1)[0] / _bessel_scaled_ref([k], 0)[0]) < 1e-13
    lo = bp.tensor([0.2, -1.0], dtype=F64, requires_grad=True)
    kk = bp.tensor([0.8, 40.0], dtype=F64, requires_grad=True)
    assert bp.autograd.gradcheck(lambda a, b: bp.distributions.VonMises(a, b).log_prob(t64([0.5, -0.9])), (lo, kk))
    with pytest.raises(ValueError, match="concentration"):
        bp.distributions.VonMises(0.0, -1.0)
