"""``MultivariateNormal(loc, covariance_matrix | precision_matrix | scale_tril)`` as PyTorch's:
everything goes through the lower Cholesky factor ``L`` of the covariance (``linalg.cholesky``
and ``linalg.solve_triangular``, both differentiable), so ``log_prob``, ``rsample`` and
``entropy`` have gradients in every parameterisation."""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import _core
from .._core import Tensor
from . import constraints
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

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
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


class LowRankMultivariateNormal(Distribution):
    """The Gaussian with mean ``loc`` (``[..., k]``) and covariance
    ``cov_factor @ cov_factor.mT + diag(cov_diag)`` (``cov_factor`` ``[..., k, r]``,
    ``cov_diag`` ``[..., k]``). ``log_prob`` and ``entropy`` use the Woodbury identity and the
    matrix determinant lemma through the ``r x r`` capacitance ``I + W^T D^-1 W``, so they cost
    ``O(k r^2)``, not ``O(k^3)``."""

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, cov_factor: Tensor, cov_diag: Tensor, validate_args: Optional[bool] = None) -> None:
        from ..linalg import cholesky
        from ..stacking import broadcast_shapes

        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        k = loc.shape[-1]
        if cov_factor.dim() < 2:
            raise ValueError("cov_factor must be at least two-dimensional, with optional leading batch dimensions")
        if cov_factor.shape[-2] != k:
            raise ValueError(f"cov_factor must be a batch of matrices with shape {k} x m")
        if cov_diag.dim() < 1 or cov_diag.shape[-1] != k:
            raise ValueError(f"cov_diag must be a batch of vectors with shape {k}")
        batch = tuple(broadcast_shapes(tuple(loc.shape[:-1]), tuple(cov_factor.shape[:-2]), tuple(cov_diag.shape[:-1])))
        r = cov_factor.shape[-1]
        self.loc = loc.expand(list(batch + (k,)))
        self.cov_factor = cov_factor.expand(list(batch + (k, r)))
        self.cov_diag = cov_diag.expand(list(batch + (k,)))
        super().__init__(batch, (k,), validate_args)
        self._check("cov_diag", cov_diag, (cov_diag > 0).all(-1), "IndependentConstraint(GreaterThan(lower_bound=0.0), 1)")
        self._unbroadcasted_cov_factor = cov_factor
        self._unbroadcasted_cov_diag = cov_diag
        wt_dinv = cov_factor.transpose(-2, -1) / cov_diag.unsqueeze(-2)
        capacitance = wt_dinv @ cov_factor + _core.eye(r, dtype=cov_factor.dtype, device=cov_factor.device)
        self._capacitance_tril = cholesky(capacitance)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return ((self._unbroadcasted_cov_factor ** 2).sum(-1) + self._unbroadcasted_cov_diag).expand(
            list(self._batch_shape + self._event_shape))

    @property
    def covariance_matrix(self) -> Tensor:
        w = self._unbroadcasted_cov_factor
        d = self._unbroadcasted_cov_diag
        k = self._event_shape[0]
        cov = w @ w.transpose(-2, -1) + d.unsqueeze(-1) * _core.eye(k, dtype=d.dtype, device=d.device)
        return cov.expand(list(self._batch_shape + (k, k)))

    @property
    def scale_tril(self) -> Tensor:
        from ..linalg import cholesky

        return cholesky(self.covariance_matrix)

    @property
    def precision_matrix(self) -> Tensor:
        # Woodbury: D^-1 - D^-1 W C^-1 W^T D^-1 with C the capacitance
        from ..linalg import solve_triangular

        w = self._unbroadcasted_cov_factor
        d_inv = self._unbroadcasted_cov_diag.reciprocal()
        k = self._event_shape[0]
        a = solve_triangular(self._capacitance_tril, (w * d_inv.unsqueeze(-1)).transpose(-2, -1), upper=False)
        prec = d_inv.unsqueeze(-1) * _core.eye(k, dtype=w.dtype, device=w.device) - a.transpose(-2, -1) @ a
        return prec.expand(list(self._batch_shape + (k, k)))

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        from .distribution import _shape

        shape = self._extended_shape(sample_shape)
        r = self._unbroadcasted_cov_factor.shape[-1]
        dt, dev = self.loc.dtype, self.loc.device
        eps_w = _core.randn(*(_shape(sample_shape) + self._batch_shape + (r,)), dtype=dt).to(dev)
        eps_d = _core.randn(*shape, dtype=dt).to(dev)
        return (self.loc + (self._unbroadcasted_cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
                + self._unbroadcasted_cov_diag.sqrt() * eps_d)

    def _log_det(self) -> Tensor:
        return 2 * self._capacitance_tril.diagonal(0, -2, -1).log().sum(-1) + self._unbroadcasted_cov_diag.log().sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        diff = value - self.loc
        d = self._unbroadcasted_cov_diag
        w = self._unbroadcasted_cov_factor
        # Woodbury: x^T D^-1 x - |C^-1/2 W^T D^-1 x|^2
        wt_dinv_x = ((w.transpose(-2, -1) @ (diff / d).unsqueeze(-1))).squeeze(-1)
        m = (diff * diff / d).sum(-1) - _batch_mahalanobis(self._capacitance_tril, wt_dinv_x)
        k = self._event_shape[0]
        return -0.5 * (k * _LOG_2PI + self._log_det() + m)

    def entropy(self) -> Tensor:
        k = self._event_shape[0]
        h = 0.5 * (k * (1.0 + _LOG_2PI) + self._log_det())
        return h.expand(list(self._batch_shape)) if self._batch_shape else h
