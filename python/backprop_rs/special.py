"""``torch.special``: the special functions backprop_rs has, under PyTorch's names.

``erfc``, ``gammaln``, ``digamma`` and trigamma are engine primitives with kernels accurate in
the tails; ``ndtr``, ``log_ndtr`` and ``multigammaln`` are built on them. ``erfcx``, ``ndtri``,
``i0``, ``i0e``, ``i1``, ``i1e``, ``gammainc`` and ``gammaincc`` are computed on the host in
float64 (``special_kernels.py``), as are ``zeta`` and ``polygamma`` beyond ``n = 1``
(``zeta.py``), the orthogonal polynomials (``orthogonal_polynomials.py``) and the Bessel functions
J, Y and K (``bessel.py``) and ``airy_ai`` (``airy.py``): their tails need dedicated kernels (a
composite such as ``1 - erf(x)`` would silently lose every digit of ``erfc(5)``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from . import _core
from ._core import Tensor
from .math_ops import erfinv, exp2, logit, mvlgamma, polygamma, sinc, xlogy

__all__ = ["expit", "logit", "erf", "erfinv", "exp2", "expm1", "log1p", "logsumexp", "log_softmax", "softmax",
           "sinc", "xlogy", "xlog1py", "entr", "round", "erfc", "gammaln", "digamma", "psi", "polygamma",
           "multigammaln", "ndtr", "log_ndtr", "erfcx", "ndtri", "i0", "i0e", "i1", "i1e", "gammainc", "gammaincc",
           "spherical_bessel_j0", "zeta"]


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


def erfc(input: Tensor) -> Tensor:
    """The complementary error function ``1 - erf(x)``, accurate in the upper tail."""
    return input.erfc()


def gammaln(input: Tensor) -> Tensor:
    """``ln |Gamma(x)|`` (``torch.lgamma``)."""
    return input.lgamma()


def digamma(input: Tensor) -> Tensor:
    """``psi(x)``, the derivative of ``gammaln``."""
    return input.digamma()


psi = digamma


def multigammaln(input: Tensor, p: int) -> Tensor:
    """The multivariate log-gamma function (``torch.mvlgamma``)."""
    return mvlgamma(input, p)


_SQRT1_2 = 0.7071067811865476


def ndtr(input: Tensor) -> Tensor:
    """The standard normal CDF ``erfc(-x / sqrt 2) / 2`` (accurate in the lower tail)."""
    x = input if input.is_floating_point() else input.float()
    return (x * -_SQRT1_2).erfc() * 0.5


def log_ndtr(input: Tensor) -> Tensor:
    """``log(ndtr(x))`` without underflow: ``log1p(-erfc(x/sqrt 2)/2)`` above 0, ``log(erfc(-x/sqrt 2)/2)``
    down to a threshold where erfc still has its digits (-10 in float32, -20 in float64), and the
    asymptotic series ``-x^2/2 - log(-x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4 - ...)`` below it
    (eight terms: relative error under 1e-10 at -10, 1e-15 at -20). Each branch sees only inputs
    inside its domain, so no NaN reaches the gradient."""
    x = input if input.is_floating_point() else input.float()
    thr = -10.0 if x.dtype == _core.float32 else -20.0
    upper = _core.where(x > 0, x, 0.0)
    mid = _core.where((x <= 0) & (x >= thr), x, 0.0)
    low = _core.where(x < thr, x, thr)
    up_v = ((upper * _SQRT1_2).erfc() * -0.5).log1p()
    mid_v = ((mid * -_SQRT1_2).erfc() * 0.5).log()
    w = 1.0 / (low * low)
    series = w * 0.0 + 1.0
    term = w * 0.0 + 1.0
    for k in range(1, 9):
        term = term * w * -(2 * k - 1)
        series = series + term
    low_v = low * low * -0.5 - (-low).log() - 0.5 * math.log(2 * math.pi) + series.log()
    return _core.where(x > 0, up_v, _core.where(x >= thr, mid_v, low_v))


_ = (erfinv, exp2, logit, polygamma, sinc, xlogy)  # re-exported
# the host-computed kernels (float64 NumPy; see special_kernels.py)
from .special_kernels import erfcx, gammainc, gammaincc, i0, i0e, i1, i1e, ndtri  # noqa: E402,F401
from .zeta import zeta  # noqa: E402,F401
from .orthogonal_polynomials import *  # noqa: E402,F401,F403
from .orthogonal_polynomials import __all__ as _polynomials  # noqa: E402
from .bessel import *  # noqa: E402,F401,F403
from .bessel import __all__ as _bessel  # noqa: E402
from .airy import airy_ai  # noqa: E402,F401

__all__ += _polynomials + _bessel + ["airy_ai"]


def spherical_bessel_j0(input: Tensor) -> Tensor:
    """``sin(x) / x`` (1 at 0), the spherical Bessel function of order 0."""
    x = input if input.is_floating_point() else input.float()
    safe = _core.where(x == 0, 1.0, x)
    return _core.where(x == 0, 1.0, safe.sin() / safe)
