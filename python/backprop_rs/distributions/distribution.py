"""The ``Distribution`` base class: shapes, sampling conventions and argument validation, as
``torch.distributions.Distribution``."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from .. import _core
from .._core import Tensor

_validate_default = [True]


def _shape(s: Any) -> Tuple[int, ...]:
    if s is None:
        return ()
    if isinstance(s, int):
        return (s,)
    return tuple(int(d) for d in s)


def broadcast_all(*values: Any) -> Tuple[Tensor, ...]:
    """Numbers become tensors of the first tensor's dtype (or the default float dtype); all are
    broadcast to one shape, as ``torch.distributions.utils.broadcast_all``."""
    like = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = like.dtype if like is not None and like.is_floating_point() else _core._get_default_dtype()
    device = like.device if like is not None else None
    ts = [v if isinstance(v, Tensor) else _core.tensor(float(v), dtype=dtype, device=device) for v in values]
    from ..stacking import broadcast_tensors

    return broadcast_tensors(*ts)


class Distribution:
    """Base class: ``batch_shape``, ``event_shape``, ``sample``/``rsample`` with a
    ``sample_shape`` in front, ``log_prob``, and the moments subclasses define."""

    has_rsample = False
    has_enumerate_support = False
    arg_constraints: Dict[str, Any] = {}
    support: Any = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        """Whether new distributions check their arguments (True by default, as PyTorch)."""
        _validate_default[0] = bool(value)

    def __init__(self, batch_shape: Sequence[int] = (), event_shape: Sequence[int] = (),
                 validate_args: Optional[bool] = None) -> None:
        self._batch_shape = _shape(batch_shape)
        self._event_shape = _shape(event_shape)
        self._validate_args = _validate_default[0] if validate_args is None else bool(validate_args)

    @property
    def batch_shape(self) -> Any:
        from .. import Size

        return Size(self._batch_shape)

    @property
    def event_shape(self) -> Any:
        from .. import Size

        return Size(self._event_shape)

    def _extended_shape(self, sample_shape: Any = ()) -> Tuple[int, ...]:
        return _shape(sample_shape) + self._batch_shape + self._event_shape

    def _check(self, name: str, value: Tensor, ok: Tensor, constraint: str) -> None:
        if self._validate_args and not bool(ok.all().item()):
            raise ValueError(f"Expected parameter {name} (Tensor of shape {tuple(value.shape)}) of distribution "
                             f"{self!r} to satisfy the constraint {constraint}, but found invalid values:\n{value}")

    def _check_value(self, value: Tensor, ok: Tensor, support: str) -> None:
        if self._validate_args and not bool(ok.all().item()):
            raise ValueError(f"Expected value argument (Tensor of shape {tuple(value.shape)}) to be within the "
                             f"support ({support}) of the distribution {self!r}, but found invalid values:\n{value}")

    def _validate_sample(self, value: Any) -> None:
        """Raises ``ValueError`` when validation is on and ``value`` lies outside ``support``."""
        if not self._validate_args:
            return
        if not isinstance(value, Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")
        from .constraints import is_dependent

        support = self.support
        if support is None or is_dependent(support):
            return
        self._check_value(value, support.check(value), repr(support))

    def sample(self, sample_shape: Any = ()) -> Tensor:
        """A sample of shape ``sample_shape + batch_shape + event_shape``, without gradient."""
        from ..autograd import no_grad

        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (rsample)")

    def sample_n(self, n: int) -> Tensor:
        return self.sample((n,))

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def prob(self, value: Tensor) -> Tensor:
        return self.log_prob(value).exp()

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def perplexity(self) -> Tensor:
        return self.entropy().exp()

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def expand(self, batch_shape: Any, _instance: Any = None) -> "Distribution":
        """A distribution of the same family with its parameters expanded (views, no copies) to
        ``batch_shape``. Distributions built from other distributions or transforms raise."""
        batch = _shape(batch_shape)
        if any(isinstance(v, (Distribution, list)) for v in self.__dict__.values()):
            raise NotImplementedError(f"{type(self).__name__}.expand is not in backprop_rs yet (it is built from "
                                      "other distributions or transforms): build it from parameters of the full "
                                      "batch shape (they broadcast)")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        nb = len(self._batch_shape)
        for name in self.arg_constraints:
            v = self.__dict__.get(name)
            if isinstance(v, Tensor):
                new.__dict__[name] = v.expand(list(batch + tuple(v.shape[nb:])))
        new._batch_shape = batch
        return new

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def _params_repr(self) -> str:
        names = [n for n in self.arg_constraints if n in self.__dict__]
        parts = []
        for n in names:
            v = self.__dict__[n]
            parts.append(f"{n}: {v if v.numel() == 1 else 'size ' + str(tuple(v.shape))}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params_repr()})"
