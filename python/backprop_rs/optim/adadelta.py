"""Adadelta (Zeiler, 2012), as PyTorch implements it."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class Adadelta(Optimizer):
    """``v = rho v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) * g;
    u = rho u + (1 - rho) delta^2; p -= lr * delta`` (``g`` with L2 ``weight_decay``; negated for
    ``maximize``). State per parameter: ``step``, ``square_avg``, ``acc_delta``."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
                 foreach: Optional[bool] = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        _pure.check("learning rate", lr)
        _pure.check("rho value", rho, 0.0, 1.0)
        _pure.check("epsilon value", eps)
        _pure.check("weight_decay value", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="Adadelta"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        lr, rho, eps = g["lr"], g["rho"], g["eps"]
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["square_avg"] = _zeros_like(p)
                st["acc_delta"] = _zeros_like(p)
            st["step"] = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            sq, acc = st["square_avg"], st["acc_delta"]
            sq.mul_(rho).add_(grad * grad * (1 - rho))
            delta = (acc + eps).sqrt() / (sq + eps).sqrt() * grad
            acc.mul_(rho).add_(delta * delta * (1 - rho))
            p.add_(delta, alpha=-lr)
