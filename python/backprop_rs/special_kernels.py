"""Special functions whose tails a composite of the engine's ops would get wrong, computed on the
host in float64 NumPy and wrapped as differentiable functions: the modified Bessel functions
``i0``, ``i0e``, ``i1``, ``i1e``; the scaled complementary error function ``erfcx``; the inverse
normal CDF ``ndtri``; the regularised incomplete gamma functions ``gammainc``/``gammaincc``
(``torch.igamma``/``igammac``).

Why by hand: NumPy has none of these and SciPy is not a dependency; each is a few lines of
classical numerics, written from the defining series, asymptotic expansions and continued
fractions (DLMF 10.25.2 and 10.40.1 for the Bessel functions, 7.9 for erfc's continued fraction,
8.7 and 8.9 for the incomplete gamma function, Abramowitz-Stegun 26.2.23 as the start of Halley
iterations for ``ndtri``). Accuracy in float64 is a few ulp except where stated.

The values are computed in float64 and rounded to the input's dtype; a GPU input is computed on
the host and the result moved back (these are not hot loops). Gradients are composites of the
engine's ops and of these functions themselves, so they differentiate again:
``i0' = i1``, ``i1' = i0 - i1/x``, ``erfcx' = 2x erfcx - 2/sqrt(pi)``,
``ndtri' = sqrt(2 pi) exp(ndtri^2 / 2)``, ``d gammainc(a, x) / dx = x^(a-1) e^-x / Gamma(a)``.
As in PyTorch, ``gammainc`` has no gradient with respect to ``a`` (asking raises).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)
_TINY = np.finfo(np.float64).tiny
_EPS = np.finfo(np.float64).eps

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _f64(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float64)


def _back(a: np.ndarray, like: Tensor) -> Tensor:
    out = _core.tensor(np.array(a, order="C"), dtype=like.dtype)  # ascontiguousarray would make 0-d 1-d
    return out if like.device.type == "cpu" else out.to(like.device)


def _as_float(t: Any) -> Tensor:
    if not isinstance(t, Tensor):
        return _core.tensor(float(t), dtype=_core._get_default_dtype())
    return t if t.is_floating_point() else t.to(_core._get_default_dtype())


# ---------------------------------------------------------------- modified Bessel functions

_BESSEL_SWITCH = 20.0  # the power series below, the asymptotic expansion above (its smallest term ~e^-40)


def _bessel_series(x: np.ndarray, order: int) -> np.ndarray:
    """I_order(x) for |x| <= 20 by the power series (all terms of one sign: no cancellation)."""
    q = x * x / 4
    term = np.ones_like(x) if order == 0 else x / 2
    total = term.copy()
    for k in range(1, 90):
        term = term * q / (k * (k + order))
        total = total + term
    return total


def _bessel_asymptotic_scaled(ax: np.ndarray, order: int) -> np.ndarray:
    """e^-x I_order(x) for x >= 20: (2 pi x)^-1/2 sum_k (-1)^k a_k(order) / x^k, to its smallest term."""
    mu = 4.0 * order * order
    term = np.ones_like(ax)
    total = term.copy()
    for k in range(1, 40):
        term = term * -(mu - (2 * k - 1) ** 2) / (k * 8 * ax)
        total = total + term
    return total / np.sqrt(2 * math.pi * ax)


def _i_scaled(x: np.ndarray, order: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    small = ax <= _BESSEL_SWITCH
    out = np.empty_like(x)
    xs = x[small]
    out[small] = _bessel_series(xs, order) * np.exp(-np.abs(xs))
    big = ~small & np.isfinite(ax)
    out[big] = _bessel_asymptotic_scaled(ax[big], order) * (np.sign(x[big]) if order == 1 else 1.0)
    inf = np.isinf(x)
    out[inf] = 0.0
    out[np.isnan(x)] = np.nan
    return out


def _i0e_np(x: np.ndarray) -> np.ndarray:
    return _i_scaled(x, 0)


def _i1e_np(x: np.ndarray) -> np.ndarray:
    return _i_scaled(x, 1)


def _i0_np(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = _i0e_np(x) * np.exp(np.abs(x))
    out[np.isinf(x)] = np.inf
    return out


def _i1_np(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = _i1e_np(x) * np.exp(np.abs(x))
    out[np.isinf(x)] = np.sign(x[np.isinf(x)]) * np.inf
    return out


# ---------------------------------------------------------------- erfcx and ndtri

def _erfcx_np(x: np.ndarray) -> np.ndarray:
    """exp(x^2) erfc(x): the product below 2 (exp(x^2) is then exact to a few ulp), the Laplace
    continued fraction ``1/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`` from 2 up."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    low = x < 2.0
    with np.errstate(over="ignore"):
        out[low] = np.exp(x[low] ** 2) * _erfc(x[low])
    hi = ~low & np.isfinite(x)
    xh = x[hi]
    frac = np.zeros_like(xh)
    for k in range(160, 0, -1):
        frac = (k / 2) / (xh + frac)
    out[hi] = 1.0 / (_SQRT_PI * (xh + frac))
    out[np.isposinf(x)] = 0.0
    out[np.isnan(x)] = np.nan
    return out


