"""Count distributions: Geometric, NegativeBinomial and Multinomial, with PyTorch's
parameterisations (``probs`` or ``logits``), formulas and argument checks.

``Geometric(p)`` counts the failures before the first success; ``NegativeBinomial(r, p)`` the
successes (probability ``p`` each) before ``r`` failures, PyTorch's convention, which is the
reverse of SciPy's ``nbinom``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution, _shape, broadcast_all
from .simple import Categorical, _eps, _rand


def _binary_probs_logits(probs: Any, logits: Any) -> Tuple[Tensor, Tensor, Tensor]:
    """``(probs, logits, the given one)`` of a Bernoulli-type parameter."""
    if (probs is None) == (logits is None):
        raise ValueError("Either `probs` or `logits` must be specified, but not both.")
    if probs is not None:
        (p,) = broadcast_all(probs)
        q = p.clamp(_eps(p), 1 - _eps(p))
        return p, q.log() - (-q).log1p(), p
    (lg,) = broadcast_all(logits)
    return lg.sigmoid(), lg, lg


class Geometric(Distribution):
    """``Geometric(probs=None, logits=None)``: the number of failures before the first success
    of Bernoulli(``probs``) trials."""

    arg_constraints = {"probs": constraints.interval(0.0, 1.0), "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs: Any = None, logits: Any = None, validate_args: Optional[bool] = None) -> None:
        self.probs, self.logits, param = _binary_probs_logits(probs, logits)
        super().__init__(tuple(param.shape), (), validate_args)
        if probs is not None:
            self._check("probs", self.probs, (self.probs > 0).logical_and(self.probs <= 1),
                        "Interval(lower_bound=0.0, upper_bound=1.0) (and > 0)")

    @property
    def mean(self) -> Tensor:
        return 1.0 / self.probs - 1.0

    @property
    def mode(self) -> Tensor:
        return _core.zeros_like(self.probs)

    @property
    def variance(self) -> Tensor:
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from .. import finfo
        from ..autograd import no_grad

        with no_grad():
            u = _rand(self._extended_shape(sample_shape), self.probs).clamp(min=float(finfo(self.probs.dtype).tiny))
            return (u.log() / (-self.probs.detach()).log1p()).floor()

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        value = value if value.is_floating_point() else value.to(self.probs.dtype)
        # p == 1 puts all mass on 0: 0 * log(1 - 1) is 0 there, not NaN
        probs = _core.where((self.probs == 1).logical_and(value == 0), 0.0, self.probs)
        return value * (-probs).log1p() + self.probs.log()

    def entropy(self) -> Tensor:
        from ..nn.functional import binary_cross_entropy_with_logits

        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs


class NegativeBinomial(Distribution):
    """``NegativeBinomial(total_count, probs=None, logits=None)``: the number of successes
    (probability ``probs`` each) before ``total_count`` failures."""

    arg_constraints = {"total_count": constraints.greater_than_eq(0), "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count: Any, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        p, lg, param = _binary_probs_logits(probs, logits)
        total, param = broadcast_all(total_count, param)
        self.total_count = total.to(param.dtype)
        self.probs, self.logits = p.expand(list(param.shape)), lg.expand(list(param.shape))
        super().__init__(tuple(param.shape), (), validate_args)
        self._check("total_count", self.total_count, self.total_count >= 0, "GreaterThanEq(lower_bound=0)")
        if probs is not None:
            self._check("probs", self.probs, (self.probs >= 0).logical_and(self.probs < 1),
                        "HalfOpenInterval(lower_bound=0.0, upper_bound=1.0)")

    @property
    def mean(self) -> Tensor:
        return self.total_count * self.logits.exp()

    @property
    def mode(self) -> Tensor:
        return ((self.total_count - 1) * self.logits.exp()).floor().clamp(min=0.0)

    @property
    def variance(self) -> Tensor:
        return self.mean / (-self.logits).sigmoid()

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..autograd import no_grad
        from .gamma import Gamma, Poisson

        with no_grad():
            rate = Gamma(self.total_count.detach(), (-self.logits.detach()).exp(), validate_args=False)
            return Poisson(rate.sample(sample_shape), validate_args=False).sample()

    def log_prob(self, value: Tensor) -> Tensor:
        from ..nn.functional import logsigmoid

        self._validate_sample(value)
        value = value if value.is_floating_point() else value.to(self.logits.dtype)
        log_unnormalized = self.total_count * logsigmoid(-self.logits) + value * logsigmoid(self.logits)
        log_normalization = (-(self.total_count + value).lgamma() + (1.0 + value).lgamma()
                             + self.total_count.lgamma())
        # total_count + value == 0 is the point mass at 0 of NegativeBinomial(0, p)
        log_normalization = _core.where(self.total_count + value == 0, 0.0, log_normalization)
        return log_unnormalized - log_normalization


class Multinomial(Distribution):
    """``Multinomial(total_count=1, probs=None, logits=None)``: the counts of each of ``K``
    categories in ``total_count`` draws from ``Categorical(probs)``; events are ``[..., K]``."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count: int = 1, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits, validate_args=validate_args)
        self._binomial_probs = self._categorical.probs
        super().__init__(tuple(self._categorical.batch_shape), (self._categorical._num_events,), validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> Any:  # type: ignore[override]
        return constraints.multinomial(self.total_count)

    @property
    def probs(self) -> Tensor:
        return self._categorical.probs

    @property
    def logits(self) -> Tensor:
        return self._categorical.logits

    @property
    def param_shape(self) -> Any:
        return self._categorical.param_shape

    def _params_repr(self) -> str:
        return f"total_count: {self.total_count}, probs: size {tuple(self.probs.shape)}"

    @property
    def mean(self) -> Tensor:
        return self.probs * self.total_count

    @property
    def variance(self) -> Tensor:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..nn.functional import one_hot

        draws = self._categorical.sample((self.total_count,) + _shape(sample_shape))
        k = self._categorical._num_events
        return one_hot(draws, k).to(self.probs.dtype).sum(0)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        from ..stacking import broadcast_tensors

        value = value if value.is_floating_point() else value.to(self.logits.dtype)
        logits, value = broadcast_tensors(self.logits, value)
        log_factorial_n = (value.sum(-1) + 1).lgamma()
        log_factorial_xs = (value + 1).lgamma().sum(-1)
        # a category with probability 0 that was drawn 0 times contributes 0, not 0 * -inf
        logits = _core.where((value == 0).logical_and(logits == float("-inf")), 0.0, logits)
        return log_factorial_n - log_factorial_xs + (logits * value).sum(-1)

    def entropy(self) -> Tensor:
        from .gamma import Binomial

        n = self.total_count
        counts = _core.arange(n + 1, dtype=self.probs.dtype, device=self.probs.device)
        counts = counts.reshape([n + 1] + [1] * (len(self._batch_shape) + 1))
        binomial = Binomial(n, probs=self.probs, validate_args=False)
        weights = (counts + 1).lgamma()
        expected = (binomial.log_prob(counts).exp() * weights).sum([0, -1])
        return n * self._categorical.entropy() - math.lgamma(n + 1) + expected

