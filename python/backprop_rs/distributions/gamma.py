"""The distributions whose densities need ``lgamma``: Gamma, Chi2, Beta, Dirichlet, Poisson,
Binomial and StudentT, with PyTorch's parameterisations, formulas and argument checks.

Sampling: Gamma, Poisson and Binomial draws come from NumPy's ``Generator`` (its
Marsaglia-Tsang gamma, PTRS Poisson and BTPE binomial samplers), seeded from backprop_rs's own
generator, so ``bp.manual_seed`` makes them reproducible; Beta, Dirichlet, Chi2 and StudentT are
built from those. The draws are exact in distribution but are not PyTorch's stream (no engine's
are). ``rsample`` is differentiable in every parameter, the shape parameters included
(``concentration``, ``df``): a gamma draw's derivative with respect to its shape is the implicit
reparameterisation gradient ``dx/da = -(dP(a, x)/da) / f(x; a)`` at the drawn ``x``, computed
exactly in float64 (``special_kernels._standard_gamma_grad_np``), as PyTorch's
``_standard_gamma_grad``; Beta, Dirichlet, Chi2, StudentT and FisherSnedecor differentiate
through the gammas they are built from. As in PyTorch, that derivative has no derivative of its
own (a second backward through a shape parameter raises).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import _core
from .._core import Tensor
from ..autograd.function import Function
from . import constraints
from .distribution import Distribution, broadcast_all

_LOG_PI = math.log(math.pi)


def _numpy_rng() -> np.random.Generator:
    """A NumPy generator seeded from backprop_rs's global stream (one draw from it)."""
    return np.random.default_rng(int(_core.randint(0, 2 ** 62, (1,)).item()))


def _from_numpy(a: np.ndarray, like: Tensor) -> Tensor:
    # np.array, not ascontiguousarray (which turns a 0-d draw into shape (1,)); asarray first, as
    # NumPy's samplers return a Python scalar for a 0-d parameter
    return _core.tensor(np.array(np.asarray(a), dtype=np.float64, order="C"), dtype=like.dtype).to(like.device)


def _np(t: Tensor, shape: Any) -> np.ndarray:
    return np.broadcast_to(t.detach().cpu().numpy().astype(np.float64), shape)


def _draw_standard_gamma(concentration: Tensor, shape: Any) -> Tensor:
    a = _np(concentration, shape)
    g = _numpy_rng().standard_gamma(a)
    # the smallest positive value instead of 0 (as PyTorch clamps), so log_prob stays finite
    return _from_numpy(np.maximum(g, np.finfo(np.float32 if concentration.dtype == _core.float32 else np.float64).tiny),
                       concentration)


class _StandardGammaGrad(Function):
    """``dx/da`` at the draws ``x``: a leaf of the backward whose own derivative PyTorch does not
    define either, so a double backward through it raises instead of dropping a term."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, x: Tensor) -> Tensor:
        from ..special_kernels import _standard_gamma_grad_np

        return _from_numpy(_standard_gamma_grad_np(_np(a, tuple(a.shape)), _np(x, tuple(x.shape)))
                           .reshape(tuple(x.shape)), x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        raise NotImplementedError("the derivative of _standard_gamma_grad (the reparameterised gamma draw's "
                                  "derivative with respect to its shape) is not implemented, as in PyTorch")


class _StandardGamma(Function):
    """A standard gamma draw, differentiable in its shape ``a`` (already expanded to the draw's
    shape) through the implicit reparameterisation gradient."""

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        x = _draw_standard_gamma(a, tuple(a.shape))
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, x = ctx.saved_tensors
        return g * _StandardGammaGrad.apply(a, x)


def _standard_gamma(concentration: Tensor, shape: Any) -> Tensor:
    """Draws of ``Gamma(concentration, 1)`` of ``shape``, differentiable in ``concentration``."""
    if concentration.requires_grad and _core.is_grad_enabled():
        return _StandardGamma.apply(concentration.expand(tuple(shape)))
    return _draw_standard_gamma(concentration, shape)


def _xlogy(x: Any, y: Tensor) -> Tensor:
    from ..math_ops import xlogy

    return xlogy(x, y)


class Gamma(Distribution):
    """``Gamma(concentration, rate)``: density ``rate^a x^(a-1) exp(-rate x) / Gamma(a)``."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration: Any, rate: Any, validate_args: Optional[bool] = None) -> None:
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(tuple(self.concentration.shape), (), validate_args)
        self._check("concentration", self.concentration, self.concentration > 0, "GreaterThan(lower_bound=0.0)")
        self._check("rate", self.rate, self.rate > 0, "GreaterThan(lower_bound=0.0)")

    @property
    def mean(self) -> Tensor:
        return self.concentration / self.rate

    @property
    def mode(self) -> Tensor:
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self) -> Tensor:
        return self.concentration / self.rate ** 2

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        return _standard_gamma(self.concentration, self._extended_shape(sample_shape)) / self.rate

    def log_prob(self, value: Any) -> Tensor:
        value = value if isinstance(value, Tensor) else _core.tensor(float(value), dtype=self.rate.dtype)
        self._check_value(value, value >= 0, "GreaterThanEq(lower_bound=0.0)")
        a, b = self.concentration, self.rate
        return _xlogy(a, b) + _xlogy(a - 1, value) - b * value - a.lgamma()

    def entropy(self) -> Tensor:
        a = self.concentration
        return a - self.rate.log() + a.lgamma() + (1.0 - a) * a.digamma()

    def cdf(self, value: Tensor) -> Tensor:
        from ..special_kernels import gammainc

        self._validate_sample(value)
        return gammainc(self.concentration, self.rate * value)


