"""The concrete (Gumbel-softmax) relaxations: ``RelaxedBernoulli`` and
``RelaxedOneHotCategorical``, with their logit-space bases ``LogitRelaxedBernoulli`` and
``ExpRelaxedCategorical`` (Maddison et al. 2017, "The Concrete Distribution"; Jang et al. 2017).

They make a discrete choice differentiable: ``rsample`` is a smooth function of the logits and a
uniform draw, and as ``temperature`` falls the samples approach one-hot vectors.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import _core
from .._core import Tensor
from . import constraints
from .counts import _binary_probs_logits
from .distribution import Distribution, broadcast_all
from .simple import Categorical, _eps, _rand
from .transformed import TransformedDistribution
from .transforms import ExpTransform, SigmoidTransform


def _clamp_probs(p: Tensor) -> Tensor:
    eps = _eps(p)
    return p.clamp(eps, 1 - eps)


def _temperature(t: Any, like: Tensor) -> Tensor:
    return t if isinstance(t, Tensor) else _core.tensor(float(t), dtype=like.dtype, device=like.device)


class LogitRelaxedBernoulli(Distribution):
    """``LogitRelaxedBernoulli(temperature, probs=None, logits=None)``: the logit of a
    :class:`RelaxedBernoulli` sample, ``(logit(u) + logits) / temperature``."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        self.probs, self.logits, param = _binary_probs_logits(probs, logits)
        self.temperature = _temperature(temperature, param)
        super().__init__(tuple(param.shape), (), validate_args)
        if probs is not None:
            self._check("probs", self.probs, (self.probs >= 0).logical_and(self.probs <= 1),
                        constraints.unit_interval)

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        u = _clamp_probs(_rand(self._extended_shape(sample_shape), self.probs))
        p = _clamp_probs(self.probs)
        return (u.log() - (-u).log1p() + p.log() - (-p).log1p()) / self.temperature

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return self.temperature.log() + diff - 2 * diff.exp().log1p()


class RelaxedBernoulli(TransformedDistribution):
    """``RelaxedBernoulli(temperature, probs=None, logits=None)``: a sample in ``(0, 1)`` that
    tends to a Bernoulli(``probs``) draw as ``temperature`` goes to 0."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        base = LogitRelaxedBernoulli(temperature, probs, logits, validate_args=validate_args)
        super().__init__(base, SigmoidTransform(), validate_args)

    @property
    def temperature(self) -> Tensor:
        return self.base_dist.temperature

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    @property
    def probs(self) -> Tensor:
        return self.base_dist.probs

    def _params_repr(self) -> str:
        return self.base_dist._params_repr()


class ExpRelaxedCategorical(Distribution):
    """``ExpRelaxedCategorical(temperature, probs=None, logits=None)``: the log of a
    :class:`RelaxedOneHotCategorical` sample, ``log_softmax((logits + gumbel) / temperature)``."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        self._categorical = Categorical(probs, logits, validate_args=validate_args)
        self.temperature = _temperature(temperature, self._categorical.probs)
        super().__init__(tuple(self._categorical.batch_shape), (self._categorical._num_events,), validate_args)

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
        return f"temperature: {self.temperature}, logits: size {tuple(self.logits.shape)}"

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        u = _clamp_probs(_rand(self._extended_shape(sample_shape), self.logits))
        gumbels = -((-(u.log())).log())
        scores = (self.logits + gumbels) / self.temperature
        return scores - scores.logsumexp(-1, keepdim=True)

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        k = self._categorical._num_events
        log_scale = _core.full_like(self.temperature, float(k)).lgamma() + self.temperature.log() * (k - 1)
        score = self.logits - value * self.temperature
        score = (score - score.logsumexp(-1, keepdim=True)).sum(-1)
        return score + log_scale


class RelaxedOneHotCategorical(TransformedDistribution):
    """``RelaxedOneHotCategorical(temperature, probs=None, logits=None)``: a point of the simplex
    that tends to a one-hot Categorical(``probs``) draw as ``temperature`` goes to 0
    (the Gumbel-softmax)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        base = ExpRelaxedCategorical(temperature, probs, logits, validate_args=validate_args)
        super().__init__(base, ExpTransform(), validate_args)

    @property
    def temperature(self) -> Tensor:
        return self.base_dist.temperature

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    @property
    def probs(self) -> Tensor:
        return self.base_dist.probs

    def _params_repr(self) -> str:
        return self.base_dist._params_repr()
