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
