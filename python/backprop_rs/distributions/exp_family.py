"""``ExponentialFamily``: the base class for densities ``p(x) = h(x) exp(<t(x), theta> - F(theta))``,
as ``torch.distributions.ExponentialFamily``. A subclass gives its natural parameters ``theta``
(``_natural_params``), the log-normaliser ``F`` (``_log_normalizer``) and the carrier measure's
mean ``E[log h(x)]`` (``_mean_carrier_measure``); ``entropy`` then follows from the Bregman
divergence form ``H = F(theta) - <theta, grad F(theta)> - E[log h]``, with ``grad F`` by autograd.

backprop_rs's own distributions give their entropies in closed form and do not derive from this
class (PyTorch's Normal, Gamma, ... do, so ``isinstance(d, ExponentialFamily)`` differs); it is
here for user subclasses.
"""

from __future__ import annotations

from typing import Any, Tuple

from .._core import Tensor
from .distribution import Distribution


class ExponentialFamily(Distribution):
    """Base class for exponential-family distributions; ``entropy`` from the log-normaliser."""

    @property
    def _natural_params(self) -> Tuple[Tensor, ...]:
        raise NotImplementedError

    def _log_normalizer(self, *natural_params: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def _mean_carrier_measure(self) -> Any:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        from ..autograd import enable_grad, grad

        with enable_grad():
            params = [p.detach().requires_grad_() for p in self._natural_params]
            log_norm = self._log_normalizer(*params)
            grads = grad(log_norm.sum(), params, create_graph=True)
            result = log_norm - self._mean_carrier_measure
            for p, g in zip(params, grads):
                result = result - (p * g).reshape(list(self._batch_shape) + [-1]).sum(-1)
        return result
