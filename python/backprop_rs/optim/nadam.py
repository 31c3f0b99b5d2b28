"""NAdam (Dozat, 2016: Adam with Nesterov momentum), as PyTorch implements it."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._core import Tensor
from ..autograd import no_grad
from . import _pure
from .optimizer import Optimizer, _zeros_like


class NAdam(Optimizer):
    """With ``mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay))`` and ``mu_prod`` their running
    product: ``p -= lr * (1 - mu_t) / (1 - mu_prod) * g / d + lr * mu_{t+1} / (1 - mu_prod * mu_{t+1})
    * m / d`` with ``d = sqrt(v / (1 - b2^t)) + eps``. ``decoupled_weight_decay`` (NAdamW) multiplies
    ``p`` by ``1 - lr * weight_decay`` instead of adding L2 to ``g``. State: ``step``,
    ``mu_product``, ``exp_avg``, ``exp_avg_sq``."""

    def __init__(self, params, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 foreach: Optional[bool] = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        _pure.check("learning rate", lr)
        _pure.check("epsilon value", eps)
        _pure.check_betas(betas)
        _pure.check("weight_decay value", weight_decay)
        _pure.check("momentum_decay value", momentum_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay,
                        **_pure.switches(foreach, maximize, capturable, differentiable, name="NAdam"))
        super().__init__(params, defaults)

    @no_grad()
    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        (b1, b2), eps, lr, wd, psi = g["betas"], g["eps"], g["lr"], g["weight_decay"], g["momentum_decay"]
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["mu_product"] = 1.0
                st["exp_avg"] = _zeros_like(p)
                st["exp_avg_sq"] = _zeros_like(p)
            st["step"] = t = int(st["step"]) + 1
            grad = _pure.grad_of(p, g)
            if wd != 0 and g["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            mu_product = float(st["mu_product"]) * mu
            st["mu_product"] = mu_product
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m.mul_(b1).add_(grad * (1 - b1))
            v.mul_(b2).add_(grad * grad * (1 - b2))
            denom = (v / (1 - b2 ** t)).sqrt() + eps
            p.sub_(grad / denom * (lr * (1.0 - mu) / (1.0 - mu_product)))
            p.sub_(m / denom * (lr * mu_next / (1.0 - mu_product * mu_next)))
