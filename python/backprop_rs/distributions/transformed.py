"""``TransformedDistribution`` and the distributions PyTorch builds from one: LogNormal, Gumbel,
HalfNormal, HalfCauchy, Weibull, Pareto, Kumaraswamy and LogisticNormal.

``log p(y) = log p_base(x) - log |det dy/dx|`` with ``x`` the inverse image, so every density here
is the base density and the transforms' log-dets, differentiable in the parameters, and
``rsample`` pushes a reparameterised base sample through the transforms. Where PyTorch overrides a
formula (Gumbel's and HalfNormal's ``log_prob``, the moments), the closed form is used.

One deliberate difference: ``Kumaraswamy.mode`` is the closed form
``((a - 1) / (a b - 1)) ** (1 / a)`` (NaN where ``a < 1`` or ``b < 1``); PyTorch's log-space
expression evaluates ``log1p(-b)`` and so returns NaN for every ``b > 1``.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Union

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from .simple import Exponential, Independent, Normal, Uniform, _sum_rightmost
from .transforms import (
    AbsTransform,
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    PowerTransform,
    StickBreakingTransform,
    Transform,
)

EULER_GAMMA = 0.57721566490153286060
_LOG2 = math.log(2.0)


class TransformedDistribution(Distribution):
    """``TransformedDistribution(base_distribution, transforms)``: the law of ``f(X)`` for
    ``X ~ base_distribution`` and ``f`` the transforms applied in order. The event shape is the
    largest that the base's event and the transforms' event dims call for."""

    arg_constraints: dict = {}

    def __init__(self, base_distribution: Distribution, transforms: Union[Transform, List[Transform]],
                 validate_args: Optional[bool] = None) -> None:
        if isinstance(transforms, Transform):
            self.transforms = [transforms]
        elif isinstance(transforms, (list, tuple)):
            if not all(isinstance(t, Transform) for t in transforms):
                raise ValueError("transforms must be a Transform or a list of Transforms")
            self.transforms = list(transforms)
        else:
            raise ValueError(f"transforms must be a Transform or list, but was {transforms}")

        base_shape = tuple(base_distribution.batch_shape) + tuple(base_distribution.event_shape)
        base_event_dim = len(base_distribution.event_shape)
        transform = ComposeTransform(self.transforms)
        if len(base_shape) < transform.domain.event_dim:
            raise ValueError(f"base_distribution needs to have shape with size at least {transform.domain.event_dim}, "
                             f"but got {base_shape}.")
        forward_shape = transform.forward_shape(base_shape)
        expanded_base_shape = transform.inverse_shape(forward_shape)
        if base_shape != expanded_base_shape:
            raise NotImplementedError(
                f"TransformedDistribution: the transforms broadcast the base shape {base_shape} to "
                f"{expanded_base_shape}; backprop_rs does not expand the base distribution, so give it parameters "
                "of the full shape")
        reinterpreted = transform.domain.event_dim - base_event_dim
        if reinterpreted > 0:
            base_distribution = Independent(base_distribution, reinterpreted)
        self.base_dist = base_distribution

        change = transform.codomain.event_dim - transform.domain.event_dim
        event_dim = max(transform.codomain.event_dim, base_event_dim + change)
        cut = len(forward_shape) - event_dim
        super().__init__(forward_shape[:cut], forward_shape[cut:], validate_args)

    @property
    def support(self) -> Any:  # type: ignore[override]
        if not self.transforms:
            return self.base_dist.support
        support = self.transforms[-1].codomain
        if len(self._event_shape) > support.event_dim:
            support = constraints.independent(support, len(self._event_shape) - support.event_dim)
        return support

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.base_dist.has_rsample

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..autograd import no_grad

        with no_grad():
            x = self.base_dist.sample(sample_shape)
            for t in self.transforms:
                x = t(x)
            return x

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        x = self.base_dist.rsample(sample_shape)
        for t in self.transforms:
            x = t(x)
        return x

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self._event_shape)
        log_prob: Any = 0.0
        y = value
        for t in reversed(self.transforms):
            x = t.inv(y)
            event_dim += t.domain.event_dim - t.codomain.event_dim
            log_prob = log_prob - _sum_rightmost(t.log_abs_det_jacobian(x, y), event_dim - t.domain.event_dim)
            y = x
        return log_prob + _sum_rightmost(self.base_dist.log_prob(y), event_dim - len(self.base_dist.event_shape))

    def _monotonize_cdf(self, value: Tensor) -> Tensor:
        sign: Any = 1
        for t in self.transforms:
            sign = sign * t.sign
        if isinstance(sign, int) and sign == 1:
            return value
        return sign * (value - 0.5) + 0.5

    def cdf(self, value: Tensor) -> Tensor:
        for t in self.transforms[::-1]:
            value = t.inv(value)
        if self._validate_args:
            self.base_dist._validate_sample(value)
        return self._monotonize_cdf(self.base_dist.cdf(value))

    def icdf(self, value: Tensor) -> Tensor:
        value = self.base_dist.icdf(self._monotonize_cdf(value))
        for t in self.transforms:
            value = t(value)
        return value

    def __repr__(self) -> str:
        if type(self) is TransformedDistribution:
            return f"TransformedDistribution({self.base_dist!r}, {self.transforms!r})"
        return super().__repr__()


class LogNormal(TransformedDistribution):
    """``LogNormal(loc, scale)``: ``exp(X)`` for ``X ~ Normal(loc, scale)``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: Optional[bool] = None) -> None:
        super().__init__(Normal(loc, scale, validate_args=validate_args), ExpTransform(), validate_args)

    @property
    def loc(self) -> Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    def _params_repr(self) -> str:
        return self.base_dist._params_repr()

    @property
    def mean(self) -> Tensor:
        return (self.loc + self.scale ** 2 / 2).exp()

    @property
    def mode(self) -> Tensor:
        return (self.loc - self.scale ** 2).exp()

    @property
    def variance(self) -> Tensor:
        s2 = self.scale ** 2
        return s2.expm1() * (2 * self.loc + s2).exp()

    def entropy(self) -> Tensor:
        return self.base_dist.entropy() + self.loc


