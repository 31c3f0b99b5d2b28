"""The Bessel functions of ``torch.special``: ``bessel_j0/j1`` and ``bessel_y0/y1`` (first and
second kind), ``modified_bessel_k0/k1`` and their scaled forms ``exp(x) K(x)``, and the aliases
``modified_bessel_i0/i1`` of ``i0``/``i1``. Computed on the host in float64 NumPy and rounded to
the input's dtype, like the other ``special_kernels``.

Why by hand: NumPy has none of them and SciPy is not a dependency. The methods, from the
defining integrals (DLMF 10.9.1, 10.9.7, 10.32.9) and expansions (10.8.1, 10.17.3):

* ``J_n`` for ``|x| <= 25``: Bessel's integral ``(1/2pi) int cos(n t - x sin t) dt`` over a full
  period by the trapezoidal rule, which converges geometrically for a periodic analytic
  integrand (96 nodes leave an aliasing error below 1e-20 at ``|x| = 25``);
* ``Y_n`` for ``0 < x <= 4``: the Neumann series ``(2/pi) log(x/2) J_n + ...`` (its terms stay
  below 10, so no digits cancel); for ``4 < x <= 25`` the integral representation
  ``(1/pi) int_0^pi sin(x sin t - n t) dt - (1/pi) int_0^inf (e^(nt) + (-1)^n e^(-nt)) e^(-x sinh t) dt``
  by Gauss-Legendre quadrature;
* ``J_n``, ``Y_n`` above 25: Hankel's asymptotic expansion, summed to 30 terms (the smallest
  term is below 1e-18 there);
* ``K_n``: ``int_0^inf exp(-x (cosh t - 1)) cosh(n t) dt`` (the scaled form, so nothing
  overflows), an even analytic integrand for which the trapezoidal rule is again geometric;
  the step follows the integrand's width, ``min(1/4, T/64)`` over ``[0, T]``.

Accuracy is a few units in 1e-16 in absolute terms (and relative terms away from the zeros of
``J`` and ``Y``, where no method keeps relative digits). Domain and edges as PyTorch: ``Y`` and
``K`` are ``-inf``/``inf`` at 0 and NaN below; ``J(+-inf) = Y(inf) = K(inf) = 0`` (the limits;
PyTorch's Cephes kernels give NaN for ``J(inf)``).

Gradients (PyTorch has none for these; they are the classical recurrences, composites of these
functions, so they differentiate again): ``J0' = -J1``, ``J1' = J0 - J1/x``, ``Y0' = -Y1``,
``Y1' = Y0 - Y1/x``, ``K0' = -K1``, ``K1' = -K0 - K1/x``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from . import _core
from ._core import Tensor
from .special_kernels import _unary as _host_unary
from .special_kernels import i0, i1

_EULER = 0.5772156649015329
_SWITCH = 25.0
_CHUNK = 4096


def _chunked(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``f`` over ``x`` in slices, so the (elements x nodes) arrays stay small."""
    out = np.empty_like(x)
    for s in range(0, x.size, _CHUNK):
        out[s:s + _CHUNK] = f(x[s:s + _CHUNK])
    return out


# ---------------------------------------------------------------- first and second kind

_TRAP_NODES = 96
_THETA = 2 * np.pi * np.arange(_TRAP_NODES) / _TRAP_NODES


def _j_trapezoid(x: np.ndarray, n: int) -> np.ndarray:
    return np.cos(n * _THETA - x[:, None] * np.sin(_THETA)).mean(axis=1)


