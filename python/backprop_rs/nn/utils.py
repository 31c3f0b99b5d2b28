"""Training utilities: gradient clipping."""

from __future__ import annotations

from typing import Iterable, Union

from .. import _core
from .._core import Tensor


def clip_grad_norm_(parameters: Union[Tensor, Iterable[Tensor]], max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scales gradients in place so their joint norm is at most ``max_norm``; returns the norm
    before clipping (``norm_type`` may be ``float('inf')``)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return _core._clip_grad_norm([p for p in params if p.grad is not None], float(max_norm), float(norm_type))