class Gumbel(TransformedDistribution):
    """``Gumbel(loc, scale)``: the law of the maximum, ``loc - scale * log(-log U)``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: Optional[bool] = None) -> None:
        from .. import finfo

        self.loc, self.scale = broadcast_all(loc, scale)
        fi = finfo(self.loc.dtype)
        base = Uniform(_core.full_like(self.loc, float(fi.tiny)), _core.full_like(self.loc, 1 - float(fi.eps)),
                       validate_args=validate_args)
        transforms = [ExpTransform().inv, AffineTransform(0, -_core.ones_like(self.scale)), ExpTransform().inv,
                      AffineTransform(self.loc, -self.scale)]
        super().__init__(base, transforms, validate_args)
        self._check("scale", self.scale, self.scale > 0, constraints.positive)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (self.loc - value) / self.scale
        return (z - z.exp()) - self.scale.log()

    @property
    def mean(self) -> Tensor:
        return self.loc + self.scale * EULER_GAMMA

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self) -> Tensor:
        return self.stddev ** 2

    def entropy(self) -> Tensor:
        return self.scale.log() + (1 + EULER_GAMMA)


class HalfNormal(TransformedDistribution):
    """``HalfNormal(scale)``: ``|X|`` for ``X ~ Normal(0, scale)``."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale: Any, validate_args: Optional[bool] = None) -> None:
        super().__init__(Normal(0, scale, validate_args=False), AbsTransform(), validate_args)
        self._check("scale", self.scale, self.scale > 0, constraints.positive)

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    def _params_repr(self) -> str:
        return f"scale: {self.scale if self.scale.numel() == 1 else 'size ' + str(tuple(self.scale.shape))}"

    @property
    def mean(self) -> Tensor:
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self) -> Tensor:
        return _core.zeros_like(self.scale)

    @property
    def variance(self) -> Tensor:
        return self.scale ** 2 * (1 - 2 / math.pi)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lp = self.base_dist.log_prob(value) + _LOG2
        return _core.where(value >= 0, lp, -math.inf)

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob: Tensor) -> Tensor:
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self) -> Tensor:
        return self.base_dist.entropy() - _LOG2