def _ndtr_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * _erfc(-x / math.sqrt(2))


def _ndtri_np(p: np.ndarray) -> np.ndarray:
    """The inverse of the standard normal CDF: Abramowitz-Stegun 26.2.23 (|error| < 4.5e-4) as
    the start, then Halley steps on ``Phi(x) - p`` with ``Phi`` from erfc, which keeps its
    relative precision in the lower tail; the upper half by symmetry."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    out[p == 0] = -np.inf
    out[p == 1] = np.inf
    inside = (p > 0) & (p < 1)
    q = p[inside]
    upper = q > 0.5
    r = np.where(upper, 1 - q, q)
    t = np.sqrt(-2 * np.log(r))
    x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t
                                                             + 0.001308 * t ** 3))
    for _ in range(4):
        pdf = np.exp(-x * x / 2) / _SQRT_2PI
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(pdf > 0, (_ndtr_np(x) - r) / pdf, 0.0)
        x = x - u / (1 + x * u / 2)
    out[inside] = np.where(upper, -x, x)
    return out


# ---------------------------------------------------------------- incomplete gamma

def _igamma_pair(a: np.ndarray, x: np.ndarray) -> tuple:
    """(P(a, x), Q(a, x)), the regularised lower and upper incomplete gamma functions: the series
    for P where x < a + 1, Lentz's continued fraction for Q elsewhere (each converges fast in its
    region), and PyTorch's values at the edges (NaN for a negative argument, P(0, x>0) = 1,
    P(a, 0) = 0, P(a, inf) = 1, P(inf, finite x) = 0)."""
    a, x = np.broadcast_arrays(a, x)
    a, x = a.astype(np.float64), x.astype(np.float64)
    p = np.full(a.shape, np.nan)
    ok = (a > 0) & (x > 0) & np.isfinite(a) & np.isfinite(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        aa, xx = a[ok], x[ok]
        log_pref = -xx + aa * np.log(xx) - _lgamma(aa)
        pref = np.exp(log_pref)
        res = np.empty_like(aa)
        ser = xx < aa + 1
        # series: P = pref * sum_n x^n / (a (a+1) ... (a+n))
        a_s, x_s = aa[ser], xx[ser]
        term = 1.0 / a_s
        total = term.copy()
        active = np.ones(a_s.shape, bool)
        for n in range(1, 100_000):
            if not active.any():
                break
            term = np.where(active, term * x_s / (a_s + n), term)
            total = np.where(active, total + term, total)
            active &= np.abs(term) > np.abs(total) * _EPS / 4
        res[ser] = np.minimum(total * pref[ser], 1.0)
        # continued fraction (modified Lentz) for Q, then P = 1 - Q
        a_c, x_c = aa[~ser], xx[~ser]
        b = x_c + 1 - a_c
        c = np.full(a_c.shape, 1 / _TINY)
        d = 1 / b
        h = d.copy()
        active = np.ones(a_c.shape, bool)
        for i in range(1, 100_000):
            if not active.any():
                break
            an = -i * (i - a_c)
            b = b + 2
            d_new = an * d + b
            d_new = np.where(np.abs(d_new) < _TINY, _TINY, d_new)
            c_new = b + an / c
            c_new = np.where(np.abs(c_new) < _TINY, _TINY, c_new)
            d_new = 1 / d_new
            delta = d_new * c_new
            h = np.where(active, h * delta, h)
            d = np.where(active, d_new, d)
            c = np.where(active, c_new, c)
            active &= np.abs(delta - 1) > _EPS / 4
        q_cf = np.clip(pref[~ser] * h, 0.0, 1.0)
        res[~ser] = 1 - q_cf
        p[ok] = res
        q = 1 - p
        q_ok = q[ok]
        q_ok[~ser] = q_cf
        q[ok] = q_ok
    # the edges, as PyTorch's igamma/igammac
    edge = ~ok & ~np.isnan(a) & ~np.isnan(x) & (a >= 0) & (x >= 0)
    p[edge & (a == 0) & (x > 0)] = 1.0
    p[edge & (x == 0) & (a > 0)] = 0.0
    p[edge & np.isinf(x) & np.isfinite(a)] = 1.0
    p[edge & np.isinf(a) & np.isfinite(x)] = 0.0
    q[edge] = 1 - p[edge]
    return p, q


def _digamma_np(a: np.ndarray) -> np.ndarray:
    """``psi(a)`` for positive ``a``: the recurrence ``psi(a) = psi(a + 1) - 1/a`` up to 10, then the
    asymptotic series (DLMF 5.11.2; its terms after ``a^-12`` are below 1e-16 there)."""
    a = np.array(a, dtype=np.float64)
    shift = np.zeros_like(a)
    while True:
        small = a < 10
        if not small.any():
            break
        shift = np.where(small, shift + 1 / a, shift)
        a = np.where(small, a + 1, a)
    inv2 = 1 / (a * a)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132)))))
    return np.log(a) - 0.5 / a - series - shift


def _standard_gamma_grad_np(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dx/da`` of a standard gamma draw ``x`` at fixed CDF (the implicit reparameterisation
    gradient ``-(dP(a, x)/da) / f(x; a)``; PyTorch's ``_standard_gamma_grad``), exact to a few ulp.

    ``P = pref * S`` on the series side of :func:`_igamma_pair` and ``Q = pref * h`` on the
    continued-fraction side, with ``pref = x^a e^-x / Gamma(a)`` and ``f = pref / x``, so the
    prefactor cancels: ``dx/da = -x ((ln x - psi(a)) S + dS/da)`` below ``a + 1`` and
    ``x ((ln x - psi(a)) h + dh/da)`` above. ``dS/da`` is the series differentiated term by term;
    ``dh/da`` is carried through Lentz's iterations in forward mode. (PyTorch approximates this
    derivative with fitted rational functions; this is the exact value its approximation targets.)"""
    a, x = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(x, dtype=np.float64))
    a, x = a.reshape(-1), x.reshape(-1)
    out = np.full(a.shape, np.nan)
    ok = (a > 0) & (x > 0) & np.isfinite(a) & np.isfinite(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        aa, xx = a[ok], x[ok]
        lead = np.log(xx) - _digamma_np(aa)
        res = np.empty_like(aa)
        ser = xx < aa + 1
        a_s, x_s = aa[ser], xx[ser]
        term = 1.0 / a_s
        harm = 1.0 / a_s  # H_n = sum_{k<=n} 1/(a+k): dt_n/da = -t_n H_n
        total, dtotal = term.copy(), -term * harm
        active = np.ones(a_s.shape, bool)
        for n in range(1, 100_000):
            if not active.any():
                break
            term = np.where(active, term * x_s / (a_s + n), term)
            harm = np.where(active, harm + 1 / (a_s + n), harm)
            total = np.where(active, total + term, total)
            dtotal = np.where(active, dtotal - term * harm, dtotal)
            active &= (np.abs(term) > np.abs(total) * _EPS / 4) | (np.abs(term * harm) > np.abs(dtotal) * _EPS / 4)
        res[ser] = -x_s * (lead[ser] * total + dtotal)
        a_c, x_c = aa[~ser], xx[~ser]
        b, db = x_c + 1 - a_c, -1.0
        c, dc = np.full(a_c.shape, 1 / _TINY), np.zeros(a_c.shape)
        d = 1 / b
        dd = d * d  # d(1/b)/da with db = -1
        h, dh = d.copy(), dd.copy()
        active = np.ones(a_c.shape, bool)
        for i in range(1, 100_000):
            if not active.any():
                break
            an, dan = -i * (i - a_c), float(i)
            b = b + 2
            big_d = an * d + b
            dbig_d = dan * d + an * dd + db
            tiny_d = np.abs(big_d) < _TINY
            big_d, dbig_d = np.where(tiny_d, _TINY, big_d), np.where(tiny_d, 0.0, dbig_d)
            big_c = b + an / c
            dbig_c = db + dan / c - an * dc / (c * c)
            tiny_c = np.abs(big_c) < _TINY
            big_c, dbig_c = np.where(tiny_c, _TINY, big_c), np.where(tiny_c, 0.0, dbig_c)
            d_new = 1 / big_d
            dd_new = -dbig_d * d_new * d_new
            delta = d_new * big_c
            ddelta = dd_new * big_c + d_new * dbig_c
            h_new, dh_new = h * delta, dh * delta + h * ddelta
            h, dh = np.where(active, h_new, h), np.where(active, dh_new, dh)
            d, dd = np.where(active, d_new, d), np.where(active, dd_new, dd)
            c, dc = np.where(active, big_c, c), np.where(active, dbig_c, dc)
            active &= (np.abs(delta - 1) > _EPS / 4) | (np.abs(h * ddelta) > _EPS / 4 * np.maximum(np.abs(dh), np.abs(h)))
        res[~ser] = x_c * (lead[~ser] * h + dh)
        out[ok] = res
    return out


# ---------------------------------------------------------------- the differentiable wrappers

def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray], grad: Callable[[Tensor, Tensor], Tensor]) -> Any:
    class _Host(Function):
        @staticmethod
        def forward(ctx: Any, x: Tensor) -> Tensor:
            # the kernels work on flat float64 arrays (0-d arrays would decay to NumPy scalars)
            y = _back(fn(_f64(x).reshape(-1)).reshape(tuple(x.shape)), x)
            ctx.save_for_backward(x, y)
            return y

        @staticmethod
        def backward(ctx: Any, g: Tensor) -> Any:
            x, y = ctx.saved_tensors
            return g * grad(x, y)

    _Host.__name__ = _Host.__qualname__ = name.capitalize()

    def op(input: Tensor, *, out: Any = None) -> Tensor:
        r = _Host.apply(_as_float(input))
        if out is not None:
            out.copy_(r)
            return out
        return r

    op.__name__ = name
    return op


