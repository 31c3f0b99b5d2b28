"""erfc and the gamma family (engine primitives) and what is built on them (ndtr, log_ndtr,
mvlgamma, polygamma), against libm (``math``) and the independent NumPy digamma/trigamma of the
op table; the op table itself runs forward/gradcheck/GPU parity for each primitive."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp
from op_table import _digamma, _lgamma, _trigamma

EULER = 0.5772156649015329


@pytest.mark.parametrize("dtype,rtol", [(bp.float64, 1e-14), (bp.float32, 3e-7)])
def test_known_values(dtype, rtol):
    x = bp.tensor([1.0, 0.5, 2.0, 10.0], dtype=dtype)
    want_psi = [-EULER, -EULER - 2 * math.log(2), 1 - EULER, sum(1 / k for k in range(1, 10)) - EULER]
    want_psi1 = [math.pi ** 2 / 6, math.pi ** 2 / 2, math.pi ** 2 / 6 - 1, math.pi ** 2 / 6 - sum(1 / k ** 2 for k in range(1, 10))]
    np.testing.assert_allclose(x.digamma().numpy(), want_psi, rtol=rtol)
    np.testing.assert_allclose(bp.polygamma(1, x).numpy(), want_psi1, rtol=rtol)
    np.testing.assert_allclose(x.lgamma().numpy(), [0.0, 0.5 * math.log(math.pi), 0.0, math.log(362880)], rtol=rtol, atol=1e-15)


@pytest.mark.parametrize("dtype,tol", [(bp.float64, 1e-13), (bp.float32, 2e-6)])
def test_wide_range_against_references(dtype, tol):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-30, 30, 200), rng.uniform(1e-3, 1, 50), [1e-8, 170.5, 1e6]])
    t = bp.tensor(x, dtype=dtype)
    xr = t.double().numpy()  # the values the kernel saw
    for got, ref in ((t.lgamma(), _lgamma), (t.digamma(), _digamma), (bp.polygamma(1, t), _trigamma)):
        want = ref(xr)
        np.testing.assert_allclose(got.double().numpy(), want, rtol=tol * 50, atol=tol * 10)
    want = np.array([math.erfc(v) for v in xr]).astype(np.float32 if dtype == bp.float32 else np.float64)
    np.testing.assert_allclose(t.erfc().double().numpy(), want, rtol=tol, atol=0)


def test_poles_and_infinities_follow_pytorch():
    x = bp.tensor([0.0, -0.0, -1.0, -2.0, math.inf, -math.inf, math.nan], dtype=bp.float64)
    inf, nan = math.inf, math.nan
    np.testing.assert_array_equal(x.lgamma().numpy(), [inf, inf, inf, inf, inf, inf, nan])
    np.testing.assert_array_equal(x.digamma().numpy(), [-inf, inf, nan, nan, inf, nan, nan])
    np.testing.assert_array_equal(x.polygamma(1).numpy(), [inf, inf, inf, inf, 0.0, nan, nan])
    np.testing.assert_allclose(x.erfc().numpy(), [1.0, 1.0, math.erfc(-1), math.erfc(-2), 0.0, 2.0, nan], rtol=1e-15)


@pytest.mark.parametrize("dtype,x", [(bp.float64, -2.98e-46), (bp.float64, 3e-200), (bp.float32, -1e-30)])
def test_tiny_arguments_keep_their_digits_through_the_reflection(dtype, x):
    # the reflection reduces x modulo 1: a reduction through floor(x) rounds -1e-30 to 1 and
    # loses the pole's strength (trigamma came out 1e32 instead of 1e91 at -3e-46)
    t = bp.tensor([x], dtype=dtype)
    v = t.double().item()
    with np.errstate(over="ignore"):
        want_psi1 = np.float64(1.0) / (v * v) if abs(v) > 1e-154 else math.inf
    np.testing.assert_allclose(t.polygamma(1).double().item(), float(np.asarray(want_psi1, t.numpy().dtype)), rtol=1e-6)
    np.testing.assert_allclose(t.digamma().double().item(), -1.0 / v - EULER, rtol=1e-6)
    np.testing.assert_allclose(t.lgamma().double().item(), -math.log(abs(v)), rtol=1e-6)


def test_erfc_keeps_the_tail_that_one_minus_erf_loses():
    x = bp.tensor([5.0, 9.0], dtype=bp.float32)
    assert (1 - x.erf()).numpy().tolist() == [0.0, 0.0]
    np.testing.assert_allclose(x.erfc().numpy(), [math.erfc(5.0), math.erfc(9.0)], rtol=1e-6)


def _log_ndtr_ref(v):
    # libm's erfc keeps its digits down to -37 (below that it underflows float64)
    if v > 0:
        return math.log1p(-0.5 * math.erfc(v / math.sqrt(2)))
    return math.log(0.5 * math.erfc(-v / math.sqrt(2)))


# the tolerance is the conditioning of the tails: the argument x/sqrt(2) carries one rounding, and
# erfc's relative sensitivity to it grows as x^2 (36^2 ulps at -36)
@pytest.mark.parametrize("dtype,tol", [(bp.float64, 3e-13), (bp.float32, 1e-5)])
def test_ndtr_and_log_ndtr(dtype, tol):
    xs = [-36.0, -25.0, -20.5, -19.9, -12.0, -10.5, -9.5, -3.0, -0.5, 0.0, 0.5, 2.0, 6.0, 9.0]
    t = bp.tensor(xs, dtype=dtype)
    xr = t.double().numpy()
    np.testing.assert_allclose(bp.special.log_ndtr(t).double().numpy(), [_log_ndtr_ref(v) for v in xr], rtol=tol)
    want = [0.5 * math.erfc(-v / math.sqrt(2)) for v in xr]
    if dtype == bp.float32:  # below float32's range the CDF is 0 there, as in PyTorch
        want = np.asarray(want, np.float32).astype(np.float64)
    np.testing.assert_allclose(bp.special.ndtr(t).double().numpy(), want, rtol=tol * 10)


def test_log_ndtr_gradient_across_its_branches():
    x = bp.tensor([-30.0, -20.5, -15.0, -1.0, 0.3, 4.0], dtype=bp.float64, requires_grad=True)
    assert bp.autograd.gradcheck(bp.special.log_ndtr, [x], eps=1e-6, atol=1e-7, rtol=1e-5)
    bp.special.log_ndtr(x).sum().backward()
    v = x.detach().numpy()
    # d/dx log Phi(x) = phi(x) / Phi(x), the inverse Mills ratio
    want = [math.exp(-a * a / 2) / math.sqrt(2 * math.pi) / (0.5 * math.erfc(-a / math.sqrt(2))) for a in v]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-10)


def test_digamma_is_the_gradient_of_lgamma_and_trigamma_its_own():
    x = bp.tensor([0.3, 1.7, 4.2, -1.5], dtype=bp.float64, requires_grad=True)
    (g,) = bp.autograd.grad(x.lgamma().sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), _digamma(x.detach().numpy()), rtol=1e-13)
    (h,) = bp.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), _trigamma(x.detach().numpy()), rtol=1e-13)


def test_refusals_say_what_is_missing():
    x = bp.tensor([1.5], dtype=bp.float64, requires_grad=True)
    # the engine's trigamma primitive has no derivative kernel: its own backward (as digamma's
    # second derivative) says so, while bp.polygamma(1, x) differentiates through the host's
    # polygamma(2) (tests/test_zeta.py)
    (g,) = bp.autograd.grad(x.digamma().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"polygamma\(2, x\) is not implemented"):
        g.sum().backward()
    with pytest.raises(RuntimeError, match="negative n"):
        bp.polygamma(-1, x)
    with pytest.raises(RuntimeError, match=r"greater than \(p-1\)/2 = 1.0"):
        bp.mvlgamma(bp.tensor([0.9, 3.0]), 3)


def test_names_and_in_place_forms():
    x = bp.tensor([0.5, 2.0, 3.5], dtype=bp.float64)
    for name in ("lgamma", "digamma", "erfc"):
        np.testing.assert_array_equal(getattr(bp, name)(x).numpy(), getattr(x, name)().numpy())
        y = x.clone()
        assert getattr(y, name + "_")() is y
        np.testing.assert_array_equal(y.numpy(), getattr(x, name)().numpy())
    np.testing.assert_array_equal(bp.special.gammaln(x).numpy(), x.lgamma().numpy())
    np.testing.assert_array_equal(bp.special.psi(x).numpy(), x.digamma().numpy())
    np.testing.assert_array_equal(bp.special.multigammaln(x + 1, 2).numpy(), bp.mvlgamma(x + 1, 2).numpy())
    y = x.clone()
    y.polygamma_(1)
    np.testing.assert_array_equal(y.numpy(), bp.polygamma(1, x).numpy())
    assert bp.lgamma(bp.tensor([3])).dtype == bp.float32  # integers promote, as in PyTorch
