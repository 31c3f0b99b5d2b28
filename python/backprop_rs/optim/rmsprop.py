"""RMSprop."""

from __future__ import annotations

from typing import Any, Dict, List

from .. import _core
from .._core import Tensor
from .optimizer import Optimizer, _zeros_like


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, maximize: bool = False) -> None:
        if lr < 0.0 or eps < 0.0 or momentum < 0.0 or weight_decay < 0.0 or alpha < 0.0:
            raise ValueError("invalid RMSprop hyper-parameter (lr, eps, momentum, weight_decay and alpha must be >= 0)")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize))

    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        sq, mb, ga = [], [], []
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["square_avg"] = _zeros_like(p)
                if g["momentum"] > 0:
                    st["momentum_buffer"] = _zeros_like(p)
                if g["centered"]:
                    st["grad_avg"] = _zeros_like(p)
            st["step"] = int(st["step"]) + 1
            sq.append(st["square_avg"])
            mb.append(st.get("momentum_buffer"))
            ga.append(st.get("grad_avg"))
        _core._rmsprop_step(params, [p.grad for p in params], sq, mb, ga, lr=g["lr"], alpha=g["alpha"], eps=g["eps"],
                            weight_decay=g["weight_decay"], momentum=g["momentum"], centered=g["centered"], maximize=g["maximize"])