i0 = _unary("i0", _i0_np, lambda x, y: i1(x))
i0e = _unary("i0e", _i0e_np, lambda x, y: i1e(x) - x.sign() * y)
i1 = _unary("i1", _i1_np, lambda x, y: _core.where(x == 0, 0.5, i0(x) - y / _core.where(x == 0, 1.0, x)))
i1e = _unary("i1e", _i1e_np,
             lambda x, y: _core.where(x == 0, 0.5, i0e(x) - y * (x.sign() + 1 / _core.where(x == 0, 1.0, x))))
erfcx = _unary("erfcx", _erfcx_np, lambda x, y: 2 * x * y - 2 / _SQRT_PI)
ndtri = _unary("ndtri", _ndtri_np, lambda p, y: _SQRT_2PI * (y * y / 2).exp())

i0.__doc__ = "The modified Bessel function of the first kind of order 0 (``torch.i0``)."
i0e.__doc__ = "``exp(-|x|) i0(x)``, which does not overflow (``torch.special.i0e``)."
i1.__doc__ = "The modified Bessel function of the first kind of order 1 (``torch.special.i1``)."
i1e.__doc__ = "``exp(-|x|) i1(x)`` (``torch.special.i1e``)."
erfcx.__doc__ = "``exp(x^2) erfc(x)``, finite where erfc underflows (``torch.special.erfcx``)."
ndtri.__doc__ = "The inverse of the standard normal CDF (``torch.special.ndtri``), accurate in both tails."