class Chi2(Gamma):
    """``Chi2(df)``: ``Gamma(df / 2, 1 / 2)``."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df: Any, validate_args: Optional[bool] = None) -> None:
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, 0.5, validate_args)

    @property
    def df(self) -> Tensor:
        return self.concentration * 2

    def _params_repr(self) -> str:
        d = self.df
        return f"df: {d if d.numel() == 1 else 'size ' + str(tuple(d.shape))}"


class Dirichlet(Distribution):
    """``Dirichlet(concentration)`` over the simplex of the last dimension."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration: Tensor, validate_args: Optional[bool] = None) -> None:
        if concentration.dim() < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        shape = tuple(concentration.shape)
        super().__init__(shape[:-1], shape[-1:], validate_args)
        self._check("concentration", concentration, concentration > 0,
                    "IndependentConstraint(GreaterThan(lower_bound=0.0), 1)")

    @property
    def mean(self) -> Tensor:
        return self.concentration / self.concentration.sum(-1, True)

    @property
    def mode(self) -> Tensor:
        c = (self.concentration - 1).clamp(min=0.0)
        m = c / c.sum(-1, True).clamp(min=float(np.finfo(np.float64).tiny))
        # every concentration below 1: PyTorch puts the mode on the first vertex (its one-hot of
        # the argmax of a row of 0/0)
        below = (self.concentration < 1).all(-1, True)
        k = self.concentration.shape[-1]
        vertex = (_core.arange(k, device=m.device) == 0).to(m.dtype)
        return _core.where(below, vertex, m)

    @property
    def variance(self) -> Tensor:
        c0 = self.concentration.sum(-1, True)
        return self.concentration * (c0 - self.concentration) / (c0 ** 2 * (c0 + 1))

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        g = _standard_gamma(self.concentration, self._extended_shape(sample_shape))
        return g / g.sum(-1, True)

    def log_prob(self, value: Tensor) -> Tensor:
        ok = (value >= 0).all(-1).logical_and(((value.sum(-1) - 1).abs() < 1e-6 * value.shape[-1] ** 0.5 + 1e-5))
        self._check_value(value, ok, "Simplex()")
        c = self.concentration
        return _xlogy(c - 1.0, value).sum(-1) + c.sum(-1).lgamma() - c.lgamma().sum(-1)

    def entropy(self) -> Tensor:
        c = self.concentration
        k = c.shape[-1]
        a0 = c.sum(-1)
        return c.lgamma().sum(-1) - a0.lgamma() - (k - a0) * a0.digamma() - ((c - 1.0) * c.digamma()).sum(-1)


