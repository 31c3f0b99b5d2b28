"""Rprop (resilient backpropagation), as PyTorch implements it."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .. import _core
from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class Rprop(Optimizer):
    """Per element, only the gradient's sign is used: the step size grows by ``etas[1]`` while
    the sign holds and shrinks by ``etas[0]`` when it flips (clamped to ``step_sizes``); after a
    flip that element's gradient is taken as zero for one step. ``p -= sign(g) * step_size``.
    State: ``step``, ``prev``, ``step_size``."""

    def __init__(self, params, lr: float = 1e-2, etas: Tuple[float, float] = (0.5, 1.2),
                 step_sizes: Tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: Optional[bool] = None, maximize: bool = False, differentiable: bool = False) -> None:
        _pure.check("learning rate", lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes),
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="Rprop"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        (eta_minus, eta_plus), (lo, hi) = g["etas"], g["step_sizes"]
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["prev"] = _zeros_like(p)
                st["step_size"] = _core.full(tuple(p.shape), float(g["lr"]), dtype=p.dtype, device=p.device)
            st["step"] = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            sign = (grad * st["prev"]).sign()
            up, down, one = (_core.full((), v, dtype=p.dtype, device=p.device) for v in (eta_plus, eta_minus, 1.0))
            factor = _core.where(sign > 0, up, _core.where(sign < 0, down, one))
            st["step_size"].copy_((st["step_size"] * factor).clamp(lo, hi))
            grad = _core.where(sign < 0, 0.0, grad)  # a flipped sign: no step for that element this time
            p.sub_(grad.sign() * st["step_size"])
            st["prev"].copy_(grad)
