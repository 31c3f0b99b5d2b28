"""``MixtureSameFamily(mixture_distribution, component_distribution)``: a finite mixture whose
components are the rightmost batch dim of one distribution, weighted by a ``Categorical``."""

from __future__ import annotations

from typing import Any, Optional

from .._core import Tensor
from .distribution import Distribution
from .simple import Categorical


class MixtureSameFamily(Distribution):
    """``p(x) = sum_k pi_k p_k(x)``: ``mixture_distribution`` is a ``Categorical`` over the ``K``
    components, ``component_distribution`` has batch shape ``[..., K]``. ``log_prob`` is a
    ``logsumexp`` over the components (stable and differentiable in both); there is no
    ``rsample`` (the component choice is discrete), as in PyTorch."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, mixture_distribution: Categorical, component_distribution: Distribution,
                 validate_args: Optional[bool] = None) -> None:
        if not isinstance(mixture_distribution, Categorical):
            raise ValueError("The Mixture distribution needs to be an instance of torch.distributions.Categorical")
        if not isinstance(component_distribution, Distribution):
            raise ValueError("The Component distribution needs to be an instance of torch.distributions.Distribution")
        self._mixture_distribution = mixture_distribution
        self._component_distribution = component_distribution
        mdbs = tuple(mixture_distribution.batch_shape)
        cdbs = tuple(component_distribution.batch_shape)[:-1]
        for size1, size2 in zip(reversed(mdbs), reversed(cdbs)):
            if size1 != 1 and size2 != 1 and size1 != size2:
                raise ValueError(f"`mixture_distribution.batch_shape` ({mdbs}) is not compatible with "
                                 f"`component_distribution.batch_shape`({cdbs})")
        km = mixture_distribution.logits.shape[-1]
        kc = tuple(component_distribution.batch_shape)[-1] if component_distribution.batch_shape else None
        if kc is None or km != kc:
            raise ValueError(f"`mixture_distribution component` ({km}) does not equal "
                             f"`component_distribution.batch_shape[-1]` ({kc})")
        self._num_component = km
        self._event_ndims = len(component_distribution.event_shape)
        super().__init__(cdbs, tuple(component_distribution.event_shape), validate_args)

    @property
    def support(self) -> Any:  # type: ignore[override]
        return self._component_distribution.support

    @property
    def mixture_distribution(self) -> Categorical:
        return self._mixture_distribution

    @property
    def component_distribution(self) -> Distribution:
        return self._component_distribution

    def _mix_probs(self) -> Tensor:
        """The weights shaped ``[..., K, 1, ...]`` to broadcast against the components' events."""
        probs = self._mixture_distribution.probs
        for _ in range(self._event_ndims):
            probs = probs.unsqueeze(-1)
        return probs

    @property
    def mean(self) -> Tensor:
        return (self._mix_probs() * self._component_distribution.mean).sum(-1 - self._event_ndims)

    @property
    def variance(self) -> Tensor:
        # law of total variance: E[Var(X | k)] + Var(E[X | k])
        probs = self._mix_probs()
        d = -1 - self._event_ndims
        mean_cond_var = (probs * self._component_distribution.variance).sum(d)
        diff = self._component_distribution.mean - self._pad(self.mean)
        var_cond_mean = (probs * diff ** 2).sum(d)
        return mean_cond_var + var_cond_mean

    def _pad(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-1 - self._event_ndims)

    def cdf(self, x: Tensor) -> Tensor:
        cdf_x = self._component_distribution.cdf(self._pad(x))
        return (cdf_x * self._mixture_distribution.probs).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(x)
        from ..nn.functional import log_softmax

        log_prob_x = self._component_distribution.log_prob(self._pad(x))
        log_mix_prob = log_softmax(self._mixture_distribution.logits, -1)
        return (log_prob_x + log_mix_prob).logsumexp(-1)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from ..autograd import no_grad
        from .distribution import _shape

        shape = _shape(sample_shape)
        with no_grad():
            mix_sample = self._mixture_distribution.sample(shape).expand(list(shape + self._batch_shape))
            comp_samples = self._component_distribution.sample(shape)
            es = tuple(self._event_shape)
            idx = mix_sample.reshape(list(mix_sample.shape) + [1] * (len(es) + 1))
            idx = idx.expand(list(mix_sample.shape) + [1] + list(es))
            gather_dim = comp_samples.ndim - 1 - len(es)
            return comp_samples.gather(gather_dim, idx).squeeze(gather_dim)

    def __repr__(self) -> str:
        return (f"MixtureSameFamily(\n  {self._mixture_distribution!r},\n  {self._component_distribution!r})")
