"""``ContinuousBernoulli`` (Loaiza-Ganem and Cunningham, 2019): the density on ``[0, 1]``
proportional to ``p^x (1 - p)^(1 - x)``, the likelihood a VAE with a Bernoulli decoder on
continuous pixels implicitly uses, with its normaliser ``C(p)``.

PyTorch's definition to the letter, including its numerics: ``probs`` are clamped to
``[eps, 1 - eps]``, and near ``p = 1/2`` (inside ``lims``, where ``C(p)``'s closed form is 0/0)
the log-normaliser, mean and variance are their Taylor polynomials in ``p - 1/2`` and the
cdf/icdf the uniform's. A composite of the engine's ops, so ``rsample`` (the icdf of a uniform
draw), ``log_prob`` and ``entropy`` are differentiable.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from .simple import _eps, _rand


class ContinuousBernoulli(Distribution):
    """``ContinuousBernoulli(probs=None, logits=None, lims=(0.499, 0.501))`` on ``[0, 1]``;
    ``probs`` (or ``sigmoid(logits)``) is a shape parameter, not a probability."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, probs: Any = None, logits: Any = None, lims: Tuple[float, float] = (0.499, 0.501),
                 validate_args: Optional[bool] = None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            (p,) = broadcast_all(probs)
            # PyTorch checks the raw probs only when validate_args is given: clamped, they always pass
            if validate_args is not None and not bool(((p >= 0) & (p <= 1)).all().item()):
                raise ValueError("The parameter probs has invalid values")
            self.probs = p.clamp(_eps(p), 1 - _eps(p))
            self.logits = self.probs.log() - (-self.probs).log1p()
            self._param = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            s = self.logits.sigmoid()
            self.probs = s.clamp(_eps(s), 1 - _eps(s))
            self._param = self.logits
        self._lims = (float(lims[0]), float(lims[1]))
        super().__init__(tuple(self._param.shape), (), validate_args)

    @property
    def param_shape(self) -> Any:
        return self._param.shape

    def _stable(self) -> Tensor:
        """Where ``probs`` is far enough from 1/2 for the closed forms."""
        return (self.probs <= self._lims[0]) | (self.probs > self._lims[1])

    def _cut_probs(self) -> Tensor:
        # inside the unstable band the closed forms see lims[0] instead, so no 0/0 reaches a gradient
        return _core.where(self._stable(), self.probs, self._lims[0])

    def _cont_bern_log_norm(self) -> Tensor:
        """``log C(p)``, ``C(p) = 2 atanh(1 - 2p) / (1 - 2p)``."""
        c = self._cut_probs()
        below = _core.where(c <= 0.5, c, 0.0)
        above = _core.where(c >= 0.5, c, 1.0)
        closed = ((-c).log1p() - c.log()).abs().log() - _core.where(c <= 0.5, (-2.0 * below).log1p(),
                                                                      (2.0 * above - 1.0).log())
        x = (self.probs - 0.5) ** 2
        taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * x) * x
        return _core.where(self._stable(), closed, taylor)

    @property
    def mean(self) -> Tensor:
        c = self._cut_probs()
        closed = c / (2.0 * c - 1.0) + 1.0 / ((-c).log1p() - c.log())
        x = self.probs - 0.5
        taylor = 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * x ** 2) * x
        return _core.where(self._stable(), closed, taylor)

    @property
    def variance(self) -> Tensor:
        c = self._cut_probs()
        closed = c * (c - 1.0) / (1.0 - 2.0 * c) ** 2 + 1.0 / ((-c).log1p() - c.log()) ** 2
        x = (self.probs - 0.5) ** 2
        taylor = 1.0 / 12.0 - (1.0 / 15.0 - 128.0 / 945.0 * x) * x
        return _core.where(self._stable(), closed, taylor)

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        return self.icdf(_rand(self._extended_shape(sample_shape), self.probs))

    def log_prob(self, value: Any) -> Tensor:
        self._validate_sample(value)
        from ..nn.functional import binary_cross_entropy_with_logits

        logits, value = broadcast_all(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none") + self._cont_bern_log_norm()

    def cdf(self, value: Any) -> Tensor:
        self._validate_sample(value)
        c = self._cut_probs()
        closed = (c ** value * (1.0 - c) ** (1.0 - value) + c - 1.0) / (2.0 * c - 1.0)
        inner = _core.where(self._stable(), closed, value)
        return _core.where(value <= 0.0, 0.0, _core.where(value >= 1.0, 1.0, inner))

    def icdf(self, value: Any) -> Tensor:
        c = self._cut_probs()
        closed = ((-c + value * (2.0 * c - 1.0)).log1p() - (-c).log1p()) / (c.log() - (-c).log1p())
        return _core.where(self._stable(), closed, value)

    def entropy(self) -> Tensor:
        log0, log1 = (-self.probs).log1p(), self.probs.log()
        return self.mean * (log0 - log1) - self._cont_bern_log_norm() - log0