class Igamma(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, x: Tensor, upper: bool) -> Tensor:
        p, q = (r.reshape(tuple(x.shape)) for r in _igamma_pair(_f64(a).reshape(-1), _f64(x).reshape(-1)))
        like = x if x.is_floating_point() else a
        ctx.upper = upper
        ctx.save_for_backward(a, x)
        return _back(q if upper else p, like)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, x = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            raise NotImplementedError("the derivative of igamma/igammac (gammainc/gammaincc) with respect to "
                                      "its first argument 'input' (a) is not implemented, as in PyTorch")
        from .math_ops import xlogy

        dx = (xlogy(a - 1, x) - x - a.lgamma()).exp()
        return None, g * (-dx if ctx.upper else dx), None


def _igamma(a: Any, x: Any, upper: bool) -> Tensor:
    like = x if isinstance(x, Tensor) else a
    dt = like.dtype if isinstance(like, Tensor) and like.is_floating_point() else _core._get_default_dtype()
    at = a.to(dt) if isinstance(a, Tensor) else _core.tensor(float(a), dtype=dt)
    xt = x.to(dt) if isinstance(x, Tensor) else _core.tensor(float(x), dtype=dt)
    from .stacking import broadcast_tensors

    at, xt = broadcast_tensors(at, xt)
    return Igamma.apply(at, xt, upper)


