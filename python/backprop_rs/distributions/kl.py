"""``kl_divergence(p, q)`` and ``register_kl``: closed forms between the distributions here
(PyTorch's formulas, with its infinities where ``q`` has no mass where ``p`` does)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple, Type

from .. import _core
from .._core import Tensor
from .distribution import Distribution
from .gamma import Beta, Dirichlet, Gamma, Poisson
from .multivariate_normal import MultivariateNormal, _batch_mahalanobis
from .counts import Geometric
from .simple import (
    Bernoulli,
    Categorical,
    Cauchy,
    Exponential,
    Independent,
    Laplace,
    Normal,
    OneHotCategorical,
    Uniform,
    _sum_rightmost,
)
from .transformed import EULER_GAMMA, Gumbel, HalfNormal, Pareto, TransformedDistribution

_KL: Dict[Tuple[type, type], Callable[[Any, Any], Tensor]] = {}

_INF = float("inf")


def register_kl(type_p: Type[Distribution], type_q: Type[Distribution]) -> Callable[[Any], Any]:
    """Decorator registering ``fn(p, q)`` as the KL divergence of ``type_p`` from ``type_q``."""

    def deco(fn: Callable[[Any, Any], Tensor]) -> Callable[[Any, Any], Tensor]:
        _KL[(type_p, type_q)] = fn
        return fn

    return deco


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """``KL(p || q)``, batched; the most specific registered pair (by method resolution order)."""
    for tp in type(p).__mro__:
        for tq in type(q).__mro__:
            fn = _KL.get((tp, tq))
            if fn is not None:
                return fn(p, q)
    raise NotImplementedError(f"No KL(p || q) is implemented for p of type {type(p).__name__} and q of type "
                              f"{type(q).__name__}")


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    from ..nn.functional import softplus

    t1 = p.probs * (softplus(-q.logits) - softplus(-p.logits))
    t1 = _core.where(q.probs == 0, _INF, t1)
    t1 = _core.where(p.probs == 0, 0.0, t1)
    t2 = (1 - p.probs) * (softplus(q.logits) - softplus(p.logits))
    t2 = _core.where(q.probs == 1, _INF, t2)
    t2 = _core.where(p.probs == 1, 0.0, t2)
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    t = p.probs * (p.logits - q.logits)
    t = _core.where(q.probs == 0, _INF, t)
    t = _core.where(p.probs == 0, 0.0, t)
    return t.sum(-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehot_onehot(p: OneHotCategorical, q: OneHotCategorical) -> Tensor:
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    result = ((q.high - q.low) / (p.high - p.low)).log()
    return _core.where((q.low > p.low).logical_or(q.high < p.high), _INF, result)


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p: Exponential, q: Exponential) -> Tensor:
    ratio = q.rate / p.rate
    return -ratio.log() + ratio - 1


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p: Laplace, q: Laplace) -> Tensor:
    scale_ratio = p.scale / q.scale
    gap = (p.loc - q.loc).abs()
    return -scale_ratio.log() + gap / q.scale + scale_ratio * (-gap / p.scale).exp() - 1


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> Tensor:
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("KL between Independents with different reinterpreted_batch_ndims")
    r = kl_divergence(p.base_dist, q.base_dist)
    n = p.reinterpreted_batch_ndims
    return r.sum(list(range(-n, 0))) if n else r


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p: Gamma, q: Gamma) -> Tensor:
    a, b, c, d = p.concentration, p.rate, q.concentration, q.rate
    t1 = c * (b / d).log()
    t2 = c.lgamma() - a.lgamma()
    t3 = (a - c) * a.digamma()
    t4 = (d - b) * (a / b)
    return t1 + t2 + t3 + t4


@register_kl(Beta, Beta)
def _kl_beta_beta(p: Beta, q: Beta) -> Tensor:
    a1, b1, a2, b2 = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    t1 = a2.lgamma() + b2.lgamma() + (a1 + b1).lgamma()
    t2 = a1.lgamma() + b1.lgamma() + (a2 + b2).lgamma()
    t3 = (a1 - a2) * a1.digamma()
    t4 = (b1 - b2) * b1.digamma()
    t5 = (a2 - a1 + b2 - b1) * (a1 + b1).digamma()
    return t1 - t2 + t3 + t4 + t5


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> Tensor:
    pc, qc = p.concentration, q.concentration
    s = pc.sum(-1)
    t1 = s.lgamma() - qc.sum(-1).lgamma()
    t2 = (pc.lgamma() - qc.lgamma()).sum(-1)
    t3 = pc - qc
    t4 = pc.digamma() - s.digamma().unsqueeze(-1)
    return t1 - t2 + (t3 * t4).sum(-1)


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p: Poisson, q: Poisson) -> Tensor:
    return p.rate * (p.rate.log() - q.rate.log()) - (p.rate - q.rate)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    from ..linalg import solve_triangular

    if p.event_shape != q.event_shape:
        raise ValueError("KL-divergence between two Multivariate Normals with different event shapes cannot be "
                         "computed")
    k = p.event_shape[0]
    half_term1 = q._half_log_det() - p._half_log_det()
    # tr(Sq^-1 Sp) = |Lq^-1 Lp|_F^2
    lp, lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    from ..stacking import broadcast_shapes

    shape = tuple(broadcast_shapes(tuple(lp.shape[:-2]), tuple(lq.shape[:-2]))) + (k, k)
    m = solve_triangular(lq.expand(shape), lp.expand(shape), upper=False)
    term2 = (m * m).sum((-2, -1))
    term3 = _batch_mahalanobis(lq, q.loc - p.loc)
    return half_term1 + 0.5 * (term2 + term3 - k)


@register_kl(TransformedDistribution, TransformedDistribution)
def _kl_transformed_transformed(p: TransformedDistribution, q: TransformedDistribution) -> Tensor:
    # the KL divergence is invariant under a shared bijection, so it is the bases'
    if p.transforms != q.transforms:
        raise NotImplementedError("KL(p || q) of two TransformedDistributions needs the same transforms on both")
    if p.event_shape != q.event_shape:
        raise NotImplementedError("KL(p || q) of two TransformedDistributions needs the same event shape")
    extra = len(p.event_shape) - len(p.base_dist.event_shape)
    return _sum_rightmost(kl_divergence(p.base_dist, q.base_dist), extra)


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p: Gumbel, q: Gumbel) -> Tensor:
    ct1 = p.scale / q.scale
    ct2 = q.loc / q.scale
    ct3 = p.loc / q.scale
    t1 = -ct1.log() - ct2 + ct3
    t2 = ct1 * EULER_GAMMA
    t3 = (ct2 + (1 + ct1).lgamma() - ct3).exp()
    return t1 + t2 + t3 - (1 + EULER_GAMMA)


@register_kl(HalfNormal, HalfNormal)
def _kl_halfnormal_halfnormal(p: HalfNormal, q: HalfNormal) -> Tensor:
    return _kl_normal_normal(p.base_dist, q.base_dist)


@register_kl(Cauchy, Cauchy)
def _kl_cauchy_cauchy(p: Cauchy, q: Cauchy) -> Tensor:
    t1 = ((p.scale + q.scale) ** 2 + (p.loc - q.loc) ** 2).log()
    t2 = (4 * p.scale * q.scale).log()
    return t1 - t2


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p: Geometric, q: Geometric) -> Tensor:
    return -p.entropy() - (-q.probs).log1p() / p.probs - q.logits


@register_kl(Pareto, Pareto)
def _kl_pareto_pareto(p: Pareto, q: Pareto) -> Tensor:
    scale_ratio = p.scale / q.scale
    alpha_ratio = q.alpha / p.alpha
    result = q.alpha * scale_ratio.log() - alpha_ratio.log() + alpha_ratio - 1
    # q has no mass below its scale, where p has some
    return _core.where(p.scale < q.scale, _INF, result)
