"""``VonMises(loc, concentration)``: the circular normal distribution on ``[-pi, pi)``, with
density ``exp(k cos(x - loc)) / (2 pi I0(k))``. ``log I0`` comes from the host-computed scaled
Bessel function (``log i0e(k) + k``, which neither overflows nor loses digits for large ``k``);
draws come from NumPy's von Mises sampler seeded from backprop_rs's stream. As in PyTorch there
is no ``rsample``."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .._core import Tensor
from . import constraints
from .distribution import Distribution, broadcast_all
from .gamma import _from_numpy, _np, _numpy_rng


def _log_i0(k: Tensor) -> Tensor:
    from ..special_kernels import i0e

    return i0e(k).log() + k


class VonMises(Distribution):
    """``VonMises(loc, concentration)``: angles around ``loc``, more concentrated as
    ``concentration`` grows (uniform at 0)."""

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc: Any, concentration: Any, validate_args: Optional[bool] = None) -> None:
        self.loc, self.concentration = broadcast_all(loc, concentration)
        super().__init__(tuple(self.loc.shape), (), validate_args)
        self._check("concentration", self.concentration, self.concentration > 0, constraints.positive)

    def log_prob(self, value: Tensor) -> Tensor:
        self._validate_sample(value)
        k = self.concentration
        return k * (value - self.loc).cos() - math.log(2 * math.pi) - _log_i0(k)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        draws = _numpy_rng().vonmises(_np(self.loc, shape), _np(self.concentration, shape))
        return _from_numpy(np.asarray(draws), self.loc)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        """The circular variance ``1 - I1(k) / I0(k)``."""
        from ..special_kernels import i0e, i1e

        return 1 - i1e(self.concentration) / i0e(self.concentration)
