"""RAdam (Liu et al., 2019: Adam with a rectified adaptive learning rate), as PyTorch implements it."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class RAdam(Optimizer):
    """``rho_inf = 2 / (1 - b2) - 1``, ``rho_t = rho_inf - 2 t b2^t / (1 - b2^t)``; while
    ``rho_t <= 5`` the step is SGD with momentum ``lr * m_hat``, after it is scaled by the
    rectification ``r_t`` and the adaptive ``sqrt(1 - b2^t) / (sqrt(v) + eps)``.
    ``decoupled_weight_decay`` (RAdamW) as in NAdam. State: ``step``, ``exp_avg``, ``exp_avg_sq``."""

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False) -> None:
        _pure.check("learning rate", lr)
        _pure.check("epsilon value", eps)
        _pure.check_betas(betas)
        _pure.check("weight_decay value", weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay,
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="RAdam"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        (b1, b2), eps, lr, wd = g["betas"], g["eps"], g["lr"], g["weight_decay"]
        rho_inf = 2 / (1 - b2) - 1
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = _zeros_like(p)
                st["exp_avg_sq"] = _zeros_like(p)
            st["step"] = t = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            if wd != 0 and g["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m.mul_(b1).add_(grad * (1 - b1))
            v.mul_(b2).add_(grad * grad * (1 - b2))
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            rho_t = rho_inf - 2 * t * (b2 ** t) / bc2
            if rho_t > 5.0:
                rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                p.sub_(m / (v.sqrt() + eps) * (lr / bc1 * rect * math.sqrt(bc2)))
            else:
                p.sub_(m * (lr / bc1))
