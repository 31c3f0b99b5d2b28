"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm``,
``clip_grads_with_norm_`` (PyTorch's names, arguments and return values)."""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Union

from ... import _core
from ..._core import Tensor

_Params = Union[Tensor, Iterable[Tensor]]


def _no_grad():
    from ...autograd import no_grad

    return no_grad()


def _grads(parameters: _Params) -> List[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def get_total_norm(tensors: _Params, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: Optional[bool] = None) -> Tensor:
    """The ``norm_type`` norm of all ``tensors`` taken together (as if concatenated); ``foreach``
    is accepted and ignored (there is one code path)."""
    ts = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = float(norm_type)
    if not ts:
        return _core.tensor(0.0)
    from ..functional import _vector_norm

    with _no_grad():
        per = [_vector_norm(t.detach(), norm_type) for t in ts]
        stacked = _core.stack([n.to(ts[0].dtype).to(ts[0].device) for n in per])
        total = _vector_norm(stacked, norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
                           "anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters: _Params, max_norm: float, total_norm: Tensor,
                          foreach: Optional[bool] = None) -> None:
    """Scales every gradient by ``min(1, max_norm / (total_norm + 1e-6))`` in place."""
    grads = [p.grad for p in _grads(parameters)]
    if not grads:
        return
    with _no_grad():
        coef = (max_norm / (total_norm.detach() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype).to(g.device))


def clip_grad_norm_(parameters: _Params, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: Optional[bool] = None) -> Tensor:
    """Scales the gradients in place so their joint ``norm_type`` norm is at most ``max_norm``
    (coefficient ``max_norm / (norm + 1e-6)``, capped at 1); returns the norm before clipping.
    ``error_if_nonfinite`` raises on a nan/inf norm before touching any gradient; ``foreach`` is
    accepted and ignored. The common case is one fused core call."""
    params = _grads(parameters)
    if not error_if_nonfinite:
        return _core._clip_grad_norm(params, float(max_norm), float(norm_type))
    total = get_total_norm([p.grad for p in params], norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters: _Params, clip_value: float, foreach: Optional[bool] = None) -> None:
    """Clamps every gradient to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    with _no_grad():
        for p in _grads(parameters):
            p.grad.clamp_(-clip_value, clip_value)
