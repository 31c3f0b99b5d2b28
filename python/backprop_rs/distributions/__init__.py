"""``torch.distributions``: probability distributions with reparameterised sampling and the KL
divergences between them, as composites of the engine's ops (so ``log_prob``, ``rsample`` and
``entropy`` are differentiable in their parameters).

Here: ``Normal``, ``Uniform``, ``Bernoulli``, ``Categorical``, ``OneHotCategorical``,
``Exponential``, ``Laplace``, ``Independent``, the ``lgamma`` family (``Gamma``, ``Chi2``,
``Beta``, ``Dirichlet``, ``Poisson``, ``Binomial``, ``StudentT``), and ``kl_divergence`` /
``register_kl`` for the pairs of these, and ``MultivariateNormal``. Distributions built on
transforms (LogNormal, TransformedDistribution...) are not here yet; asking for one raises an
``AttributeError`` that says so.
"""

from .distribution import Distribution
from .gamma import Beta, Binomial, Chi2, Dirichlet, Gamma, Poisson, StudentT
from .multivariate_normal import MultivariateNormal
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
           "Laplace", "Independent", "Gamma", "Chi2", "Beta", "Dirichlet", "Poisson", "Binomial", "StudentT",
           "MultivariateNormal", "kl_divergence", "register_kl"]

_MISSING = {"Multinomial", "LowRankMultivariateNormal", "LogNormal", "Gumbel", "HalfNormal", "HalfCauchy",
            "Cauchy", "VonMises", "Weibull", "Pareto", "Geometric", "NegativeBinomial", "RelaxedBernoulli",
            "RelaxedOneHotCategorical", "TransformedDistribution", "MixtureSameFamily", "LKJCholesky", "Wishart",
            "ContinuousBernoulli", "FisherSnedecor", "Kumaraswamy", "LogisticNormal"}


def __getattr__(name: str):
    if name in _MISSING:
        raise AttributeError(f"torch.distributions.{name} is not in backprop_rs yet (it needs transforms or "
                             "kernels that are not built); Normal, Uniform, Bernoulli, Categorical, "
                             "OneHotCategorical, Exponential, Laplace, Independent, Gamma, Chi2, Beta, Dirichlet, "
                             "Poisson, Binomial, StudentT and MultivariateNormal are")
    raise AttributeError(f"module 'backprop_rs.distributions' has no attribute '{name}'")
