"""``torch.special``: the special functions backprop_rs has, under PyTorch's names.

Missing ones (``erfc``, ``ndtr``, ``ndtri``, ``log_ndtr``, ``gammaln``, ``digamma``,
``polygamma``, ``i0``, Bessel functions...) raise an ``AttributeError`` that says so: their
tails need dedicated kernels (``1 - erf(x)`` would silently lose every digit of ``erfc(5)``).
"""

from __future__ import annotations

from typing import Any, Optional

from . import _core
from ._core import Tensor
from .math_ops import erfinv, exp2, logit, sinc, xlogy

__all__ = ["expit", "logit", "erf", "erfinv", "exp2", "expm1", "log1p", "logsumexp", "log_softmax", "softmax",
           "sinc", "xlogy", "xlog1py", "entr", "round"]


def expit(input: Tensor) -> Tensor:
    """The logistic sigmoid."""
    return input.sigmoid()


def erf(input: Tensor) -> Tensor:
    """The error function."""
    return input.erf()


def expm1(input: Tensor) -> Tensor:
    """``exp(x) - 1``, accurate near 0."""
    return input.expm1()


def log1p(input: Tensor) -> Tensor:
    """``log(1 + x)``, accurate near 0."""
    return input.log1p()


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` along ``dim``, computed stably."""
    return input.logsumexp(dim, keepdim)


def log_softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """``log(softmax(x))`` along ``dim``."""
    return input.log_softmax(dim, dtype)


def softmax(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """``softmax`` along ``dim``."""
    return input.softmax(dim, dtype)


def xlog1py(input: Any, other: Any) -> Tensor:
    """``x * log1p(y)``, 0 where ``x == 0`` (unless ``y`` is NaN)."""
    x = input if isinstance(input, Tensor) else _core.tensor(float(input), device=other.device)
    y = other if isinstance(other, Tensor) else _core.tensor(float(other), dtype=x.dtype, device=x.device)
    safe = _core.where(x == 0, 0.0, y)  # log1p(0) = 0: the unused branch stays finite
    return _core.where(y.isnan(), y, x * safe.log1p())


def entr(input: Tensor) -> Tensor:
    """``-x * log(x)``: 0 at 0, ``-inf`` for negative ``x``."""
    x = input if input.is_floating_point() else input.float()
    safe = _core.where(x > 0, x, 1.0)
    out = _core.where(x > 0, -x * safe.log(), 0.0)
    return _core.where(x < 0, float("-inf"), out)


def round(input: Tensor, *, decimals: Optional[int] = None) -> Tensor:
    """Rounds half to even (to ``decimals`` places)."""
    if not decimals:
        return input.round()
    scale = 10.0 ** decimals  # PyTorch's own formula: round(x * 10^d) / 10^d
    return (input * scale).round() / scale


_MISSING = {"erfc", "erfcx", "ndtr", "ndtri", "log_ndtr", "gammaln", "digamma", "psi", "polygamma", "multigammaln",
            "i0", "i0e", "i1", "i1e", "bessel_j0", "bessel_j1", "zeta", "gammainc", "gammaincc", "airy_ai",
            "spherical_bessel_j0", "chebyshev_polynomial_t", "hermite_polynomial_h", "log_ndtr"}


def __getattr__(name: str) -> Any:
    if name in _MISSING:
        raise AttributeError(f"torch.special.{name} is not in backprop_rs yet: it needs a special-function kernel "
                             "that is accurate in the tails (a composite would silently lose digits there)")
    raise AttributeError(f"module 'backprop_rs.special' has no attribute '{name}'")


_ = (erfinv, exp2, logit, sinc, xlogy)  # re-exported
