"""``MultivariateNormal(loc, covariance_matrix | precision_matrix | scale_tril)`` as PyTorch's:
everything goes through the lower Cholesky factor ``L`` of the covariance (``linalg.cholesky``
and ``linalg.solve_triangular``, both differentiable), so ``log_prob``, ``rsample`` and
``entropy`` have gradients in every parameterisation."""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import _core
from .._core import Tensor
from .distribution import Distribution

_LOG_2PI = math.log(2 * math.pi)


def _batch_mahalanobis(L: Tensor, x: Tensor) -> Tensor:
    """``|L^-1 x|^2`` over the last dimension, ``L`` broadcast against ``x``'s batch."""
    from ..linalg import solve_triangular

    y = solve_triangular(L, x.unsqueeze(-1), upper=False).squeeze(-1)
    return (y * y).sum(-1)


class MultivariateNormal(Distribution):
    """The Gaussian with mean ``loc`` (``[..., k]``) and one of a covariance, a precision, or a
    lower-triangular ``scale_tril`` with positive diagonal (``[..., k, k]``)."""

    arg_constraints = {"loc": "IndependentConstraint(Real(), 1)", "covariance_matrix": "PositiveDefinite()",
                       "precision_matrix": "PositiveDefinite()", "scale_tril": "LowerCholesky()"}
    has_rsample = True

    def __init__(self, loc: Tensor, covariance_matrix: Optional[Tensor] = None, precision_matrix: Optional[Tensor] = None,
                 scale_tril: Optional[Tensor] = None, validate_args: Optional[bool] = None) -> None:
        from ..linalg import cholesky, inv
        from ..stacking import broadcast_shapes

        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        if (covariance_matrix is not None) + (scale_tril is not None) + (precision_matrix is not None) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        given = next(m for m in (scale_tril, covariance_matrix, precision_matrix) if m is not None)
        if given.dim() < 2:
            raise ValueError("scale_tril, covariance_matrix or precision_matrix must be at least two-dimensional, "
                             "with optional leading batch dimensions")
        k = loc.shape[-1]
        if tuple(given.shape[-2:]) != (k, k):
            raise ValueError(f"The matrix's last two dimensions {tuple(given.shape[-2:])} do not match loc's event size {k}")
        batch = tuple(broadcast_shapes(tuple(given.shape[:-2]), tuple(loc.shape[:-1])))
        self.loc = loc.expand(batch + (k,))
        super().__init__(batch, (k,), validate_args)
        mshape = batch + (k, k)
        if scale_tril is not None:
            self._check("scale_tril", scale_tril, (scale_tril.diagonal(0, -2, -1) > 0).all(-1)
                        .logical_and((scale_tril.triu(1) == 0).all(-1).all(-1)), "LowerCholesky()")
            self._unbroadcasted_scale_tril = scale_tril
            self.scale_tril = scale_tril.expand(mshape)
        elif covariance_matrix is not None:
            self.covariance_matrix = covariance_matrix.expand(mshape)
            self._unbroadcasted_scale_tril = cholesky(covariance_matrix)
            self.scale_tril = self._unbroadcasted_scale_tril.expand(mshape)
        else:
            self.precision_matrix = precision_matrix.expand(mshape)
            self._unbroadcasted_scale_tril = cholesky(inv(precision_matrix))
            self.scale_tril = self._unbroadcasted_scale_tril.expand(mshape)

    def __getattr__(self, name: str) -> Any:
        # the two parameterisations not given, computed on first use (PyTorch's lazy properties)
        if name == "covariance_matrix":
            L = self.__dict__["scale_tril"]
            return L @ L.transpose(-2, -1)
        if name == "precision_matrix":
            from ..linalg import inv

            return inv(self.covariance_matrix)
        raise AttributeError(f"'MultivariateNormal' object has no attribute '{name}'")

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return (self.scale_tril ** 2).sum(-1)

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = _core.randn(*shape, dtype=self.loc.dtype).to(self.loc.device)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self) -> Tensor:
        return self._unbroadcasted_scale_tril.diagonal(0, -2, -1).log().sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        diff = value - self.loc
        m = _batch_mahalanobis(self._unbroadcasted_scale_tril, diff)
        k = self._event_shape[0]
        return -0.5 * (k * _LOG_2PI + m) - self._half_log_det()

    def entropy(self) -> Tensor:
        k = self._event_shape[0]
        h = 0.5 * k * (1.0 + _LOG_2PI) + self._half_log_det()
        return h.expand(self._batch_shape) if self._batch_shape else h

    def _params_repr(self) -> str:
        return f"loc: size {tuple(self.loc.shape)}"
