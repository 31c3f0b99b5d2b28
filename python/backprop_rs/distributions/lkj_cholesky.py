"""``LKJCholesky(dim, concentration)``: the LKJ distribution over lower Cholesky factors ``L``
of correlation matrices, density proportional to ``det(L L^T)^(concentration - 1)`` times the
Jacobian of ``L -> L L^T`` (``prod_i L_ii^(dim - i)``).

As PyTorch (after NumPyro): ``sample`` is the onion method of Lewandowski, Kurowicka and Joe
(2009, section 3.2) vectorised over rows: row ``i`` is ``sqrt(y_i)`` times a uniform direction in
its first ``i`` coordinates, ``y_i ~ Beta(i/2, concentration + (dim - 2)/2 - i/2)``, and the
diagonal fills the row to unit norm; ``log_prob`` is Stan's closed form with the normaliser on
page 1999 of the paper. No ``rsample`` (as PyTorch). Composites of the engine's ops.

A deliberate difference: PyTorch draws ``y_i ~ Beta(i - 1/2, ...)`` where the onion method (and
NumPyro, which PyTorch follows) has ``Beta(i/2, ...)``. From the third row on its samples then
do not follow the LKJ law: for ``dim = 4``, ``concentration = 3`` the correlations of rows 2 and 3
have variance 0.150 instead of LKJ's ``1/(2 concentration + dim - 1) = 0.111``, which row 1 and
these samples have (tests/test_distributions_matrix.py). ``log_prob`` is the same as PyTorch's.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import _core
from .._core import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all


class LKJCholesky(Distribution):
    """``LKJCholesky(dim, concentration=1.0)``; ``concentration = 1`` is uniform over
    correlation matrices."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dim: int, concentration: Any = 1.0, validate_args: Optional[bool] = None) -> None:
        if dim < 2:
            raise ValueError(f"Expected dim to be an integer greater than or equal to 2. Found dim={dim}.")
        self.dim = int(dim)
        (self.concentration,) = broadcast_all(concentration)
        super().__init__(tuple(self.concentration.shape), (self.dim, self.dim), validate_args)
        self._check("concentration", self.concentration, self.concentration > 0, "GreaterThan(lower_bound=0.0)")

    def _beta(self) -> Any:
        from .gamma import Beta

        c = self.concentration
        marginal = c + 0.5 * (self.dim - 2)
        offset = _core.cat([_core.zeros(1, dtype=c.dtype, device=c.device),
                            _core.arange(self.dim - 1, dtype=c.dtype, device=c.device)])
        # row i (i coordinates left of the diagonal) needs y_i ~ Beta(i/2, marginal - (i-1)/2); PyTorch
        # uses offset + 0.5 = i - 1/2 as the first shape, which breaks the LKJ marginals from row 2 on
        return Beta(0.5 * offset + 0.5, marginal.unsqueeze(-1) - 0.5 * offset)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        from .. import finfo
        from ..autograd import no_grad
        from .simple import _randn

        with no_grad():
            y = self._beta().sample(sample_shape).unsqueeze(-1)
            u = _randn(self._extended_shape(sample_shape), y).tril(-1)
            norm = u.norm(dim=-1, keepdim=True)
            # row 0 has no coordinates before the diagonal: its direction is 0, not 0/0
            direction = _core.where(norm > 0, u / _core.where(norm > 0, norm, 1.0), 0.0)
            w = y.sqrt() * direction
            diag = (1 - (w ** 2).sum(-1)).clamp(min=float(finfo(w.dtype).tiny)).sqrt()
            return w + diag.diag_embed(dim1=-2, dim2=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        c = self.concentration
        diag = value.diagonal(dim1=-2, dim2=-1)[..., 1:]
        order = _core.arange(2, self.dim + 1, dtype=c.dtype, device=c.device)
        order = 2 * (c - 1).unsqueeze(-1) + self.dim - order
        unnormalised = (order * diag.log()).sum(-1)
        dm1 = self.dim - 1
        alpha = c + 0.5 * dm1
        normaliser = 0.5 * dm1 * math.log(math.pi) + (alpha - 0.5).mvlgamma(dm1) - alpha.lgamma() * dm1
        return unnormalised - normaliser