def _hankel(x: np.ndarray, n: int) -> tuple:
    """(J_n, Y_n) for x > 25 by Hankel's expansion."""
    mu = 4.0 * n * n
    p = np.ones_like(x)
    q = np.zeros_like(x)
    term = np.ones_like(x)
    for k in range(1, 31):
        term = term * (mu - (2 * k - 1) ** 2) / (k * 8 * x)
        if k % 2:
            q += term if (k // 2) % 2 == 0 else -term
        else:
            p += term if (k // 2) % 2 == 0 else -term
    # cos/sin of w = x - phi by the angle-addition formulas: x - phi rounded would lose ulp(x)
    phi = (n / 2 + 0.25) * np.pi
    cx, sx = np.cos(x), np.sin(x)
    cw, sw = cx * math.cos(phi) + sx * math.sin(phi), sx * math.cos(phi) - cx * math.sin(phi)
    amp = np.sqrt(2 / (np.pi * x))
    return amp * (p * cw - q * sw), amp * (p * sw + q * cw)


def _bessel_j(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    ax = np.abs(x)
    out = np.full_like(x, np.nan)
    small = ax <= _SWITCH
    out[small] = _chunked(lambda v: _j_trapezoid(v, n), ax[small])
    big = ~small & np.isfinite(ax)
    out[big] = _hankel(ax[big], n)[0]
    out[np.isinf(ax)] = 0.0
    if n == 1:
        out = np.where(x < 0, -out, out)
    return out


def _harmonic(k: int) -> float:
    return sum(1.0 / j for j in range(1, k + 1))


def _y_series(x: np.ndarray, n: int) -> np.ndarray:
    """DLMF 10.8.1 for n = 0, 1 and 0 < x <= 4."""
    z = -(x * x) / 4
    j = _bessel_j(x, n)
    total = np.zeros_like(x)
    fact = 1.0
    zk = np.ones_like(x)
    for k in range(40):
        if k:
            zk = zk * z
            fact *= k
        psi_sum = (-2 * _EULER + _harmonic(k) + _harmonic(k + n))
        total += psi_sum * zk / (fact * math.factorial(k + n))
    head = 0.0 if n == 0 else -2 / (np.pi * x)
    return head + 2 / np.pi * np.log(x / 2) * j - (x / 2) ** n / np.pi * total


_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)


def _gauss(f: Callable[[np.ndarray], np.ndarray], a: float, b: np.ndarray, panels: int) -> np.ndarray:
    """int_a^b f(t) dt per element (b an array), composite 64-node Gauss-Legendre."""
    total = 0.0
    width = (b - a) / panels
    for p in range(panels):
        lo = a + p * width
        t = lo[:, None] + (_GL_X[None, :] + 1) / 2 * width[:, None]
        total = total + (f(t) * _GL_W[None, :]).sum(axis=1) * width / 2
    return total


def _y_integral(x: np.ndarray, n: int) -> np.ndarray:
    xs = x[:, None]
    first = _gauss(lambda t: np.sin(xs * np.sin(t) - n * t), 0.0, np.full_like(x, np.pi), 2)
    upper = np.arcsinh(80.0 / x)
    sign = 1.0 if n % 2 == 0 else -1.0
    second = _gauss(lambda t: (np.exp(n * t) + sign * np.exp(-n * t)) * np.exp(-xs * np.sinh(t)), 0.0, upper, 2)
    return (first - second) / np.pi


def _bessel_y(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    out = np.full_like(x, np.nan)
    low = (x > 0) & (x <= 4)
    out[low] = _y_series(x[low], n)
    mid = (x > 4) & (x <= _SWITCH)
    out[mid] = _chunked(lambda v: _y_integral(v, n), x[mid])
    big = (x > _SWITCH) & np.isfinite(x)
    out[big] = _hankel(x[big], n)[1]
    out[x == 0] = -np.inf
    out[np.isposinf(x)] = 0.0
    return out


# ---------------------------------------------------------------- modified, second kind

_K_NODES = 64


def _k_scaled_kernel(x: np.ndarray, n: int) -> np.ndarray:
    upper = 2 * np.arcsinh(np.sqrt(22.5 / x))  # exp(-x (cosh T - 1)) = e^-45
    h = np.minimum(0.25, upper / _K_NODES)
    count = int(np.ceil((upper / h).max(initial=0))) + 1
    t = np.arange(count)[None, :] * h[:, None]
    with np.errstate(over="ignore", under="ignore"):
        # cosh t - 1 = 2 sinh^2(t/2): no cancellation at the small t a large x keeps
        f = np.exp(-x[:, None] * (2 * np.sinh(t / 2) ** 2)) * np.cosh(n * t)
    f[:, 0] *= 0.5  # the trapezoid of an even integrand over the whole line, halved
    return f.sum(axis=1) * h


def _k_scaled(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    out = np.full_like(x, np.nan)
    ok = (x > 0) & np.isfinite(x)
    # a few tiny arguments need many nodes: give them their own slices
    xs = x[ok]
    order = np.argsort(xs)
    res = np.empty_like(xs)
    res[order] = _chunked(lambda v: _k_scaled_kernel(v, n), xs[order])
    out[ok] = res
    out[x == 0] = np.inf
    out[np.isposinf(x)] = 0.0
    return out


def _k(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    with np.errstate(under="ignore", invalid="ignore"):
        out = _k_scaled(x, n) * np.exp(-np.where(x > 0, x, 0.0))
    out[x == 0] = np.inf
    out[np.isposinf(x)] = 0.0
    return out


# ---------------------------------------------------------------- the differentiable wrappers

def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray], grad: Callable[[Tensor, Tensor], Tensor],
           doc: str) -> Any:
    op = _host_unary(name, fn, grad)
    op.__doc__ = doc
    return op


def _over_x(y: Tensor, x: Tensor) -> Tensor:
    return y / _core.where(x == 0, 1.0, x)


bessel_j0 = _unary("bessel_j0", lambda v: _bessel_j(v, 0), lambda x, y: -bessel_j1(x),
                   """The Bessel function of the first kind of order 0.

    >>> import backprop_rs as bp
    >>> round(bp.special.bessel_j0(bp.tensor(2.404825557695773, dtype=bp.float64)).item(), 12)  # its first zero
    0.0
    """)
bessel_j1 = _unary("bessel_j1", lambda v: _bessel_j(v, 1),
                   lambda x, y: _core.where(x == 0, 0.5, bessel_j0(x) - _over_x(y, x)),
                   "The Bessel function of the first kind of order 1.")
bessel_y0 = _unary("bessel_y0", lambda v: _bessel_y(v, 0), lambda x, y: -bessel_y1(x),
                   "The Bessel function of the second kind of order 0 (``-inf`` at 0, NaN below).")
bessel_y1 = _unary("bessel_y1", lambda v: _bessel_y(v, 1), lambda x, y: bessel_y0(x) - _over_x(y, x),
                   "The Bessel function of the second kind of order 1 (``-inf`` at 0, NaN below).")
modified_bessel_k0 = _unary("modified_bessel_k0", lambda v: _k(v, 0), lambda x, y: -modified_bessel_k1(x),
                            "The modified Bessel function of the second kind of order 0 (``inf`` at 0, NaN below).")
modified_bessel_k1 = _unary("modified_bessel_k1", lambda v: _k(v, 1),
                            lambda x, y: -modified_bessel_k0(x) - _over_x(y, x),
                            "The modified Bessel function of the second kind of order 1 (``inf`` at 0, NaN below).")
scaled_modified_bessel_k0 = _unary(
    "scaled_modified_bessel_k0", lambda v: _k_scaled(v, 0), lambda x, y: y - scaled_modified_bessel_k1(x),
    "``exp(x) K0(x)``, finite where ``K0`` underflows.")
scaled_modified_bessel_k1 = _unary(
    "scaled_modified_bessel_k1", lambda v: _k_scaled(v, 1),
    lambda x, y: y - scaled_modified_bessel_k0(x) - _over_x(y, x), "``exp(x) K1(x)``, finite where ``K1`` underflows.")


def modified_bessel_i0(input: Tensor, *, out: Any = None) -> Tensor:
    """The modified Bessel function of the first kind of order 0 (the same function as ``i0``)."""
    return i0(input, out=out)


def modified_bessel_i1(input: Tensor, *, out: Any = None) -> Tensor:
    """The modified Bessel function of the first kind of order 1 (the same function as ``i1``)."""
    return i1(input, out=out)


__all__ = ["bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "modified_bessel_i0", "modified_bessel_i1",
           "modified_bessel_k0", "modified_bessel_k1", "scaled_modified_bessel_k0", "scaled_modified_bessel_k1"]