def gammainc(input: Any, other: Any, *, out: Any = None) -> Tensor:
    """The regularised lower incomplete gamma function ``P(a, x)`` (``torch.special.gammainc``,
    ``torch.igamma``): ``input`` is ``a``, ``other`` is ``x``; differentiable in ``x`` only."""
    r = _igamma(input, other, False)
    if out is not None:
        out.copy_(r)
        return out
    return r


def gammaincc(input: Any, other: Any, *, out: Any = None) -> Tensor:
    """The regularised upper incomplete gamma function ``Q(a, x) = 1 - P(a, x)``
    (``torch.special.gammaincc``, ``torch.igammac``), accurate where ``P`` is close to 1."""
    r = _igamma(input, other, True)
    if out is not None:
        out.copy_(r)
        return out
    return r


igamma = gammainc
igammac = gammaincc


def tensor_methods() -> dict:
    """``Tensor.i0``/``igamma``/``igammac`` and their in-place forms (attached at import)."""

    def i0_method(self: Tensor) -> Tensor:
        """:func:`backprop_rs.i0` of ``self``."""
        return i0(self)

    def igamma_method(self: Tensor, other: Any) -> Tensor:
        """:func:`backprop_rs.igamma` of ``self`` (a) and ``other`` (x)."""
        return gammainc(self, other)

    def igammac_method(self: Tensor, other: Any) -> Tensor:
        """:func:`backprop_rs.igammac` of ``self`` (a) and ``other`` (x)."""
        return gammaincc(self, other)

    def in_place(f: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def method(self: Tensor, *args: Any) -> Tensor:
            return self.copy_(f(self, *args))

        method.__doc__ = f"``{f.__name__}`` in place."
        return method

    return {"i0": i0_method, "i0_": in_place(i0_method), "igamma": igamma_method, "igamma_": in_place(igamma_method),
            "igammac": igammac_method, "igammac_": in_place(igammac_method)}
