"""torch.special's orthogonal polynomials against mpmath at 40 digits (chebyt/chebyu/hermite/
legendre, Laguerre by its explicit sum, V and W by their trigonometric closed forms), with
PyTorch's edge rules: truncated and negative degrees, x = +-1, dtypes, no gradient."""

import math

import mpmath as mp
import numpy as np
import pytest

import backprop_rs as bp

mp.mp.dps = 40
S = bp.special
X = [-1.0, -0.9, -0.3, 0.0, 0.2, 0.77, 1.0, 1.5, -2.0]
DEGREES = [0, 1, 2, 3, 5, 7, 9, 12, 25]


def _laguerre(n, v):
    return mp.fsum(mp.binomial(n, k) * (-mp.mpf(v)) ** k / mp.factorial(k) for k in range(n + 1))


def _v(n, v):  # V_n(cos t) = cos((n + 1/2) t) / cos(t / 2), continued analytically for |x| > 1
    t = mp.acos(mp.mpf(v))
    return mp.re(mp.cos((n + mp.mpf(0.5)) * t) / mp.cos(t / 2)) if v != -1 else (-1) ** n * (2 * n + 1)


def _w(n, v):
    t = mp.acos(mp.mpf(v))
    return mp.re(mp.sin((n + mp.mpf(0.5)) * t) / mp.sin(t / 2)) if v != 1 else 2 * n + 1


REFERENCES = {
    "chebyshev_polynomial_t": lambda n, v: mp.chebyt(n, v),
    "chebyshev_polynomial_u": lambda n, v: mp.chebyu(n, v),
    "chebyshev_polynomial_v": _v,
    "chebyshev_polynomial_w": _w,
    "hermite_polynomial_h": lambda n, v: mp.hermite(n, v),
    "hermite_polynomial_he": lambda n, v: mp.hermite(n, mp.mpf(v) / mp.sqrt(2)) / mp.sqrt(2) ** n,
    "laguerre_polynomial_l": _laguerre,
    "legendre_polynomial_p": lambda n, v: mp.legendre(n, v),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_polynomials_match_mpmath(name):
    f, ref = getattr(S, name), REFERENCES[name]
    for n in DEGREES:
        got = f(bp.tensor(X, dtype=bp.float64), n).numpy()
        want = np.array([float(ref(n, v)) for v in X])
        # relative to max(1, |value|): near a root the recurrence's absolute error is what counts
        np.testing.assert_allclose(got / np.maximum(1, np.abs(want)), want / np.maximum(1, np.abs(want)),
                                   rtol=0, atol=2e-13, err_msg=f"{name} n={n}")


@pytest.mark.parametrize("kind", "tuvw")
def test_shifted_chebyshev_is_the_chebyshev_of_2x_minus_1(kind):
    x = np.array([0.0, 0.1, 0.5, 0.93, 1.0, 1.2, -0.4])
    for n in (0, 1, 4, 11):
        got = getattr(S, f"shifted_chebyshev_polynomial_{kind}")(bp.tensor(x, dtype=bp.float64), n).numpy()
        ref = REFERENCES[f"chebyshev_polynomial_{kind}"]
        want = np.array([float(ref(n, 2 * v - 1)) for v in x])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_degrees_follow_pytorch():
    x = bp.tensor([0.5, 0.5, 0.5, 0.5])
    # a tensor of degrees broadcasts; 2.9 truncates to 2; negative degrees give 0
    got = S.chebyshev_polynomial_t(x, bp.tensor([-1.0, 2.9, 3.0, 0.0])).tolist()
    assert got == [0.0, -0.5, -1.0, 1.0]
    assert S.legendre_polynomial_p(bp.tensor([[0.3], [0.6]]), bp.tensor([1, 2])).shape == (2, 2)
    assert S.laguerre_polynomial_l(bp.tensor([0.0]), 40).item() == 1.0
    # the closed values at x = -1
    assert S.chebyshev_polynomial_u(bp.tensor([-1.0]), 3).item() == -4.0
    assert S.chebyshev_polynomial_w(bp.tensor([-1.0]), 3).item() == -1.0
    # a high degree inside (-1, 1) takes the trigonometric form: stable where the recurrence is not
    t = S.chebyshev_polynomial_t(bp.tensor([0.3], dtype=bp.float64), 1001).item()
    assert t == pytest.approx(math.cos(1001 * math.acos(0.3)), abs=1e-12)


def test_dtypes_numbers_and_no_gradient():
    assert S.hermite_polynomial_h(bp.tensor([1, 2]), 3).dtype == bp.float32  # integer input: a float op
    assert S.hermite_polynomial_h(bp.tensor([1.0], dtype=bp.float64), bp.tensor([2])).dtype == bp.float64
    assert S.hermite_polynomial_h(0.5, bp.tensor([3])).tolist() == [-5.0]  # 8x^3 - 12x
    x = bp.tensor([0.2], requires_grad=True)
    with pytest.raises(NotImplementedError, match="derivative of torch.special.legendre_polynomial_p"):
        S.legendre_polynomial_p(x, 3).sum().backward()
    with pytest.raises(TypeError, match="Tensor"):
        S.legendre_polynomial_p(0.5, 3)