class Beta(Distribution):
    """``Beta(concentration1, concentration0)`` on (0, 1): a two-outcome Dirichlet."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1: Any, concentration0: Any, validate_args: Optional[bool] = None) -> None:
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        super().__init__(tuple(self.concentration1.shape), (), validate_args)
        self._check("concentration1", self.concentration1, self.concentration1 > 0, "GreaterThan(lower_bound=0.0)")
        self._check("concentration0", self.concentration0, self.concentration0 > 0, "GreaterThan(lower_bound=0.0)")

    @property
    def mean(self) -> Tensor:
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        return (a - 1) / (a + b - 2)

    @property
    def variance(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        t = a + b
        return a * b / (t ** 2 * (t + 1))

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        x = _standard_gamma(self.concentration1, shape)
        y = _standard_gamma(self.concentration0, shape)
        return x / (x + y)

    def log_prob(self, value: Any) -> Tensor:
        value = value if isinstance(value, Tensor) else _core.tensor(float(value), dtype=self.concentration1.dtype)
        self._check_value(value, (value >= 0).logical_and(value <= 1), "Interval(lower_bound=0.0, upper_bound=1.0)")
        a, b = self.concentration1, self.concentration0
        return (_xlogy(a - 1.0, value) + _xlogy(b - 1.0, 1.0 - value) + (a + b).lgamma() - a.lgamma()
                - b.lgamma())

    def entropy(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        t = a + b
        return (a.lgamma() + b.lgamma() - t.lgamma() - (a - 1) * a.digamma() - (b - 1) * b.digamma()
                + (t - 2) * t.digamma())


class Poisson(Distribution):
    """``Poisson(rate)`` on the non-negative integers."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate: Any, validate_args: Optional[bool] = None) -> None:
        (self.rate,) = broadcast_all(rate)
        super().__init__(tuple(self.rate.shape), (), validate_args)
        self._check("rate", self.rate, self.rate >= 0, "GreaterThanEq(lower_bound=0.0)")

    @property
    def mean(self) -> Tensor:
        return self.rate

    @property
    def mode(self) -> Tensor:
        return self.rate.floor()

    @property
    def variance(self) -> Tensor:
        return self.rate

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        return _from_numpy(np.asarray(_numpy_rng().poisson(_np(self.rate, shape))), self.rate)

    def log_prob(self, value: Any) -> Tensor:
        value = value if isinstance(value, Tensor) else _core.tensor(float(value), dtype=self.rate.dtype)
        self._check_value(value, (value >= 0).logical_and(value == value.floor()), "IntegerGreaterThan(lower_bound=0)")
        value = value if value.is_floating_point() else value.to(self.rate.dtype)
        return _xlogy(value, self.rate) - self.rate - (value + 1).lgamma()


class Binomial(Distribution):
    """``Binomial(total_count=1, probs=None, logits=None)``: successes in ``total_count`` trials."""

    arg_constraints = {"total_count": constraints.nonnegative_integer,
                       "probs": constraints.unit_interval, "logits": constraints.real}

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> Any:  # type: ignore[override]
        return constraints.integer_interval(0, self.total_count)

    has_enumerate_support = True

    def __init__(self, total_count: Any = 1, probs: Any = None, logits: Any = None,
                 validate_args: Optional[bool] = None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        param = probs if probs is not None else logits
        n, param = broadcast_all(total_count, param)
        super().__init__(tuple(param.shape), (), validate_args)
        self.total_count = n.to(param.dtype) if not n.is_floating_point() else n
        if probs is not None:
            self.probs = param
            eps = float(np.finfo(np.float32 if param.dtype == _core.float32 else np.float64).eps)
            p = param.clamp(eps, 1 - eps)
            self.logits = p.log() - (-p).log1p()
            self._check("probs", param, (param >= 0).logical_and(param <= 1), "Interval(lower_bound=0.0, upper_bound=1.0)")
        else:
            self.logits = param
            self.probs = param.sigmoid()
        tc = self.total_count
        self._check("total_count", tc, (tc >= 0).logical_and(tc == tc.floor()), "IntegerGreaterThan(lower_bound=0)")

    @property
    def mean(self) -> Tensor:
        return self.total_count * self.probs

    @property
    def mode(self) -> Tensor:
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self) -> Tensor:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        n = _np(self.total_count, shape).astype(np.int64)
        draws = _numpy_rng().binomial(n, _np(self.probs, shape))
        return _from_numpy(np.asarray(draws), self.probs)

    def log_prob(self, value: Any) -> Tensor:
        from ..nn.functional import softplus

        value = value if isinstance(value, Tensor) else _core.tensor(float(value), dtype=self.probs.dtype)
        n = self.total_count
        ok = (value >= 0).logical_and(value <= n).logical_and(value == value.floor())
        self._check_value(value, ok, "IntegerInterval(lower_bound=0, upper_bound=total_count)")
        value = value if value.is_floating_point() else value.to(self.probs.dtype)
        log_comb = (n + 1).lgamma() - (value + 1).lgamma() - (n - value + 1).lgamma()
        # k log p + (n - k) log(1 - p) = k logits - n softplus(logits), stable for any logit
        return log_comb + value * self.logits - n * softplus(self.logits)

    def entropy(self) -> Tensor:
        n = int(self.total_count.max().item())
        if not bool((self.total_count == n).all().item()):
            raise NotImplementedError("Inhomogeneous total count not supported by `entropy`.")
        support = self.enumerate_support(False)
        lp = self.log_prob(support)
        return -(lp.exp() * lp).sum(0)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        n = int(self.total_count.max().item())
        if not bool((self.total_count == n).all().item()):
            raise NotImplementedError("Inhomogeneous total count not supported by `enumerate_support`.")
        values = _core.arange(n + 1, dtype=self.probs.dtype).reshape((-1,) + (1,) * len(self._batch_shape))
        if expand:
            values = values.expand((-1,) + self._batch_shape)
        return values


