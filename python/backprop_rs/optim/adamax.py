"""Adamax (Adam with the infinity norm), as PyTorch implements it."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class Adamax(Optimizer):
    """``m = b1 m + (1 - b1) g; u = max(b2 u, |g| + eps); p -= lr / (1 - b1^t) * m / u``.
    State: ``step``, ``exp_avg``, ``exp_inf``."""

    def __init__(self, params, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, foreach: Optional[bool] = None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        _pure.check("learning rate", lr)
        _pure.check("epsilon value", eps)
        _pure.check_betas(betas)
        _pure.check("weight_decay value", weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="Adamax"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        (b1, b2), eps, lr = g["betas"], g["eps"], g["lr"]
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = _zeros_like(p)
                st["exp_inf"] = _zeros_like(p)
            st["step"] = t = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            m, u = st["exp_avg"], st["exp_inf"]
            m.mul_(b1).add_(grad * (1 - b1))
            u.copy_((u * b2).maximum(grad.abs() + eps))
            p.sub_(m / u * (lr / (1 - b1 ** t)))