class HalfCauchy(TransformedDistribution):
    """``HalfCauchy(scale)``: ``|X|`` for ``X ~ Cauchy(0, scale)``."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale: Any, validate_args: Optional[bool] = None) -> None:
        from .simple import Cauchy

        super().__init__(Cauchy(0, scale, validate_args=False), AbsTransform(), validate_args)
        self._check("scale", self.scale, self.scale > 0, constraints.positive)

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    def _params_repr(self) -> str:
        return f"scale: {self.scale if self.scale.numel() == 1 else 'size ' + str(tuple(self.scale.shape))}"

    @property
    def mean(self) -> Tensor:
        return _core.full_like(self.scale, math.inf)

    @property
    def mode(self) -> Tensor:
        return _core.zeros_like(self.scale)

    @property
    def variance(self) -> Tensor:
        return _core.full_like(self.scale, math.inf)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value if isinstance(value, Tensor) else _core.tensor(float(value), dtype=self.scale.dtype)
        lp = self.base_dist.log_prob(value) + _LOG2
        return _core.where(value >= 0, lp, -math.inf)

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob: Tensor) -> Tensor:
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self) -> Tensor:
        return self.base_dist.entropy() - _LOG2


class Weibull(TransformedDistribution):
    """``Weibull(scale, concentration)``: ``scale * E ** (1 / concentration)`` for a standard
    exponential ``E``."""

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale: Any, concentration: Any, validate_args: Optional[bool] = None) -> None:
        self.scale, self.concentration = broadcast_all(scale, concentration)
        base = Exponential(_core.ones_like(self.scale), validate_args=validate_args)
        transforms = [PowerTransform(self.concentration.reciprocal()), AffineTransform(0, self.scale)]
        super().__init__(base, transforms, validate_args)
        self._check("scale", self.scale, self.scale > 0, constraints.positive)
        self._check("concentration", self.concentration, self.concentration > 0, constraints.positive)

    @property
    def mean(self) -> Tensor:
        return self.scale * (1 + self.concentration.reciprocal()).lgamma().exp()

    @property
    def mode(self) -> Tensor:
        k = self.concentration
        return self.scale * ((k - 1) / k) ** k.reciprocal()

    @property
    def variance(self) -> Tensor:
        k_inv = self.concentration.reciprocal()
        return self.scale ** 2 * ((1 + 2 * k_inv).lgamma().exp() - (2 * (1 + k_inv).lgamma()).exp())

    def entropy(self) -> Tensor:
        k = self.concentration
        return EULER_GAMMA * (1 - k.reciprocal()) + (self.scale / k).log() + 1


class Pareto(TransformedDistribution):
    """``Pareto(scale, alpha)``: ``scale * exp(E)`` for ``E ~ Exponential(alpha)``, on
    ``[scale, inf)``."""

    arg_constraints = {"alpha": constraints.positive, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, scale: Any, alpha: Any, validate_args: Optional[bool] = None) -> None:
        self.scale, self.alpha = broadcast_all(scale, alpha)
        base = Exponential(self.alpha, validate_args=validate_args)
        super().__init__(base, [ExpTransform(), AffineTransform(0, self.scale)], validate_args)
        self._check("scale", self.scale, self.scale > 0, constraints.positive)

    @property
    def support(self) -> Any:  # type: ignore[override]
        return constraints.greater_than_eq(self.scale)

    @property
    def mean(self) -> Tensor:
        a = self.alpha.clamp(min=1)
        return a * self.scale / (a - 1)

    @property
    def mode(self) -> Tensor:
        return self.scale

    @property
    def variance(self) -> Tensor:
        a = self.alpha.clamp(min=2)
        return self.scale ** 2 * a / ((a - 1) ** 2 * (a - 2))

    def entropy(self) -> Tensor:
        return (self.scale / self.alpha).log() + (1 + self.alpha.reciprocal())


def _kumaraswamy_moment(a: Tensor, b: Tensor, n: int) -> Tensor:
    arg1 = 1 + n / a
    return b * (arg1.lgamma() + b.lgamma() - (arg1 + b).lgamma()).exp()


class Kumaraswamy(TransformedDistribution):
    """``Kumaraswamy(concentration1, concentration0)``: density ``a b x^(a-1) (1 - x^a)^(b-1)``
    on the unit interval (``a = concentration1``, ``b = concentration0``)."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1: Any, concentration0: Any, validate_args: Optional[bool] = None) -> None:
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        base = Uniform(_core.full_like(self.concentration0, 0.0), _core.full_like(self.concentration0, 1.0),
                       validate_args=validate_args)
        transforms = [PowerTransform(self.concentration0.reciprocal()), AffineTransform(1.0, -1.0),
                      PowerTransform(self.concentration1.reciprocal())]
        super().__init__(base, transforms, validate_args)
        self._check("concentration1", self.concentration1, self.concentration1 > 0, constraints.positive)
        self._check("concentration0", self.concentration0, self.concentration0 > 0, constraints.positive)

    @property
    def mean(self) -> Tensor:
        return _kumaraswamy_moment(self.concentration1, self.concentration0, 1)

    @property
    def mode(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        m = ((a - 1) / (a * b - 1)) ** a.reciprocal()
        return _core.where((a < 1).logical_or(b < 1), math.nan, m)

    @property
    def variance(self) -> Tensor:
        return _kumaraswamy_moment(self.concentration1, self.concentration0, 2) - self.mean ** 2

    def entropy(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        harmonic_b = (b + 1).digamma() + EULER_GAMMA
        return (1 - b.reciprocal()) + (1 - a.reciprocal()) * harmonic_b - a.log() - b.log()


class LogisticNormal(TransformedDistribution):
    """``LogisticNormal(loc, scale)``: stick breaking applied to ``Normal(loc, scale)``, a law on
    the simplex of dimension ``loc.shape[-1] + 1``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: Optional[bool] = None) -> None:
        base = Normal(loc, scale, validate_args=validate_args)
        if not base._batch_shape:
            base = Normal(base.loc.reshape([1]), base.scale.reshape([1]), validate_args=validate_args)
        super().__init__(base, StickBreakingTransform(), validate_args)

    @property
    def loc(self) -> Tensor:
        return self.base_dist.base_dist.loc

    @property
    def scale(self) -> Tensor:
        return self.base_dist.base_dist.scale

    def _params_repr(self) -> str:
        return self.base_dist.base_dist._params_repr()


class InverseGamma(TransformedDistribution):
    """``InverseGamma(concentration, rate)``: ``1 / X`` for ``X ~ Gamma(concentration, rate)``."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, concentration: Any, rate: Any, validate_args: Optional[bool] = None) -> None:
        from .gamma import Gamma

        base = Gamma(concentration, rate, validate_args=validate_args)
        super().__init__(base, PowerTransform(_core.tensor(-1.0, dtype=base.rate.dtype)), validate_args)

    @property
    def concentration(self) -> Tensor:
        return self.base_dist.concentration

    @property
    def rate(self) -> Tensor:
        return self.base_dist.rate

    def _params_repr(self) -> str:
        return self.base_dist._params_repr()

    @property
    def mean(self) -> Tensor:
        a = self.concentration
        return _core.where(a > 1, self.rate / (a - 1), float("inf"))

    @property
    def mode(self) -> Tensor:
        return self.rate / (self.concentration + 1)

    @property
    def variance(self) -> Tensor:
        a = self.concentration
        return _core.where(a > 2, self.rate ** 2 / ((a - 1) ** 2 * (a - 2)), float("inf"))

    def entropy(self) -> Tensor:
        a = self.concentration
        return a + self.rate.log() + a.lgamma() - (1 + a) * a.digamma()
