"""The classical orthogonal polynomials of ``torch.special``: Chebyshev ``T``, ``U``, ``V``, ``W``
and their shifted forms on ``[0, 1]``, the physicists' and probabilists' Hermite ``H`` and
``He``, Laguerre ``L`` and Legendre ``P``, each as ``f(input, n)``.

They follow PyTorch's definitions to the letter, including its edge rules: ``n`` is truncated
to an integer, a negative ``n`` gives 0, the closed values at ``x = +-1`` (and ``L_n(0) = 1``),
and for Chebyshev polynomials of high degree inside ``(-1, 1)`` the trigonometric forms
(``T_n(cos t) = cos(n t)``...), which are stable where the three-term recurrence is not. Every
other value is the three-term recurrence, computed on the host in float64 NumPy and rounded to
the result's dtype (PyTorch runs it in the input's dtype, so float32 results can differ from
PyTorch's in the last bits, closer to the exact value).

Why by hand: a few lines each, and there is no library to take them from (NumPy's
``numpy.polynomial`` evaluates series, not these edge rules). As in PyTorch they have no
gradient: asking for one raises.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function

_Step = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _recurrence(x: np.ndarray, n: np.ndarray, p0: np.ndarray, p1: np.ndarray, step: _Step) -> np.ndarray:
    """The degree-``n`` value of a three-term recurrence from ``p0``, ``p1``: ``n - 1`` steps,
    each element stopping at its own ``n`` (or once its value is NaN, where it stays)."""
    out = np.where(n == 0, p0, p1)
    p, q = p0.copy(), p1.copy()
    active = n >= 2
    i = 1
    with np.errstate(over="ignore", invalid="ignore"):
        while active.any():
            r = step(i, x, p, q)
            p, q = np.where(active, q, p), np.where(active, r, q)
            out = np.where(active, r, out)
            i += 1
            active &= (n > i) & ~np.isnan(r)
    return out


def _chebyshev(kind: str, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    one = np.ones_like(x)
    first = {"t": x, "u": x + x, "v": x + x - 1, "w": x + x + 1}[kind]
    out = _recurrence(x, n, one, first, lambda i, x, p, q: (x + x) * q - p)
    odd = n % 2 == 1
    with np.errstate(invalid="ignore", divide="ignore"):
        # the closed values at x = +-1
        at_one = {
            "t": np.where((x > 0) | ~odd, 1.0, -1.0),
            "u": np.where((x > 0) | ~odd, n + 1.0, -(n + 1.0)),
            "v": np.where(x > 0, 1.0, np.where(odd, -(2.0 * n + 1), 2.0 * n + 1)),
            "w": np.where(x > 0, 2.0 * n + 1, np.where(odd, -1.0, 1.0)),
        }[kind]
        # high degree inside (-1, 1): the trigonometric forms
        theta = np.arccos(np.clip(x, -1.0, 1.0))
        if kind == "t":
            trig, threshold = np.cos(n * theta), 6
        elif kind == "u":
            s = np.sin(theta)
            trig = np.where(s != 0, np.sin((n + 1) * theta) / s, (n + 1) * np.cos((n + 1) * theta) / x)
            threshold = 8
        elif kind == "v":
            trig = np.where(np.sin(theta / 2) != 1, np.cos((n + 0.5) * theta) / np.cos(theta / 2),
                            np.where(odd, -(2.0 * n + 1), 2.0 * n + 1))
            threshold = 8
        else:
            trig = np.where(np.cos(theta / 2) != 1, np.sin((n + 0.5) * theta) / np.sin(theta / 2),
                            np.where(x > 0, 2.0 * n + 1, np.where(odd, -1.0, 1.0)))
            threshold = 8
    out = np.where((n > threshold) & (np.abs(x) < 1), trig, out)
    return np.where(np.abs(x) == 1, at_one, out)


def _hermite_h(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _recurrence(x, n, np.ones_like(x), x + x, lambda i, x, p, q: (x + x) * q - (2 * i) * p)


def _hermite_he(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _recurrence(x, n, np.ones_like(x), x.copy(), lambda i, x, p, q: x * q - i * p)


def _laguerre_l(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = _recurrence(x, n, np.ones_like(x), 1 - x, lambda i, x, p, q: ((2 * i + (1 - x)) * q - i * p) / (i + 1))
    return np.where(x == 0, 1.0, out)


def _legendre_p(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = _recurrence(x, n, np.ones_like(x), x.copy(), lambda i, x, p, q: ((2 * i + 1) * x * q - i * p) / (i + 1))
    at_one = np.where((x > 0) | (n % 2 == 0), 1.0, -1.0)
    return np.where(np.abs(x) == 1, at_one, out)


def _kernel(f: Callable[[np.ndarray, np.ndarray], np.ndarray], shifted: bool) -> Callable[..., np.ndarray]:
    def run(x: np.ndarray, n: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            # NaN or infinite degrees: C's cast to int64 is undefined there; such a degree is taken as negative
            ni = np.where(np.isfinite(n), np.trunc(n), -1.0).astype(np.int64)
        y = x + x - 1 if shifted else x
        return np.where(ni < 0, 0.0, f(y, np.maximum(ni, 0)))

    return run


class _Polynomial(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, n: Tensor, kernel: Any, name: str) -> Tensor:
        ctx.name = name
        xs = np.asarray(x.detach().cpu().numpy(), dtype=np.float64).reshape(-1)
        ns = np.asarray(n.detach().cpu().numpy(), dtype=np.float64).reshape(-1)
        out = _core.tensor(np.array(kernel(xs, ns).reshape(tuple(x.shape)), order="C"), dtype=x.dtype)
        return out if x.device.type == "cpu" else out.to(x.device)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        raise NotImplementedError(f"the derivative of torch.special.{ctx.name} is not implemented, as in PyTorch")


def _operands(name: str, input: Any, n: Any) -> Tuple[Tensor, Tensor]:
    from .stacking import broadcast_tensors

    if not isinstance(input, Tensor) and not isinstance(n, Tensor):
        raise TypeError(f"{name}(): expected at least one Tensor argument")
    x = input if isinstance(input, Tensor) else _core.tensor(float(input))
    nt = n if isinstance(n, Tensor) else _core.tensor(n)
    # a float op: integer operands compute in the default float dtype; a Python-number n keeps x's dtype
    dt = x.dtype if not isinstance(n, Tensor) else _core.promote_types(x.dtype, nt.dtype)
    if not dt.is_floating_point:
        dt = _core._get_default_dtype()
    x, nt = broadcast_tensors(x.to(dt), nt.to(x.device))
    return x, nt


def _make(name: str, f: Callable[[np.ndarray, np.ndarray], np.ndarray], shifted: bool, doc: str) -> Any:
    kernel = _kernel(f, shifted)

    def op(input: Any, n: Any, *, out: Any = None) -> Tensor:
        x, nt = _operands(name, input, n)
        r = _Polynomial.apply(x, nt, kernel, name)
        if out is not None:
            out.copy_(r)
            return out
        return r

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _cheb(kind: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda x, n: _chebyshev(kind, x, n)


chebyshev_polynomial_t = _make("chebyshev_polynomial_t", _cheb("t"), False,
                               """Chebyshev polynomial of the first kind ``T_n(input)``.

    >>> import backprop_rs as bp
    >>> bp.special.chebyshev_polynomial_t(bp.tensor([0.5, 2.0]), 3).tolist()  # 4x^3 - 3x
    [-1.0, 26.0]
    """)
chebyshev_polynomial_u = _make("chebyshev_polynomial_u", _cheb("u"), False,
                               "Chebyshev polynomial of the second kind ``U_n(input)``.")
chebyshev_polynomial_v = _make("chebyshev_polynomial_v", _cheb("v"), False,
                               "Chebyshev polynomial of the third kind ``V_n(input)``.")
chebyshev_polynomial_w = _make("chebyshev_polynomial_w", _cheb("w"), False,
                               "Chebyshev polynomial of the fourth kind ``W_n(input)``.")
shifted_chebyshev_polynomial_t = _make("shifted_chebyshev_polynomial_t", _cheb("t"), True,
                                       "``T*_n(input) = T_n(2 input - 1)``, on ``[0, 1]``.")
shifted_chebyshev_polynomial_u = _make("shifted_chebyshev_polynomial_u", _cheb("u"), True,
                                       "``U*_n(input) = U_n(2 input - 1)``, on ``[0, 1]``.")
shifted_chebyshev_polynomial_v = _make("shifted_chebyshev_polynomial_v", _cheb("v"), True,
                                       "``V*_n(input) = V_n(2 input - 1)``, on ``[0, 1]``.")
shifted_chebyshev_polynomial_w = _make("shifted_chebyshev_polynomial_w", _cheb("w"), True,
                                       "``W*_n(input) = W_n(2 input - 1)``, on ``[0, 1]``.")
hermite_polynomial_h = _make("hermite_polynomial_h", _hermite_h, False,
                             "The physicists' Hermite polynomial ``H_n(input)``.")
hermite_polynomial_he = _make("hermite_polynomial_he", _hermite_he, False,
                              "The probabilists' Hermite polynomial ``He_n(input)``.")
laguerre_polynomial_l = _make("laguerre_polynomial_l", _laguerre_l, False, "The Laguerre polynomial ``L_n(input)``.")
legendre_polynomial_p = _make("legendre_polynomial_p", _legendre_p, False, "The Legendre polynomial ``P_n(input)``.")

__all__ = ["chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
           "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
           "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l",
           "legendre_polynomial_p"]
