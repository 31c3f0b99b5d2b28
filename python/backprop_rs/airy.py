"""``torch.special.airy_ai``: the Airy function ``Ai``, the solution of ``y'' = x y`` that decays
as ``x -> inf``. Computed on the host in float64 NumPy and rounded to the input's dtype, like the
other ``special_kernels``.

Why by hand: NumPy has no Airy function and SciPy is not a dependency. Each region of the real
line gets the method that keeps its digits there (DLMF section 9):

* ``-2.5 <= x <= 2``: the Maclaurin series ``Ai = c1 f(x) - c2 g(x)`` (9.4.1); its terms stay
  below 20, so at most a digit cancels;
* ``-8 <= x < -2.5``: Taylor series of radius 1/4 about centres spaced by 1/2, their
  coefficients from ``y'' = x y`` (``a_(n+2) = (c a_n + a_(n-1)) / ((n+1)(n+2))``) and the values
  at the centres from the Maclaurin series summed exactly in rational arithmetic (once, on first
  use): there the series' alternating terms reach ``e^15`` and would cost ten digits in floats;
* ``x < -8``: the asymptotic expansions 9.7.9/9.7.10 in ``zeta = (2/3)|x|^(3/2)``, summed to their
  smallest term (below 1e-13 of the envelope at -8, better beyond);
* ``2 < x <= 103.892``: ``Ai = (1/pi) sqrt(x/3) K_(1/3)(zeta)`` (9.6.1) with
  ``e^zeta K_nu(zeta) = int_0^inf exp(-zeta (cosh t - 1)) cosh(nu t) dt`` by the trapezoidal rule,
  geometric for this analytic integrand; the step follows the integrand's width.

Measured against mpmath (``tests/test_airy.py``): errors below ``1e-15 (10 + zeta)`` of the
envelope ``|x|^(-1/4)/sqrt(pi)`` for ``x < 0`` (no method keeps relative digits at the zeros, and
the phase ``zeta`` carries its own rounding), and a relative 2e-13 for ``x > 0`` (the condition
number of ``e^-zeta`` itself grows like ``zeta``).
Edges as PyTorch's Cephes kernel: NaN at ``+-inf`` and NaN, 0 above 103.892 (where ``Ai`` is below
the smallest normal float64).

Gradient (PyTorch has none for ``airy_ai``): ``Ai'``, computed alongside by the same methods,
whose own derivative is ``x Ai(x)`` by the differential equation, so it differentiates again.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from ._core import Tensor
from .special_kernels import _unary

_AI0 = 0.355028053887817239260  # Ai(0) = 3^(-2/3) / Gamma(2/3)
_AIP0 = 0.258819403792806798405  # -Ai'(0) = 3^(-1/3) / Gamma(1/3)
_EPS = float(np.finfo(np.float64).eps)
_SERIES_LO, _SERIES_HI = -2.5, 2.0
_ASYMPTOTIC = -8.0
_UNDERFLOW = 103.892  # PyTorch's bound: Ai is 0 above it
_CENTRE_STEP = 0.5


def _maclaurin_terms(z: Any, k: int) -> tuple:
    """The ratios of consecutive terms (k >= 1) of ``f``, ``g``, ``f'`` and ``g'`` (9.4.1,
    ``z = x^3``); ``f'`` starts at ``k = 1`` from ``x^2/2``, so its ratio is used from ``k = 2``."""
    return (z / ((3 * k - 1) * (3 * k)), z / ((3 * k) * (3 * k + 1)),
            z / ((3 * k - 1) * (3 * k - 3)) if k > 1 else None, z / ((3 * k) * (3 * k - 2)))


