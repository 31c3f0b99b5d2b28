"""``Wishart(df, covariance_matrix | precision_matrix | scale_tril)``: the law of ``X = sum_k
x_k x_k^T`` for ``df`` draws ``x_k ~ N(0, Sigma)``, over positive-definite matrices.

As PyTorch: every computation goes through the lower Cholesky factor ``L`` of ``Sigma``;
``rsample`` is the Bartlett decomposition ``X = (L A)(L A)^T`` with ``A`` lower triangular,
``A_ii = sqrt(chi2(df - i))`` (clamped above eps) and standard normal entries below the
diagonal, redrawing samples that come out singular (up to ``max_try_correction`` times, with
PyTorch's warning); ``log_prob`` and ``entropy`` are the closed forms with ``mvlgamma`` and the
multivariate digamma. Composites of the engine's ops (``cholesky_solve``, ``slogdet`` and
``cholesky`` are differentiable), so gradients reach ``Sigma``; as for ``Chi2``, a gradient
with respect to ``df`` through ``rsample`` is refused rather than dropped.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution

_LOG_2 = math.log(2)


def _mvdigamma(x: Tensor, p: int) -> Tensor:
    if not bool((x > (p - 1) / 2).all().item()):
        raise ValueError("Wrong domain for multivariate digamma function.")
    offsets = _core.arange(p, dtype=x.dtype, device=x.device) / 2
    return (x.unsqueeze(-1) - offsets).digamma().sum(-1)


class Wishart(Distribution):
    """``Wishart(df, covariance_matrix=None, precision_matrix=None, scale_tril=None)``; exactly
    one of the three matrices; ``df > p - 1``."""

    support = constraints.positive_definite
    has_rsample = True

    @property
    def arg_constraints(self) -> dict:  # type: ignore[override]
        return {"covariance_matrix": constraints.positive_definite,
                "precision_matrix": constraints.positive_definite,
                "scale_tril": constraints.lower_cholesky,
                "df": constraints.greater_than(self._event_shape[-1] - 1)}

    def __init__(self, df: Any, covariance_matrix: Optional[Tensor] = None, precision_matrix: Optional[Tensor] = None,
                 scale_tril: Optional[Tensor] = None, validate_args: Optional[bool] = None) -> None:
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        param = given[0]
        if param.dim() < 2:
            raise ValueError("scale_tril must be at least two-dimensional, with optional leading batch dimensions")
        from ..linalg import cholesky, inv
        from ..stacking import broadcast_shapes

        if isinstance(df, Tensor):
            batch = tuple(broadcast_shapes(tuple(param.shape[:-2]), tuple(df.shape)))
            self.df = df.expand(list(batch))
        else:
            batch = tuple(param.shape[:-2])
            self.df = _core.tensor(float(df), dtype=param.dtype, device=param.device)
        p = param.shape[-1]
        if bool((self.df <= p - 1).any().item()):
            raise ValueError(f"Value of df={df} expected to be greater than ndim - 1 = {p - 1}.")
        full = list(batch) + [-1, -1]
        if scale_tril is not None:
            self.scale_tril = param.expand(full)
            self._unbroadcasted_scale_tril = scale_tril
        elif covariance_matrix is not None:
            self.covariance_matrix = param.expand(full)
            self._unbroadcasted_scale_tril = cholesky(covariance_matrix)
        else:
            self.precision_matrix = param.expand(full)
            self._unbroadcasted_scale_tril = cholesky(inv(precision_matrix))
        if bool((self.df < p).any().item()):
            warnings.warn("Low df values detected. Singular samples are highly likely to occur for ndim - 1 < df < ndim.",
                          stacklevel=2)
        super().__init__(batch, tuple(param.shape[-2:]), validate_args)
        for name in ("covariance_matrix", "precision_matrix", "scale_tril"):
            if name in self.__dict__:
                ok = self.arg_constraints[name].check(self.__dict__[name])
                self._check(name, self.__dict__[name], ok, repr(self.arg_constraints[name]))

    def _full(self, m: Tensor) -> Tensor:
        return m.expand(list(self._batch_shape + self._event_shape))

    def __getattr__(self, name: str) -> Any:
        # the two matrices not given are derived on first use (PyTorch's lazy properties)
        if name in ("scale_tril", "covariance_matrix", "precision_matrix") and "_unbroadcasted_scale_tril" in self.__dict__:
            L = self.__dict__["_unbroadcasted_scale_tril"]
            if name == "scale_tril":
                value = self._full(L)
            elif name == "covariance_matrix":
                value = self._full(L @ L.mT)
            else:
                from ..decompositions import cholesky_inverse

                value = self._full(cholesky_inverse(L))
            self.__dict__[name] = value
            return value
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _df(self) -> Tensor:
        return self.df.reshape(list(self._batch_shape) + [1, 1])

    @property
    def mean(self) -> Tensor:
        return self._df() * self.covariance_matrix

    @property
    def mode(self) -> Tensor:
        factor = self.df - self._event_shape[-1] - 1
        factor = _core.where(factor <= 0, float("nan"), factor)
        return factor.reshape(list(self._batch_shape) + [1, 1]) * self.covariance_matrix

    @property
    def variance(self) -> Tensor:
        V = self.covariance_matrix
        d = V.diagonal(dim1=-2, dim2=-1)
        return self._df() * (V ** 2 + d.unsqueeze(-1) * d.unsqueeze(-2))

    def _bartlett(self, sample_shape: Any) -> Tensor:
        from .gamma import Chi2
        from .simple import _randn

        p = self._event_shape[-1]
        L = self._unbroadcasted_scale_tril
        offsets = _core.arange(p, dtype=L.dtype, device=L.device)
        chi2 = Chi2(self.df.unsqueeze(-1) - offsets)  # batch_shape + (p,)
        from .. import finfo

        diag = chi2.rsample(sample_shape).sqrt().clamp(min=float(finfo(L.dtype).eps))
        shape = self._extended_shape(sample_shape)
        A = _randn(shape, L).tril(-1) + diag.diag_embed(dim1=-2, dim2=-1)
        chol = L @ A
        return chol @ chol.mT

    def rsample(self, sample_shape: Any = (), max_try_correction: Optional[int] = None) -> Tensor:
        """Bartlett samples; singular ones are drawn again up to ``max_try_correction`` (10) times."""
        tries = 10 if max_try_correction is None else int(max_try_correction)
        sample = self._bartlett(sample_shape)
        bad = ~self.support.check(sample)
        if bool(bad.any().item()):
            warnings.warn("Singular sample detected.", stacklevel=2)
            for _ in range(tries):
                fresh = self._bartlett(sample_shape)
                sample = _core.where(bad.unsqueeze(-1).unsqueeze(-1), fresh, sample)
                bad = bad & ~self.support.check(fresh)
                if not bool(bad.any().item()):
                    break
        return sample

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        from ..decompositions import cholesky_solve, slogdet

        nu, p = self.df, self._event_shape[-1]
        L = self._unbroadcasted_scale_tril
        log_det_l = L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        trace = cholesky_solve(value, L).diagonal(dim1=-2, dim2=-1).sum(-1)
        return (-nu * (p * _LOG_2 / 2 + log_det_l) - (nu / 2).mvlgamma(p)
                + (nu - p - 1) / 2 * slogdet(value)[1] - trace / 2)

    def entropy(self) -> Tensor:
        nu, p = self.df, self._event_shape[-1]
        log_det_l = self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return ((p + 1) * (p * _LOG_2 / 2 + log_det_l) + (nu / 2).mvlgamma(p)
                - (nu - p - 1) / 2 * _mvdigamma(nu / 2, p) + nu * p / 2)
