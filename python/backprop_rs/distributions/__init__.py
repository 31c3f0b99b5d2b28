"""``torch.distributions``: probability distributions with reparameterised sampling and the KL
divergences between them, as composites of the engine's ops (so ``log_prob``, ``rsample`` and
``entropy`` are differentiable in their parameters).

Here: ``Normal``, ``Uniform``, ``Bernoulli``, ``Categorical``, ``OneHotCategorical``,
``Exponential``, ``Laplace``, ``Independent``, and ``kl_divergence`` / ``register_kl`` for the
pairs of these. Distributions whose densities need ``lgamma`` (Beta, Gamma, Dirichlet, Poisson,
Binomial...) or a Cholesky factor (MultivariateNormal) are not here yet; asking for one raises
an ``AttributeError`` that says so.
"""

from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .simple import (
    Bernoulli,
    Categorical,
    Exponential,
    Independent,
    Laplace,
    Normal,
    OneHotCategorical,
    Uniform,
)

__all__ = ["Distribution", "Normal", "Uniform", "Bernoulli", "Categorical", "OneHotCategorical", "Exponential",
           "Laplace", "Independent", "kl_divergence", "register_kl"]

_MISSING = {"Beta", "Gamma", "Dirichlet", "Poisson", "Binomial", "Multinomial", "MultivariateNormal",
            "LowRankMultivariateNormal", "StudentT", "Chi2", "LogNormal", "Gumbel", "HalfNormal", "HalfCauchy",
            "Cauchy", "VonMises", "Weibull", "Pareto", "Geometric", "NegativeBinomial", "RelaxedBernoulli",
            "RelaxedOneHotCategorical", "TransformedDistribution", "MixtureSameFamily", "LKJCholesky", "Wishart",
            "ContinuousBernoulli", "FisherSnedecor", "Kumaraswamy", "LogisticNormal"}


def __getattr__(name: str):
    if name in _MISSING:
        raise AttributeError(f"torch.distributions.{name} is not in backprop_rs yet (it needs lgamma, a Cholesky "
                             "factor or transforms, which are not built); Normal, Uniform, Bernoulli, Categorical, "
                             "OneHotCategorical, Exponential, Laplace and Independent are")
    raise AttributeError(f"module 'backprop_rs.distributions' has no attribute '{name}'")