def _series(x: np.ndarray) -> tuple:
    z = x ** 3
    tf, tg, tfp, tgp = np.ones_like(x), x.copy(), x * x / 2, np.ones_like(x)
    f, g, fp, gp = tf.copy(), tg.copy(), tfp.copy(), tgp.copy()
    for k in range(1, 200):
        rf, rg, rfp, rgp = _maclaurin_terms(z, k)
        tf, tg, tgp = tf * rf, tg * rg, tgp * rgp
        if rfp is not None:
            tfp = tfp * rfp
            fp = fp + tfp
        f, g, gp = f + tf, g + tg, gp + tgp
        size = np.abs(tf) + np.abs(tg) + np.abs(tfp) + np.abs(tgp)
        if np.all(size <= _EPS / 16 * (np.abs(f) + np.abs(g) + np.abs(fp) + np.abs(gp))):
            break
    return _AI0 * f - _AIP0 * g, _AI0 * fp - _AIP0 * gp


def _exact_at(c: float) -> tuple:
    """``(Ai(c), Ai'(c))`` with ``f``, ``g``, ``f'``, ``g'`` summed in exact rationals (``c`` is a
    float, so a dyadic rational), each rounded once: for negative ``c`` the four are of the order
    of ``Ai`` itself, so the final combination loses nothing."""
    x = Fraction(c)
    z = x ** 3
    tf, tg, tfp, tgp = Fraction(1), x, x * x / 2, Fraction(1)
    f, g, fp, gp = tf, tg, tfp, tgp
    for k in range(1, 1000):
        rf, rg, rfp, rgp = _maclaurin_terms(z, k)
        tf, tg, tgp = tf * rf, tg * rg, tgp * rgp
        if rfp is not None:
            tfp = tfp * rfp
            fp += tfp
        f, g, gp = f + tf, g + tg, gp + tgp
        if k > 8 and abs(tf) + abs(tg) + abs(tfp) + abs(tgp) < Fraction(1, 10 ** 30):
            break
    return _AI0 * float(f) - _AIP0 * float(g), _AI0 * float(fp) - _AIP0 * float(gp)


_centres: Optional[tuple] = None


def _taylor(x: np.ndarray) -> tuple:
    global _centres
    if _centres is None:
        cs = np.arange(_ASYMPTOTIC, _SERIES_LO + _CENTRE_STEP / 2, _CENTRE_STEP)
        values = np.array([_exact_at(float(c)) for c in cs])
        _centres = (cs, values[:, 0], values[:, 1])
    cs, ai_c, aip_c = _centres
    i = np.clip(np.rint((x - cs[0]) / _CENTRE_STEP).astype(np.int64), 0, len(cs) - 1)
    c, h = cs[i], x - cs[i]
    coef = [ai_c[i], aip_c[i]]
    ai, aip = coef[0] + coef[1] * h, coef[1].copy()
    hp = h.copy()  # h^(n-1)
    for n in range(2, 80):
        a_n = (c * coef[n - 2] + (coef[n - 3] if n >= 3 else 0.0)) / (n * (n - 1))
        coef.append(a_n)
        aip = aip + n * a_n * hp
        hp = hp * h
        ai = ai + a_n * hp
        if np.all(np.abs(a_n * hp) * n <= _EPS / 16 * (np.abs(ai) + np.abs(aip) + _EPS)):
            break
    return ai, aip


