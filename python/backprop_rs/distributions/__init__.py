"""``torch.distributions``: probability distributions with reparameterised sampling and the KL
divergences between them, as composites of the engine's ops (so ``log_prob``, ``rsample`` and
``entropy`` are differentiable in their parameters).

Here: ``Normal``, ``Uniform``, ``Bernoulli``, ``Categorical``, ``OneHotCategorical``,
``Exponential``, ``Laplace``, ``Cauchy``, ``Independent``; the ``lgamma`` family (``Gamma``,
``Chi2``, ``Beta``, ``Dirichlet``, ``Poisson``, ``Binomial``, ``StudentT``, ``FisherSnedecor``);
``MultivariateNormal`` and ``LowRankMultivariateNormal``; ``constraints`` and ``transforms`` with
``TransformedDistribution`` and the distributions built on it (``LogNormal``, ``Gumbel``,
``HalfNormal``, ``HalfCauchy``, ``Weibull``, ``Pareto``, ``Kumaraswamy``, ``LogisticNormal``,
``RelaxedBernoulli``, ``RelaxedOneHotCategorical``); the counts ``Geometric``,
``NegativeBinomial``, ``Multinomial``; ``MixtureSameFamily``; ``VonMises``; ``InverseGamma``,
``ContinuousBernoulli``, ``GeneralizedPareto``; ``Wishart``, ``LKJCholesky``; and ``kl_divergence`` /
``register_kl`` with PyTorch's closed forms for the pairs of these. A name PyTorch adds later
raises an ``AttributeError`` that says it is missing.
"""

from . import constraints, transforms
from .constraints import Constraint
from .continuous_bernoulli import ContinuousBernoulli
from .counts import Geometric, Multinomial, NegativeBinomial
from .distribution import Distribution
from .exp_family import ExponentialFamily
from .generalized_pareto import GeneralizedPareto
from .gamma import Beta, Binomial, Chi2, Dirichlet, FisherSnedecor, Gamma, Poisson, StudentT
from .mixture import MixtureSameFamily
from .multivariate_normal import LowRankMultivariateNormal, MultivariateNormal
from .relaxed import ExpRelaxedCategorical, LogitRelaxedBernoulli, RelaxedBernoulli, RelaxedOneHotCategorical
from .simple import (
    Bernoulli,
    Categorical,
    Cauchy,
    Exponential,
    Independent,
    Laplace,
    Normal,
    OneHotCategorical,
    OneHotCategoricalStraightThrough,
    Uniform,
)
from .transformed import (
    Gumbel,
    HalfCauchy,
    HalfNormal,
    InverseGamma,
    Kumaraswamy,
    LogisticNormal,
    LogNormal,
    Pareto,
    TransformedDistribution,
    Weibull,
)
from .transforms import *  # noqa: F401,F403 - torch.distributions re-exports every transform
from .transforms import __all__ as _transforms_all
from .transforms import biject_to, transform_to
from .von_mises import VonMises
from .wishart import Wishart
from .lkj_cholesky import LKJCholesky
from .kl import kl_divergence, register_kl

__all__ = ["Distribution", "Normal", "Uniform", "Bernoulli", "Categorical", "OneHotCategorical", "Exponential",
           "Laplace", "Cauchy", "Independent", "Gamma", "Chi2", "Beta", "Dirichlet", "Poisson", "Binomial", "StudentT",
           "FisherSnedecor", "MultivariateNormal", "LowRankMultivariateNormal", "TransformedDistribution", "LogNormal",
           "Gumbel", "HalfNormal", "HalfCauchy", "Weibull", "Pareto", "Kumaraswamy", "LogisticNormal", "Geometric",
           "NegativeBinomial", "Multinomial", "RelaxedBernoulli", "LogitRelaxedBernoulli", "RelaxedOneHotCategorical",
           "ExpRelaxedCategorical", "MixtureSameFamily", "VonMises", "InverseGamma", "ContinuousBernoulli",
           "GeneralizedPareto", "Wishart", "LKJCholesky", "Constraint", "constraints", "transforms", "biject_to",
           "transform_to", "kl_divergence", "register_kl", "ExponentialFamily", "OneHotCategoricalStraightThrough"]
__all__ += [n for n in _transforms_all if n not in __all__]

_MISSING: set = set()

_BUILT = ", ".join(n for n in __all__ if n[0].isupper() and n not in ("Distribution", "Constraint"))


def __getattr__(name: str):
    if name in _MISSING:
        raise AttributeError(f"torch.distributions.{name} is not in backprop_rs yet (it needs special functions "
                             f"or samplers that are not built); these are: {_BUILT}")
    raise AttributeError(f"module 'backprop_rs.distributions' has no attribute '{name}'")