class StudentT(Distribution):
    """``StudentT(df, loc=0, scale=1)``: ``loc + scale * X / sqrt(Z / df)``, X standard normal,
    Z chi-squared with ``df`` degrees of freedom."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df: Any, loc: Any = 0.0, scale: Any = 1.0, validate_args: Optional[bool] = None) -> None:
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        super().__init__(tuple(self.df.shape), (), validate_args)
        self._check("df", self.df, self.df > 0, "GreaterThan(lower_bound=0.0)")
        self._check("scale", self.scale, self.scale > 0, "GreaterThan(lower_bound=0.0)")

    @property
    def mean(self) -> Tensor:
        return _core.where(self.df > 1, self.loc, float("nan"))

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        v = self.scale ** 2 * self.df / _core.where(self.df > 2, self.df - 2, 1.0)
        v = _core.where(self.df > 2, v, float("inf"))
        return _core.where(self.df > 1, v, float("nan"))

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        x = _core.randn(*shape, dtype=self.loc.dtype).to(self.loc.device)
        z = _standard_gamma(0.5 * self.df, shape) * 2.0  # chi-squared with df degrees of freedom
        return self.loc + self.scale * x * (z / self.df).rsqrt()

    def log_prob(self, value: Any) -> Tensor:
        df = self.df
        y = (value - self.loc) / self.scale
        z = self.scale.log() + 0.5 * df.log() + 0.5 * _LOG_PI + (0.5 * df).lgamma() - (0.5 * (df + 1.0)).lgamma()
        return -0.5 * (df + 1.0) * (y ** 2 / df).log1p() - z

    def entropy(self) -> Tensor:
        df = self.df
        lbeta = (0.5 * df).lgamma() + 0.5 * _LOG_PI - (0.5 * (df + 1)).lgamma()
        return (self.scale.log() + 0.5 * (df + 1) * ((0.5 * (df + 1)).digamma() - (0.5 * df).digamma())
                + 0.5 * df.log() + lbeta)


class FisherSnedecor(Distribution):
    """``FisherSnedecor(df1, df2)``: the F distribution, ``(X1 / df1) / (X2 / df2)`` for
    independent chi-squared ``X1``, ``X2``."""

    arg_constraints = {"df1": constraints.positive, "df2": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, df1: Any, df2: Any, validate_args: Optional[bool] = None) -> None:
        self.df1, self.df2 = broadcast_all(df1, df2)
        super().__init__(tuple(self.df1.shape), (), validate_args)
        self._check("df1", self.df1, self.df1 > 0, constraints.positive)
        self._check("df2", self.df2, self.df2 > 0, constraints.positive)

    @property
    def mean(self) -> Tensor:
        df2 = self.df2
        return _core.where(df2 > 2, df2 / (df2 - 2), math.nan)

    @property
    def mode(self) -> Tensor:
        m = (self.df1 - 2) / self.df1 * self.df2 / (self.df2 + 2)
        return _core.where(self.df1 > 2, m, math.nan)

    @property
    def variance(self) -> Tensor:
        d1, d2 = self.df1, self.df2
        v = 2 * d2 ** 2 * (d1 + d2 - 2) / (d1 * (d2 - 2) ** 2 * (d2 - 4))
        return _core.where(d2 > 4, v, math.nan)

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        x1 = _standard_gamma(self.df1 * 0.5, shape) / (self.df1 * 0.5)
        x2 = _standard_gamma(self.df2 * 0.5, shape) / (self.df2 * 0.5)
        tiny = float(np.finfo(np.float32 if self.df1.dtype == _core.float32 else np.float64).tiny)
        return (x1 / x2).clamp(min=tiny)

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        ct1, ct2 = self.df1 * 0.5, self.df2 * 0.5
        ct3 = ct1 + ct2
        t1 = ct3.lgamma() - ct1.lgamma() - ct2.lgamma()
        t2 = ct1 * (self.df1 / self.df2).log() + (ct1 - 1) * value.log()
        t3 = ct3 * (self.df1 * value / self.df2).log1p()
        return t1 + t2 - t3