def _asymptotic(x: np.ndarray) -> tuple:
    ax = -x
    zeta = 2.0 / 3.0 * ax * np.sqrt(ax)
    # u_k and v_k of DLMF 9.7.2
    u = [1.0]
    for k in range(1, 40):
        u.append(u[-1] * (6 * k - 5) * (6 * k - 3) * (6 * k - 1) / ((2 * k - 1) * 216 * k))
    v = [1.0] + [-(6 * k + 1) / (6 * k - 1) * u[k] for k in range(1, 40)]
    even_u, odd_u, even_v, odd_v = (np.zeros_like(x) for _ in range(4))
    power = np.ones_like(x)
    active = np.ones(x.shape, bool)
    previous = np.full(x.shape, np.inf)
    for k in range(40):
        tu, tv = u[k] * power, v[k] * power
        size = np.abs(tu) + np.abs(tv)
        active &= size < previous  # the expansion diverges: stop before its terms grow
        sign = -1.0 if (k // 2) % 2 else 1.0
        if k % 2 == 0:
            even_u, even_v = np.where(active, even_u + sign * tu, even_u), np.where(active, even_v + sign * tv, even_v)
        else:
            odd_u, odd_v = np.where(active, odd_u + sign * tu, odd_u), np.where(active, odd_v + sign * tv, odd_v)
        active &= size > _EPS / 16
        if not active.any():
            break
        previous = size
        power = power / zeta
    phase = zeta - math.pi / 4
    cos, sin = np.cos(phase), np.sin(phase)
    amp = 1 / math.sqrt(math.pi)
    return (amp * ax ** -0.25 * (cos * even_u + sin * odd_u),
            amp * ax ** 0.25 * (sin * even_v - cos * odd_v))


_TRAP = np.arange(64, dtype=np.float64)
_TRAP_WEIGHT = np.where(_TRAP == 0, 0.5, 1.0)


def _positive(x: np.ndarray) -> tuple:
    zeta = 2.0 / 3.0 * x * np.sqrt(x)
    # the integrand is about exp(-zeta t^2 / 2): a step of 0.6/sqrt(zeta) resolves it to 1e-17,
    # 1/5 keeps the aliasing of the strip |Im t| < pi/2 below that; 64 nodes reach
    # zeta (cosh t - 1) > 40 for every zeta >= zeta(2)
    h = np.minimum(0.2, 0.6 / np.sqrt(zeta))
    t = h[:, None] * _TRAP[None, :]
    e = np.exp(-zeta[:, None] * (np.cosh(t) - 1.0)) * _TRAP_WEIGHT
    k13 = (e * np.cosh(t / 3)).sum(1) * h
    k23 = (e * np.cosh(2 * t / 3)).sum(1) * h
    damp = np.exp(-zeta)
    return np.sqrt(x / 3) / math.pi * k13 * damp, -x / (math.pi * math.sqrt(3)) * k23 * damp


def _airy(x: np.ndarray) -> tuple:
    """``(Ai(x), Ai'(x))`` over a flat float64 array."""
    ai, aip = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    regions = (((x >= _SERIES_LO) & (x <= _SERIES_HI), _series),
               ((x >= _ASYMPTOTIC) & (x < _SERIES_LO), _taylor),
               ((x < _ASYMPTOTIC) & np.isfinite(x), _asymptotic),
               ((x > _SERIES_HI) & (x <= _UNDERFLOW), _positive))
    for mask, method in regions:
        if mask.any():
            ai[mask], aip[mask] = _by_chunks(method, x[mask])
    above = (x > _UNDERFLOW) & np.isfinite(x)  # +inf stays NaN, as PyTorch's kernel
    ai[above], aip[above] = 0.0, 0.0
    return ai, aip


def _by_chunks(method: Any, x: np.ndarray) -> tuple:
    """``method`` over slices of ``x``, so the (elements x nodes) arrays stay small."""
    a, b = np.empty_like(x), np.empty_like(x)
    for s in range(0, x.size, 4096):
        a[s:s + 4096], b[s:s + 4096] = method(x[s:s + 4096])
    return a, b


def _ai_np(x: np.ndarray) -> np.ndarray:
    return _airy(x)[0]


def _aip_np(x: np.ndarray) -> np.ndarray:
    return _airy(x)[1]


_airy_ai_prime = _unary("airy_ai_prime", _aip_np, lambda x, y: x * airy_ai(x))
_airy_ai = _unary("airy_ai", _ai_np, lambda x, y: _airy_ai_prime(x))


def airy_ai(input: Tensor, *, out: Any = None) -> Tensor:
    """The Airy function ``Ai(x)`` (``torch.special.airy_ai``), differentiable (``Ai'``, and
    ``x Ai`` after it).

    >>> import backprop_rs as bp
    >>> round(bp.special.airy_ai(bp.tensor(0.0, dtype=bp.float64)).item(), 15)  # 3^(-2/3) / Gamma(2/3)
    0.355028053887817
    """
    return _airy_ai(input, out=out)


__all__ = ["airy_ai"]
