"""The Hurwitz zeta function ``zeta(s, q) = sum_k (q + k)^-s`` (``torch.special.zeta``) and,
through it, ``polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x)`` for every ``n >= 1`` (PyTorch's
own definition for ``n >= 2``), computed on the host in float64 NumPy like the other
``special_kernels``.

Why by hand: neither NumPy nor the engine has it and SciPy is not a dependency. The method is
Euler-Maclaurin summation (DLMF 25.11.5 with the remainder's Bernoulli terms): the first terms
are summed until ``q + N >= 10``, the tail is ``a^(1-s)/(s-1) + a^-s/2`` plus twelve Bernoulli
corrections at ``a = q + N``, which leaves an error far below float64's ulp for every ``s > 1``.

The domain follows PyTorch (Cephes' ``zeta``): ``s = 1`` gives ``inf``, ``s < 1`` NaN; a
non-positive integer ``q`` is a pole (``inf``); a negative non-integer ``q`` is allowed for
integer ``s`` only (``q^-s`` is not real otherwise: NaN).

Gradients: ``d zeta(s, q) / dq = -s zeta(s + 1, q)``, so ``polygamma(n)' = polygamma(n + 1)`` to
any order; the derivative with respect to ``s`` is not implemented (as in PyTorch: asking raises).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function
from .special_kernels import _back, _f64


def _bernoulli_even(count: int) -> list:
    """B_2, B_4, ..., B_(2 count) as exact fractions (the Akiyama-Tanigawa algorithm)."""
    out, a = [], []
    for m in range(2 * count + 1):
        a.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            a[j - 1] = j * (a[j - 1] - a[j])
        if m >= 2 and m % 2 == 0:
            out.append(a[0])
    return out


# B_2j / (2j)!: the Euler-Maclaurin coefficients
_EM = [float(b / math.factorial(2 * j)) for j, b in enumerate(_bernoulli_even(12), start=1)]
_SHIFT = 10.0


def _zeta_np(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    s, q = np.broadcast_arrays(np.asarray(s, np.float64), np.asarray(q, np.float64))
    s, q = s.reshape(-1), q.reshape(-1)
    out = np.full(s.shape, np.nan)
    pole = (s == 1) | ((q <= 0) & (q == np.floor(q)) & (s > 1))
    ok = (s > 1) & ~pole & ~np.isnan(q) & ((q > 0) | (s == np.floor(s)))
    ss, qq = s[ok], q[ok]
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        # the head: (q + k)^-s for k < N, where N >= 10 and q + N >= 10
        n_terms = np.maximum(_SHIFT, np.ceil(_SHIFT - qq))
        n_terms = np.where(np.isfinite(n_terms), n_terms, _SHIFT)
        total = np.zeros_like(qq)
        for k in range(int(n_terms.max(initial=0))):
            total += np.where(k < n_terms, np.power(qq + k, -ss), 0.0)
        a = qq + n_terms
        a_s = np.power(a, -ss)
        tail = a * a_s / (ss - 1) + a_s / 2
        fac = ss * a_s / a  # s (s+1) ... (s+2j-2) a^(-s-2j+1), for j = 1
        for j, c in enumerate(_EM, start=1):
            tail += c * fac
            fac = fac * (ss + 2 * j - 1) * (ss + 2 * j) / (a * a)
        res = total + np.where(np.isinf(a), 0.0, tail)
    out[ok] = res
    out[pole] = np.inf
    return out


def _polygamma_np(n: int, x: np.ndarray) -> np.ndarray:
    sign = 1.0 if n % 2 else -1.0
    return sign * math.factorial(n) * _zeta_np(np.full(np.shape(x), n + 1.0), x)


class Zeta(Function):
    @staticmethod
    def forward(ctx: Any, s: Tensor, q: Tensor) -> Tensor:
        ctx.save_for_backward(s, q)
        return _back(_zeta_np(_f64(s), _f64(q)).reshape(tuple(q.shape)), q)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        s, q = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            raise NotImplementedError("the derivative of zeta(x, q) with respect to its first argument x is not "
                                      "implemented, as in PyTorch")
        return None, g * -s * zeta(s + 1, q)


class Polygamma(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, n: int) -> Tensor:
        ctx.n = n
        ctx.save_for_backward(x)
        return _back(_polygamma_np(n, _f64(x).reshape(-1)).reshape(tuple(x.shape)), x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        (x,) = ctx.saved_tensors
        return g * polygamma_host(ctx.n + 1, x), None


class _Trigamma(Function):
    """``polygamma(1, x)`` with the engine's trigamma kernel forward (it stays on the device) and
    the host's ``polygamma(2, x)`` as its derivative, which the engine has no kernel for."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.detach().trigamma()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        (x,) = ctx.saved_tensors
        return g * polygamma_host(2, x)


def polygamma_host(n: int, x: Tensor) -> Tensor:
    """``polygamma(n, x)`` for ``n >= 1`` (``x`` a floating tensor): the engine's trigamma for
    ``n = 1`` (differentiable through the host's ``polygamma(2)``), the host's zeta above."""
    if n == 1:
        from .autograd import is_grad_enabled

        return _Trigamma.apply(x) if x.requires_grad and is_grad_enabled() else x.trigamma()
    return Polygamma.apply(x, n)


def zeta(input: Any, other: Any, *, out: Any = None) -> Tensor:
    """``torch.special.zeta(x, q)``: the Hurwitz zeta function ``sum_k (q + k)^-x``; ``q = 1``
    is Riemann's zeta. Broadcasts; either argument may be a Python number. Differentiable in
    ``q`` (``-x zeta(x + 1, q)``), not in ``x`` (as in PyTorch).

    >>> import backprop_rs as bp
    >>> round(bp.special.zeta(bp.tensor(2.0, dtype=bp.float64), 1.0).item(), 12)  # pi^2 / 6
    1.644934066848
    """
    from .stacking import broadcast_tensors

    tensors = [t for t in (input, other) if isinstance(t, Tensor)]
    if not tensors:
        raise TypeError("zeta(): expected at least one Tensor argument")
    floats = [t.dtype for t in tensors if t.is_floating_point()]
    dt = _core.promote_types(*floats) if len(floats) == 2 else (floats[0] if floats else _core._get_default_dtype())
    s = input.to(dt) if isinstance(input, Tensor) else _core.tensor(float(input), dtype=dt)
    q = other.to(dt) if isinstance(other, Tensor) else _core.tensor(float(other), dtype=dt)
    device = tensors[0].device
    s, q = broadcast_tensors(s.to(device), q.to(device))
    r = Zeta.apply(s, q)
    if out is not None:
        out.copy_(r)
        return out
    return r
