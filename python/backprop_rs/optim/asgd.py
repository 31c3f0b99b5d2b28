"""Averaged SGD (Polyak & Juditsky), as PyTorch implements it."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class ASGD(Optimizer):
    """``p *= 1 - lambd * eta; p -= eta * g``; the average ``ax`` follows ``p`` (``ax += mu (p - ax)``);
    then ``eta = lr / (1 + lambd * lr * t)^alpha`` and ``mu = 1 / max(1, t - t0)``. State: ``step``,
    ``eta``, ``mu``, ``ax``."""

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0.0, foreach: Optional[bool] = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        _pure.check("learning rate", lr)
        _pure.check("weight_decay value", weight_decay)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="ASGD"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        lr, lambd, alpha, t0 = g["lr"], g["lambd"], g["alpha"], g["t0"]
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["eta"] = float(lr)
                st["mu"] = 1.0
                st["ax"] = _zeros_like(p)
            st["step"] = t = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            eta, mu = float(st["eta"]), float(st["mu"])
            p.mul_(1 - lambd * eta)
            p.sub_(grad * eta)
            ax = st["ax"]
            if mu != 1:
                ax.add_((p - ax) * mu)
            else:
                ax.copy_(p)
            st["eta"] = lr / ((1 + lambd * lr * t) ** alpha)
            st["mu"] = 1 / max(1, t - t0)



