"""Adam and AdamW."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .. import _core
from .._core import Tensor
from ._pure import switches
from .optimizer import Optimizer, _zeros_like


class Adam(Optimizer):
    """Adam (Kingma & Ba) as PyTorch defines it, incl. L2 ``weight_decay`` (decoupled, as AdamW,
    with ``decoupled_weight_decay=True``), ``amsgrad`` and ``maximize``. ``foreach``, ``fused`` and
    ``capturable`` are accepted and change nothing (each step is one fused kernel call, steps are
    counted on the host); ``differentiable=True`` is refused (the kernel updates under no_grad)."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None, decoupled_weight_decay: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        sw = switches(foreach, maximize, capturable, differentiable, fused, name=type(self).__name__, has_fused=True)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      decoupled_weight_decay=decoupled_weight_decay or self._decoupled, **sw))

    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        m, v, vmax, steps = [], [], [], []
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = _zeros_like(p)
                st["exp_avg_sq"] = _zeros_like(p)
                if g["amsgrad"]:
                    st["max_exp_avg_sq"] = _zeros_like(p)
            st["step"] = int(st["step"]) + 1
            steps.append(st["step"])
            m.append(st["exp_avg"])
            v.append(st["exp_avg_sq"])
            vmax.append(st.get("max_exp_avg_sq"))
        b1, b2 = g["betas"]
        _core._adam_step(params, [p.grad for p in params], m, v, vmax, steps, lr=g["lr"], beta1=b1, beta2=b2,
                         eps=g["eps"], weight_decay=g["weight_decay"],
                         decoupled=g.get("decoupled_weight_decay", self._decoupled), amsgrad=g["amsgrad"],
                         maximize=g["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` before the
    Adam step; PyTorch's default ``weight_decay=1e-2``."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
