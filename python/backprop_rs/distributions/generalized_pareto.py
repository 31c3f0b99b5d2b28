"""``GeneralizedPareto(loc, scale, concentration)``: the law of exceedances over a threshold
(peaks-over-threshold models), with PyTorch's definition: survival function
``(1 + k z)^(-1/k)`` for ``z = (x - loc) / scale`` (``exp(-z)`` where ``k`` is close to 0, by
``isclose``), support ``[loc, loc + scale / |k|]`` when some ``k < 0`` and ``[loc, inf)``
otherwise, the mean NaN for ``k >= 1`` and the variance NaN for ``k >= 1/2``. No ``rsample``
(as PyTorch); ``sample`` is the icdf of a uniform draw. A composite of the engine's ops.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from .simple import _rand


class GeneralizedPareto(Distribution):
    """``GeneralizedPareto(loc, scale, concentration)``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive, "concentration": constraints.real}
    has_rsample = False

    def __init__(self, loc: Any, scale: Any, concentration: Any, validate_args: Optional[bool] = None) -> None:
        self.loc, self.scale, self.concentration = broadcast_all(loc, scale, concentration)
        super().__init__(tuple(self.loc.shape), (), validate_args)
        self._check("scale", self.scale, self.scale > 0, "GreaterThan(lower_bound=0.0)")

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> Any:  # type: ignore[override]
        if bool((self.concentration < 0).any().item()):
            return constraints.interval(self.loc, self.loc + self.scale / self.concentration.abs())
        return constraints.greater_than_eq(self.loc)

    def _zero_k(self) -> tuple:
        k = self.concentration
        near = k.abs() <= 1e-8  # torch.isclose(k, 0): |k| <= atol + rtol * 0
        return near, _core.where(near, 1.0, k)

    def _z(self, value: Tensor) -> Tensor:
        return (value - self.loc) / self.scale

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..autograd import no_grad

        with no_grad():
            return self.icdf(_rand(self._extended_shape(sample_shape), self.loc))

    def _check_support(self, value: Any) -> None:
        if self._validate_args:
            if not isinstance(value, Tensor):
                raise ValueError("The value argument to log_prob must be a Tensor")
            support = self.support
            self._check_value(value, support.check(value), repr(support))

    def log_prob(self, value: Any) -> Tensor:
        self._check_support(value)
        z = self._z(value)
        near, k = self._zero_k()
        y = 1 / k + 1
        nonzero = _core.where(y == 0, y, y * (k * z).log1p())
        return -self.scale.log() - _core.where(near, z, nonzero)

    def log_survival_function(self, value: Any) -> Tensor:
        self._check_support(value)
        z = self._z(value)
        near, k = self._zero_k()
        return _core.where(near, -z, -(k * z).log1p() / k)

    def log_cdf(self, value: Any) -> Tensor:
        return (-self.log_survival_function(value).exp()).log1p()

    def cdf(self, value: Any) -> Tensor:
        return self.log_cdf(value).exp()

    def icdf(self, value: Any) -> Tensor:
        near, k = self._zero_k()
        neglog1mp = -(-value).log1p()
        return self.loc + self.scale * _core.where(near, neglog1mp, (k * neglog1mp).expm1() / k)

    @property
    def mean(self) -> Tensor:
        k = self.concentration
        ok = k < 1
        return _core.where(ok, self.loc + self.scale / (1 - _core.where(ok, k, 0.5)), float("nan"))

    @property
    def variance(self) -> Tensor:
        k = self.concentration
        ok = k < 0.5
        safe = _core.where(ok, k, 0.25)
        v = self.scale ** 2 / ((1 - safe) ** 2 * (1 - 2 * safe)) + _core.zeros_like(self.loc)
        return _core.where(ok, v, float("nan"))

    @property
    def mode(self) -> Tensor:
        return self.loc

    def entropy(self) -> Tensor:
        return (self.scale.log() + self.concentration + 1).broadcast_to(list(self._batch_shape))
